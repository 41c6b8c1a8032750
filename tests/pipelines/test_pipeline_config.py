"""The ``pipeline`` section: defaults, presets, files, environment and every kind of bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.analysis import StatisticsSettings
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import PipelineConfig, PipelineSection


def test_default_is_the_quick_synthetic_ssc_run() -> None:
    """With nothing set, the run is synthetic lognormal with both SSC sets and quick settings."""
    section = PipelineConfig().pipeline
    assert (section.input, section.executor, section.seed) == ("synthetic", "processes", 42)
    assert section.synthetic.kind == "lognormal"
    assert section.synthetic.periodic is True
    assert section.statistics_settings() == StatisticsSettings.quick()


def test_presets_fill_what_the_section_leaves_unset() -> None:
    """Preset full gives the LSST-like defaults, auto is full for files; set fields override."""
    full = PipelineSection(statistics={"preset": "full", "n_gal": 30})
    assert full.statistics_settings() == StatisticsSettings(n_gal=(30.0,))
    files = PipelineSection(input="patches", patches={"files": ["a.npy"]})
    assert files.statistics_settings() == StatisticsSettings()
    chosen = PipelineSection(statistics={"names": ["peaks", "cl"], "smoothing_arcmin": [3]})
    assert chosen.statistics_settings().statistics == ("cl", "peaks")
    assert chosen.statistics_settings().smoothing_arcmin == (3.0,)


def test_section_round_trips_through_a_file(tmp_path: Path) -> None:
    """A pipeline section written to YAML reads back equal, unset fields staying unset."""
    config = PipelineConfig(
        run_dir=tmp_path / "r",
        pipeline={
            "seed": 7,
            "statistics": {"names": ["cl"], "n_gal": [0, 15]},
            "synthetic": {"kind": "gaussian", "patch_pixels": 96},
        },
    )
    loaded = PipelineConfig.from_file(config.to_file(tmp_path / "c.yaml"), env=False)
    assert loaded == config
    assert loaded.pipeline.statistics.epsilon is None


def test_environment_overrides_nested_pipeline_fields() -> None:
    """LENSING_SSC_PIPELINE__SYNTHETIC__N_LARGE_FIELDS=4 reaches the synthetic section."""
    config = PipelineConfig.from_env(
        {
            "LENSING_SSC_PIPELINE__SYNTHETIC__N_LARGE_FIELDS": "4",
            "LENSING_SSC_PIPELINE__EXECUTOR": "serial",
        }
    )
    assert config.pipeline.synthetic.n_large_fields == 4
    assert config.pipeline.executor == "serial"


def test_no_workers_timeout_comes_from_the_environment_and_must_be_positive() -> None:
    """LENSING_SSC_PIPELINE__NO_WORKERS_TIMEOUT sets the grace (default 60 s); 0 is refused."""
    config = PipelineConfig.from_env({"LENSING_SSC_PIPELINE__NO_WORKERS_TIMEOUT": "300"})
    assert (config.pipeline.no_workers_timeout, PipelineConfig().pipeline.no_workers_timeout) == (
        300.0,
        60.0,
    )
    with pytest.raises(ConfigError) as info:
        PipelineConfig(pipeline={"no_workers_timeout": 0})
    assert (info.value.field, info.value.value) == ("pipeline.no_workers_timeout", 0)


@pytest.mark.parametrize(
    ("pipeline", "field", "value", "message"),
    [
        (
            {"statistics": {"names": ["cl", "peak"]}},
            "pipeline.statistics.names.1",
            "peak",
            "unknown statistic 'peak' (did you mean 'peaks'?)",
        ),
        (
            {"statistics": {"n_gal": [0, -3]}},
            "pipeline.statistics.n_gal.1",
            -3,
            "n_gal must be ≥ 0 galaxies per arcmin², got -3.0",
        ),
        (
            {"statistics": {"smoothing_arcmin": -1}},
            "pipeline.statistics.smoothing_arcmin.0",
            -1,
            "smoothing scale must be ≥ 0 arcmin",
        ),
        (
            {"healpix": {"patch_size_deg": 200}},
            "pipeline.healpix.patch_size_deg",
            200,
            "patch_size_deg=200 is larger than the sphere allows",
        ),
        (
            {"synthetic": {"patch_pixels": 4}},
            "pipeline.synthetic.patch_pixels",
            4,
            "greater than or equal to 8",
        ),
        (
            {"synthetic": {"patch_pixels": 4096, "patches_per_side": 8}},
            "pipeline.synthetic",
            {"patch_pixels": 4096, "patches_per_side": 8},
            "the large fields would be 32768² pixels (8.0 GiB each)",
        ),
        (
            {"synthetic": {"n_large_fields": True}},
            "pipeline.synthetic.n_large_fields",
            True,
            "Input should be an integer, not true or false",
        ),
        (
            {"synthetic": {"cosmology": {"sigma8": False}}},
            "pipeline.synthetic.cosmology.sigma8",
            False,
            "Input should be a number, not true or false",
        ),
        (
            {"workers": 0},
            "pipeline.workers",
            0,
            "greater than or equal to 1",
        ),
        (
            {"executor": "gpu"},
            "pipeline.executor",
            "gpu",
            "'serial', 'threads', 'processes' or 'dask'",
        ),
        (
            {"input": "healpix"},
            "pipeline",
            {"input": "healpix"},
            "input is 'healpix' but healpix.maps lists no file",
        ),
        (
            {"statistics": {"ell_min": 5000}},
            "pipeline",
            {"statistics": {"ell_min": 5000}},
            "need 0 < ell_min < ell_max, got 5000 and 3000",
        ),
        (
            {"statistics": {"preset": "full", "n_gal": [30, 30]}},
            "pipeline.statistics",
            {"preset": "full", "n_gal": [30, 30]},
            "n_gal lists a value twice",
        ),
        (
            {"sed": 1},
            "pipeline.sed",
            1,
            "did you mean 'seed'?",
        ),
    ],
)
def test_bad_pipeline_values_raise_config_error_naming_field_and_value(
    pipeline: dict[str, Any], field: str, value: Any, message: str
) -> None:
    """Each invalid value raises ConfigError carrying the dotted field and the value."""
    with pytest.raises(ConfigError) as info:
        PipelineConfig(pipeline=pipeline)
    assert info.value.field == field
    assert info.value.value == value
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("pipeline", "hint"),
    [
        ({"synthetic": {"n_large_fields": 0}}, "use a whole number at least 1"),
        ({"synthetic": {"n_large_fields": None}}, "use a whole number at least 1"),
        ({"seed": -1}, "use a whole number at least 0"),
        (
            {"synthetic": {"cosmology": {"z_source": 0}}},
            "use a number at least 0.01 and at most 10",
        ),
        ({"workers": 0}, "use a whole number at least 1, or null for the default"),
        (
            {"statistics": {"isosceles_ratio": 2}},
            "use a number greater than 0 and less than 2, or null for the default",
        ),
    ],
)
def test_bound_hints_name_the_range_and_null_only_where_it_is_valid(
    pipeline: dict[str, Any], hint: str
) -> None:
    """A pipeline number out of range gets its own range as hint; null only where null is valid."""
    with pytest.raises(ConfigError) as info:
        PipelineConfig(pipeline=pipeline)
    assert str(info.value).endswith(f"({hint})")


def test_bad_value_in_a_file_names_the_file(tmp_path: Path) -> None:
    """An unknown statistic in a YAML file is reported with the file's path."""
    path = tmp_path / "run.yaml"
    path.write_text("pipeline:\n  statistics:\n    names: [cl, minkowski]\n")
    with pytest.raises(ConfigError, match="unknown statistic 'minkowski'") as info:
        PipelineConfig.from_file(path, env=False)
    assert info.value.source == str(path)


