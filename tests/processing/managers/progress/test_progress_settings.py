"""ProgressManager settings: config section, explicit arguments, the environment switch."""

from __future__ import annotations

import io

import pytest

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ProgressManager


# -- settings ---------------------------------------------------------------------------
def test_config_disables_and_an_explicit_argument_overrides_it() -> None:
    """progress.enabled=False in the config shows nothing unless enabled=True is passed."""
    config = ProcessingConfig(progress={"enabled": False})
    out = io.StringIO()
    with ProgressManager(total=2, config=config, file=out) as pm:
        pm.update(2)
    assert (pm.display_mode, out.getvalue()) == ("disabled", "")
    with ProgressManager(total=2, config=config, enabled=True, file=out) as pm:
        pm.update(2)
    assert pm.display_mode == "plain"
    assert "done, 2/2" in out.getvalue()


def test_environment_switch_disables_without_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """LENSING_SSC_PROGRESS__ENABLED=false silences a manager built without any config."""
    monkeypatch.setenv("LENSING_SSC_PROGRESS__ENABLED", "false")
    out = io.StringIO()
    with ProgressManager(total=2, file=out) as pm:
        pm.update(2)
    assert (pm.display_mode, out.getvalue()) == ("disabled", "")


def test_environment_switch_overrides_config_but_not_the_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The environment beats the config file; an explicit enabled= beats the environment."""
    monkeypatch.setenv("LENSING_SSC_PROGRESS__ENABLED", "0")
    config = ProcessingConfig(progress={"enabled": True})
    assert ProgressManager(config=config, file=io.StringIO()).display_mode == "disabled"
    with ProgressManager(enabled=True, file=io.StringIO()) as pm:
        assert pm.display_mode == "plain"


def test_invalid_environment_switch_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-boolean LENSING_SSC_PROGRESS__ENABLED raises ConfigError naming the variable."""
    monkeypatch.setenv("LENSING_SSC_PROGRESS__ENABLED", "maybe")
    with pytest.raises(ConfigError, match=r"LENSING_SSC_PROGRESS__ENABLED='maybe'") as info:
        ProgressManager()
    assert info.value.source == "LENSING_SSC_PROGRESS__ENABLED"


@pytest.mark.parametrize("name", ["heartbeat_interval", "refresh_per_second"])
@pytest.mark.parametrize("bad", [0, -1.0, "fast"])
def test_invalid_rates_are_config_errors(name: str, bad: object) -> None:
    """Non-positive or non-numeric intervals raise ConfigError naming field, value and range."""
    with pytest.raises(ConfigError, match=r"\(use a number greater than 0\)$") as info:
        ProgressManager(enabled=False, **{name: bad})  # type: ignore[arg-type]
    assert str(info.value).startswith(f"invalid value {bad!r} for 'progress.{name}': ")
    assert (info.value.field, info.value.value) == (f"progress.{name}", bad)
