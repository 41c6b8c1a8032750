"""Where patches come from: the plan of maps, patch files and HEALPix maps, and their errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import patch_centers
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import PipelineSection, read_results, run_patch_statistics
from lensing_ssc.pipelines._inputs import plan_maps
from lensing_ssc.pipelines._map_recipes import SyntheticMap

try:
    import healpy
except ImportError:  # pragma: no cover - exercised only without the extra
    healpy = None

Factory = Callable[..., Any]


def test_synthetic_plan_lists_sub_patch_maps_then_periodic_ones_with_distinct_seeds() -> None:
    """Maps are named by set and index, and each draws from its own seed."""
    section = PipelineSection(synthetic={"n_large_fields": 3, "patches_per_side": 2})
    maps = plan_maps(section)
    assert [task.map_id for task in maps] == [
        *(f"subpatches/map-{i:04d}" for i in range(3)),
        *(f"periodic/map-{i:04d}" for i in range(3)),
    ]
    sources = [task.source for task in maps]
    assert all(isinstance(s, SyntheticMap) for s in sources)
    assert len({s.seed for s in sources if isinstance(s, SyntheticMap)}) == 6
    assert len({s.cache_key() for s in sources if isinstance(s, SyntheticMap)}) == 6


def test_without_the_periodic_set_only_sub_patches_are_planned() -> None:
    """periodic: false plans the sub-patch maps alone (no SSC comparison)."""
    section = PipelineSection(synthetic={"n_large_fields": 2, "periodic": False})
    assert [task.set_name for task in plan_maps(section)] == ["subpatches", "subpatches"]


def test_synthetic_maps_are_the_same_in_every_process_and_read_only() -> None:
    """A recipe loads identical patches twice (seeded), cut from a field as documented."""
    task = plan_maps(PipelineSection(synthetic={"patch_pixels": 32, "patches_per_side": 3}))[1]
    first, second = task.source.load(), task.source.load()
    assert first.shape == (9, 32, 32)
    np.testing.assert_array_equal(first, second)


def test_patch_file_patterns_expand_sorted_and_missing_files_name_themselves(
    tmp_path: Path,
) -> None:
    """Glob patterns expand in sorted order; a missing file or empty pattern is a ConfigError."""
    for name in ("b.npy", "a.npy"):
        np.save(tmp_path / name, np.zeros((16, 16)))
    section = PipelineSection(input="patches", patches={"files": [str(tmp_path / "*.npy")]})
    assert [Path(t.label).name for t in plan_maps(section)] == ["a.npy", "b.npy"]
    missing = PipelineSection(input="patches", patches={"files": [str(tmp_path / "no.npy")]})
    with pytest.raises(ConfigError, match="cannot read input file") as info:
        plan_maps(missing)
    assert info.value.value == str(tmp_path / "no.npy")
    empty = PipelineSection(input="patches", patches={"files": [str(tmp_path / "*.fits")]})
    with pytest.raises(ConfigError, match="no file matches") as info:
        plan_maps(empty)
    assert info.value.field == "pipeline.patches.files"


@pytest.mark.skipif(healpy is None, reason="needs the healpix extra (healpy)")
def test_healpix_masked_patches_are_dropped_and_counted_and_a_blank_map_fails(
    tmp_path: Path, tiny_config: Factory
) -> None:
    """Patches touching NaN or UNSEEN pixels are dropped and counted; a blank map fails by name."""
    nside = 128
    rng = np.random.default_rng(3)
    paths = []
    for name in ("a", "holes", "blank"):
        sky = 1e-2 * rng.standard_normal(12 * nside**2)
        if name == "holes":
            theta, _ = healpy.pix2ang(nside, np.arange(sky.size))
            sky[theta < math.radians(40.0)] = healpy.UNSEEN  # a northern cap
            sky[[10, 2000, 30000]] = np.nan
        if name == "blank":
            sky[:] = healpy.UNSEEN
        path = tmp_path / f"{name}.fits"
        healpy.write_map(str(path), sky, dtype=np.float64)
        paths.append(str(path))
    config = tiny_config(
        input="healpix",
        healpix={"maps": paths, "patch_size_deg": 30.0, "patch_pixels": 64},
        statistics={
            "names": ["cl", "pdf", "peaks"],
            "n_gal": [0],
            "smoothing_arcmin": [60],
            "ell_min": 30,
            "ell_max": 300,
            "n_ell_bins": 4,
        },
    )
    run = run_patch_statistics(config)
    per_map = patch_centers(30.0)[0].size
    _, lat = patch_centers(30.0)
    # The cap reaches latitude 50°, a 30° patch's circumradius is ~20.4°: centres above 71°
    # lie inside the cap, centres below 29° cannot touch it (the 3 NaN pixels aside).
    inside, near = int((lat > 71.0).sum()), int((lat > 29.0).sum())
    [failure] = run.failures
    assert failure.key == "healpix/map-0002"
    assert failure.message.startswith(
        f"HEALPix map {paths[2]!r}: the HEALPix map is entirely masked"
    )
    results = read_results(run.results_file)
    dropped = results["meta/dropped_patches"]
    assert dropped["maps"].keys() == {"healpix/map-0001"}
    n_dropped = dropped["maps"]["healpix/map-0001"]
    assert n_dropped == dropped["total"]
    assert 0 < inside <= n_dropped <= near + 3
    assert (run.n_maps, run.n_patches) == (2, 2 * per_map - n_dropped)
    assert results["sets/healpix/cl/ngal=0/samples"].shape == (2 * per_map - n_dropped, 4)
    assert np.isfinite(results["sets/healpix/pdf/ngal=0/smoothing=60/samples"]).all()
    summary = run.summary_file.read_text()
    assert f"dropped     {n_dropped} patch(es) masked above max_masked_fraction" in summary
    assert f"  healpix/map-0001: {n_dropped}" in summary
    assert "blank.fits" in summary
    pixel = 2 * math.tan(math.radians(15.0)) / 64 * 180 * 60 / math.pi
    assert results["meta/sets"]["healpix"]["pixel_size_arcmin"] == pytest.approx(pixel)
    log = (config.run_dir / "logs" / "lensing_ssc.log").read_text()
    assert f"{n_dropped} patch(es) of 1 map(s) dropped" in log
