"""Named HEALPix sets: metadata from file names, groups by source redshift, declared comparisons."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import (
    PipelineConfig,
    PipelineSection,
    read_results,
    run_patch_statistics,
)
from lensing_ssc.pipelines._inputs import plan_comparisons, plan_maps
from lensing_ssc.pipelines._sets import parse_file_name

from .conftest import make_config

try:
    import healpy
except ImportError:  # pragma: no cover - exercised only without the extra
    healpy = None

needs_healpy = pytest.mark.skipif(healpy is None, reason="needs the healpix extra (healpy)")

Factory = Callable[..., Any]

NSIDE = 64
SEEDS = (1, 2, 3)
REDSHIFTS = (1.0, 2.0)
PATTERN = "kappa_zs{zs}_s{seed}.fits"

HEALPIX: dict[str, Any] = {"patch_size_deg": 30.0, "patch_pixels": 64}
STATISTICS: dict[str, Any] = {
    "names": ["cl", "pdf"],
    "n_gal": [0],
    "smoothing_arcmin": [60],
    "ell_min": 30,
    "ell_max": 300,
    "n_ell_bins": 4,
}


def _write_suites(root: Path) -> dict[str, Path]:
    """``bigbox``: Gaussian white-noise κ maps per seed and z_s (amplitude ∝ z_s); ``tiled``:
    a copy of it, the same realisations under the same names."""
    bigbox = root / "bigbox"
    bigbox.mkdir()
    for zs in REDSHIFTS:
        for seed in SEEDS:
            rng = np.random.default_rng([seed, int(zs * 10)])
            sky = 0.01 * zs * rng.standard_normal(12 * NSIDE**2)
            healpy.write_map(str(bigbox / f"kappa_zs{zs:g}_s{seed}.fits"), sky, dtype=np.float64)
    tiled = root / "tiled"
    shutil.copytree(bigbox, tiled)
    return {"bigbox": bigbox, "tiled": tiled}


def _sets(dirs: dict[str, Path]) -> dict[str, Any]:
    return {
        name: {"maps": str(path / "kappa_*.fits"), "pattern": PATTERN}
        for name, path in dirs.items()
    }


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two suites of full-sky maps on disk, named by the pattern (the second a copy)."""
    if healpy is None:
        pytest.skip("needs the healpix extra (healpy)")
    return _write_suites(tmp_path_factory.mktemp("suites"))