@settings(max_examples=40, deadline=None)
@given(
    n_gal=st.lists(st.floats(0, 200, allow_nan=False), min_size=1, max_size=5, unique=True),
    names=st.lists(
        st.sampled_from(["cl", "pdf", "peaks", "minima", "v0", "v1", "v2"]),
        min_size=1,
        max_size=4,
        unique=True,
    ),
)
def test_valid_settings_reach_statistics_settings_unchanged(
    n_gal: list[float], names: list[str]
) -> None:
    """Any valid n_gal list and statistic subset gives exactly those StatisticsSettings."""
    section = PipelineSection(statistics={"n_gal": n_gal, "names": names})
    built = section.statistics_settings()
    assert built == StatisticsSettings.quick(n_gal=n_gal, statistics=names)
    assert PipelineSection.model_validate(section.model_dump(mode="json")) == section


@settings(max_examples=30, deadline=None)
@given(bad=st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))
def test_any_negative_galaxy_density_is_rejected(bad: float) -> None:
    """n_gal < 0 always raises ConfigError naming the entry and the value."""
    with pytest.raises(ConfigError, match="n_gal must be ≥ 0") as info:
        PipelineConfig(pipeline={"statistics": {"n_gal": [0, bad]}})
    assert (info.value.field, info.value.value) == ("pipeline.statistics.n_gal.1", bad)
