"""The ``lensing-ssc`` command: version, and the ``config`` group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lensing_ssc import __version__
from lensing_ssc.cli import main


def test_version_through_python_dash_m() -> None:
    """`python -m lensing_ssc --version` prints the package version and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"lensing-ssc {__version__}"


def test_config_show_prints_the_defaults_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    """`config show` with no file prints a YAML config that validates."""
    assert main(["config", "show"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["run_dir"] == "runs/default"
    assert shown["resources"]["warning_fraction"] == 0.8


def test_config_show_applies_file_and_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`config show FILE --format json` shows the file's values overridden by the environment."""
    path = tmp_path / "c.toml"
    path.write_text('run_dir = "runs/a"\n[cache]\nmax_entries = 10\n')
    monkeypatch.setenv("LENSING_SSC_CACHE__MAX_ENTRIES", "20")
    assert main(["config", "show", str(path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_dir"] == "runs/a"
    assert shown["cache"]["max_entries"] == 20


def test_config_validate_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config validate` exits 0 and says the file is valid."""
    path = tmp_path / "ok.yaml"
    path.write_text("resources: {memory_limit_mb: 100}\n")
    assert main(["config", "validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_config_validate_rejects_a_bad_file_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad file gives exit status 2 and an error line naming field and value, no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text("cache: {max_entries: -5}\n")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "cache.max_entries" in err
    assert "-5" in err
    assert "Traceback" not in err


def test_config_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`config schema` prints the JSON schema with every section."""
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"resources", "checkpoint", "cache", "logging", "progress"} <= set(schema["properties"])


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command exits non-zero with click's usage message."""
    assert main(["frobnicate"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_a_config_file_starts_from_the_settings_of_the_built_in_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config show > config.yaml` gives the default run's settings; a partial file keeps them."""
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert yaml.safe_load(shown)["logging"]["format"] == "json"
    full = tmp_path / "config.yaml"
    full.write_text(shown)
    partial = tmp_path / "partial.yaml"
    partial.write_text("pipeline: {figures: false}\n")
    for path in (full, partial):
        assert main(["config", "show", str(path)]) == 0
        effective = yaml.safe_load(capsys.readouterr().out)
        assert effective["logging"]["format"] == "json"
        assert effective["logging"]["console"] is False
        assert effective["resources"]["graceful_stop"] is True


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_config_show_gives_the_preset_values_of_unset_statistics_as_comments(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unset statistics show the preset's value beside them; the text still loads as it was."""
    assert main(["config", "show", "--format", fmt]) == 0
    text = capsys.readouterr().out
    if fmt == "yaml":
        assert "    n_gal: null  # preset: [0.0, 30.0]\n" in text
        assert "    preset: auto  # quick for synthetic input, full otherwise\n" in text
        assert "    nu_sigma: null\n" in text  # the preset leaves it unset too
    else:
        assert "# n_gal = [0.0, 30.0]  (preset)\n" in text
        assert "# smoothing_arcmin = [2.0, 5.0]  (preset)\n" in text
    path = tmp_path / f"shown.{fmt}"
    path.write_text(text)
    assert main(["config", "show", str(path), "--format", "json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["config", "show", "--format", "json"]) == 0
    assert from_file == json.loads(capsys.readouterr().out)  # round trip: same settings