@pytest.fixture(scope="module")
def compared_run(suites: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One serial run of both suites with ``compare: [[bigbox, tiled]]``."""
    config = make_config(
        tmp_path_factory.mktemp("compared") / "run",
        input="healpix",
        healpix={**HEALPIX, "sets": _sets(suites)},
        statistics=STATISTICS,
        compare=[["bigbox", "tiled"]],
    )
    return run_patch_statistics(config)


@needs_healpy
def test_sets_and_source_redshifts_are_found_from_file_names(compared_run: Any) -> None:
    """Each (set, z_s) read from the file names is a set of the results, with its maps' fields."""
    results = read_results(compared_run.results_file)
    groups = {f"{name}/zs={zs:g}" for name in ("bigbox", "tiled") for zs in REDSHIFTS}
    assert set(results["meta/sets"]) == groups
    for group in groups:
        meta = results["meta/sets"][group]
        suite, _, z_text = group.partition("/zs=")
        assert (meta["set"], meta["z_source"]) == (suite, float(z_text))
        assert [m["seed"] for m in meta["maps"]] == list(SEEDS)
        assert {m["zs"] for m in meta["maps"]} == {float(z_text)}
        assert all(
            Path(m["file"]).name == f"kappa_zs{z_text}_s{m['seed']}.fits" for m in meta["maps"]
        )
        assert meta["n_maps"] == len(SEEDS)
        assert results[f"sets/{group}/cl/ngal=0/samples"].shape == (meta["n_patches"], 4)
        assert np.isfinite(results[f"sets/{group}/pdf/ngal=0/smoothing=60/mean"]).all()
    # The maps of z_s = 2 are twice those of z_s = 1: the groups hold what their names say.
    low = results["sets/bigbox/zs=1/cl/ngal=0/mean"]
    high = results["sets/bigbox/zs=2/cl/ngal=0/mean"]
    np.testing.assert_allclose(high / low, 4.0, rtol=0.3)


@needs_healpy
def test_a_suite_of_the_same_realisations_gives_variance_ratio_one_at_every_redshift(
    compared_run: Any,
) -> None:
    """A declared pair of suites holding the same maps has variance ratios of exactly 1."""
    results = read_results(compared_run.results_file)
    resampling = {
        "method": "bootstrap over maps",
        "interval": "jackknife",
        "n_resamples": 200,
        "confidence": 0.68,
    }
    assert results["meta/comparisons"] == {
        f"bigbox~tiled/zs={zs:g}": {
            "numerator": f"bigbox/zs={zs:g}",
            "denominator": f"tiled/zs={zs:g}",
            "z_source": zs,
            "resampling": {**resampling, "n_maps": [3, 3], "seed": 42},
        }
        for zs in REDSHIFTS
    }
    for zs in REDSHIFTS:
        for key in ("cl/ngal=0", "pdf/ngal=0/smoothing=60"):
            ratio = results[f"ssc/bigbox~tiled/zs={zs:g}/{key}/variance_ratio"]
            varied = results[f"sets/bigbox/zs={zs:g}/{key}/std"] > 0
            assert varied.any()
            np.testing.assert_allclose(ratio[varied], 1.0, rtol=1e-12)
            low, high = results[f"ssc/bigbox~tiled/zs={zs:g}/{key}/variance_ratio_interval"]
            assert np.all(low[varied] <= 1.0)
            assert np.all(high[varied] >= 1.0)
    assert not any(k.startswith("ssc/cl/") for k in results)
    summary = compared_run.summary_file.read_text()
    for zs in REDSHIFTS:
        assert (
            f"SSC         variance ratio bigbox/zs={zs:g} / tiled/zs={zs:g} "
            f"(ssc/bigbox~tiled/zs={zs:g}), [68% intervals, jackknife-t over maps; S/N: "
            "bootstrap over maps, 200 resamples; 3 + 3 maps]" in summary
        )
    assert compared_run.ssc_headline.startswith(
        "SSC: Var Ĉ(bigbox/zs=1) / Var Ĉ(tiled/zs=1), ngal=0, ℓ 30→300: 1.00 1.00 1.00 1.00"
    )


@needs_healpy
def test_a_file_not_matching_its_sets_pattern_is_refused_naming_it(
    suites: dict[str, Path], tmp_path: Path
) -> None:
    """A map whose name the set's pattern cannot read is a ConfigError naming file and pattern."""
    stray = tmp_path / "kappa_z1_s9.fits"
    shutil.copy(suites["bigbox"] / "kappa_zs1_s1.fits", stray)
    sets = _sets(suites)
    sets["tiled"]["maps"] = [sets["tiled"]["maps"], str(stray)]
    config = make_config(
        tmp_path / "run", input="healpix", healpix={**HEALPIX, "sets": sets}, statistics=STATISTICS
    )
    with pytest.raises(ConfigError) as info:
        run_patch_statistics(config)
    assert str(info.value).startswith(
        f"file {str(stray)!r} does not match the pattern {PATTERN!r} of pipeline.healpix.sets.tiled"
    )
    assert info.value.value == str(stray)
    assert info.value.field == "pipeline.healpix.sets.tiled.pattern"
    assert not (tmp_path / "run").exists()


@needs_healpy
def test_single_set_healpix_maps_still_run_as_one_set_named_healpix(
    suites: dict[str, Path], tmp_path: Path
) -> None:
    """``healpix.maps`` alone is the one set ``healpix``, with no comparison."""
    config = make_config(
        tmp_path / "run",
        input="healpix",
        healpix={**HEALPIX, "maps": [str(suites["bigbox"] / "kappa_zs1_s*.fits")]},
        statistics=STATISTICS,
    )
    run = run_patch_statistics(config)
    results = read_results(run.results_file)
    assert set(results["meta/sets"]) == {"healpix"}
    assert [m["map"] for m in results["meta/sets"]["healpix"]["maps"]] == [
        f"healpix/map-{i:04d}" for i in range(len(SEEDS))
    ]
    assert results["meta/comparisons"] == {}
    assert not any(k.startswith("ssc/") for k in results)
    assert run.n_maps == len(SEEDS)
    assert run.ssc_headline is None


def test_compare_naming_an_unknown_set_is_refused_with_the_known_sets() -> None:
    """``compare`` with a set the input lacks is a ConfigError naming it and the known sets."""
    sets = {"bigbox": {"maps": "a/*.fits"}, "tiled": {"maps": "b/*.fits"}}
    with pytest.raises(ConfigError) as info:
        PipelineConfig(
            pipeline={
                "input": "healpix",
                "healpix": {"sets": sets},
                "compare": [["bigbox", "small"]],
            }
        )
    assert "compare names the set 'small', which this healpix input does not have" in str(
        info.value
    )
    assert "its sets are: bigbox, tiled" in str(info.value)
    with pytest.raises(ConfigError, match="its sets are: subpatches, periodic"):
        PipelineConfig(pipeline={"compare": [["subpatches", "bigbox"]]})


@pytest.mark.parametrize(
    ("healpix", "message"),
    [
        (
            {"sets": {"a": {"maps": "x.fits", "pattern": "k_{zs}.fits", "zs": 1.0}}},
            "given for the set and also read by pattern",
        ),
        (
            {"sets": {"a": {"maps": "x.fits", "pattern": "k_{zs}_{zs}.fits"}}},
            "names the field {zs} twice",
        ),
        ({"sets": {"periodic": {"maps": "x.fits"}}}, "set name 'periodic' is not allowed"),
        ({"sets": {"a/b": {"maps": "x.fits"}}}, "set name 'a/b' is not allowed"),
        ({"sets": {"a": {"maps": []}}}, "the set lists no file in maps"),
        ({"maps": ["x.fits"], "sets": {"healpix": {"maps": "y.fits"}}}, "names another 'healpix'"),
    ],
)
def test_bad_set_definitions_are_refused_when_the_config_is_loaded(
    healpix: dict[str, Any], message: str
) -> None:
    """A set whose name or fields cannot work is a ConfigError at load time, saying why."""
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PipelineConfig(pipeline={"input": "healpix", "healpix": healpix})


def test_fields_are_read_from_names_and_paths_with_their_types() -> None:
    """``zs`` reads as a number, ``seed`` as an integer, other fields as they read."""
    assert parse_file_name(
        "/d/kappa_zs1.5_s07_boxL.fits", "kappa_zs{zs}_s{seed}_box{box}.fits"
    ) == {
        "zs": 1.5,
        "seed": 7,
        "box": "L",
    }
    assert parse_file_name("/sims/r3/zs2/map.fits", "r{seed}/zs{zs}/map.fits") == {
        "seed": 3,
        "zs": 2.0,
    }
    with pytest.raises(
        ConfigError, match=r"field \{seed\} of the pattern .* reads 'x', not an integer"
    ):
        parse_file_name("kappa_zs1_sx.fits", PATTERN)
    with pytest.raises(ConfigError, match="does not match the pattern"):
        parse_file_name("other_kappa_zs1_s1.fits.gz", PATTERN)


def test_explicit_fields_group_a_set_and_pairs_without_a_common_redshift_are_refused(
    tmp_path: Path,
) -> None:
    """``zs: …`` given for a set groups its maps; a compared pair sharing no z_s is refused."""
    for name in ("big_s1.fits", "big_s2.fits", "small_s1.fits"):
        (tmp_path / name).write_bytes(b"")
    section = PipelineSection(
        input="healpix",
        healpix={
            "sets": {
                "bigbox": {
                    "maps": str(tmp_path / "big_*.fits"),
                    "pattern": "big_s{seed}.fits",
                    "zs": 1.0,
                    "fields": {"box": 1000},
                },
                "tiled": {"maps": [str(tmp_path / "small_s1.fits")], "zs": 2.0},
            }
        },
        compare=[["bigbox", "tiled"]],
    )
    maps = plan_maps(section)
    assert [t.map_id for t in maps] == [
        "bigbox/zs=1/map-0000",
        "bigbox/zs=1/map-0001",
        "tiled/zs=2/map-0000",
    ]
    assert dict(maps[1].metadata) == {"box": 1000, "seed": 2, "zs": 1.0}
    assert maps[0].noise_seed(42, 0) != maps[2].noise_seed(42, 0)
    with pytest.raises(
        ConfigError,
        match=r"'bigbox' \(zs 1\) with 'tiled' \(zs 2\): no source redshift in common",
    ):
        plan_comparisons(section, maps)


def test_the_guides_suite_example_is_a_valid_config_comparing_the_declared_pairs() -> None:
    """The YAML of ``docs/pipeline.md``'s HEALPix SSC study loads, with its sets and pairs."""
    import yaml

    guide = (Path(__file__).parents[2] / "docs" / "pipeline.md").read_text()
    section = guide.split("### A HEALPix SSC study: suites and source redshifts", 1)[1]
    text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = PipelineConfig.from_dict(yaml.safe_load(text))
    assert config.pipeline.healpix.set_names() == ["bigbox", "tiled", "raytraced"]
    assert config.pipeline.comparisons() == [("bigbox", "tiled"), ("bigbox", "raytraced")]
    assert config.pipeline.healpix.sets["raytraced"].zs == 1.0
