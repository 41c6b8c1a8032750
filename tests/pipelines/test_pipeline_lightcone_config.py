"""The ``lightcone`` section's HEALPix resolutions: shells and κ maps share one ``nside`` rule."""

from __future__ import annotations

from typing import Any

import pytest

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import PipelineConfig

SECTIONS = ["shells", "kappa"]


def config(section: str, nside: int) -> PipelineConfig:
    """A config whose ``lightcone.<section>.nside`` is ``nside``, everything else default."""
    body: dict[str, Any] = {"lightcone": {"seeds": [0], section: {"nside": nside}}}
    return PipelineConfig(**body)


@pytest.mark.parametrize("section", SECTIONS)
def test_an_nside_that_is_not_a_power_of_two_is_refused_naming_field_and_value(
    section: str,
) -> None:
    """nside 96 in either section: ConfigError with the dotted field, the value and the rule."""
    with pytest.raises(ConfigError) as info:
        config(section, 96)
    assert (info.value.field, info.value.value) == (f"lightcone.{section}.nside", 96)
    assert "nside must be a power of 2, got 96" in str(info.value)


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize(
    ("nside", "message"),
    [(0, "greater than or equal to 1"), (1 << 21, "less than or equal to 1048576")],
)
def test_an_nside_out_of_range_gets_the_range_before_the_power_of_two_rule(
    section: str, nside: int, message: str
) -> None:
    """0 and 2²¹ are refused by the bounds, with the range as hint, not by the power-of-2 rule."""
    with pytest.raises(ConfigError) as info:
        config(section, nside)
    assert info.value.field == f"lightcone.{section}.nside"
    assert message in str(info.value)
    assert str(info.value).endswith("(use a whole number at least 1 and at most 1048576)")
    assert "power of 2" not in str(info.value)


@pytest.mark.parametrize("section", SECTIONS)
def test_a_power_of_two_nside_is_kept(section: str) -> None:
    """nside 1 and 1024 are valid resolutions and read back unchanged."""
    for nside in (1, 1024):
        lightcone = config(section, nside).lightcone
        assert getattr(lightcone, section).nside == nside


def test_the_json_schema_shows_both_nside_ranges_as_minimum_and_maximum() -> None:
    """`config schema` gives editors the standard bounds of both resolutions and their default."""
    definitions = PipelineConfig.json_schema()["$defs"]
    for name in ("ShellsSection", "KappaSection"):
        nside = definitions[name]["properties"]["nside"]
        assert (nside["minimum"], nside["maximum"], nside["default"]) == (1, 1 << 20, 128)
        assert nside["type"] == "integer"
