"""The patch-statistics pipeline end to end: results file, seeding, merge, SSC ratio, resume."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    compute_patch_statistics,
    cut_subpatches,
    lognormal_field,
    statistic_keys,
)
from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError, ResourceError
from lensing_ssc.pipelines import read_results, run_patch_statistics
from lensing_ssc.pipelines._map_recipes import SyntheticMap
from lensing_ssc.pipelines._tasks import MAP_TAG
from lensing_ssc.processing.managers import CacheManager

# Results are HDF5 where h5py is installed, else NPZ (results_format: auto).
RESULTS_NAME = "patch_statistics." + ("h5" if importlib.util.find_spec("h5py") else "npz")

Factory = Callable[..., Any]
SameResults = Callable[..., None]


@pytest.fixture(scope="module")
def model() -> HalofitConvergenceSpectrum:
    """The default analytic spectrum the synthetic input draws from."""
    return HalofitConvergenceSpectrum()


def test_run_writes_every_summary_of_both_sets_into_one_file(tiny_config: Factory) -> None:
    """One HDF5 file holds mean/std/cov/corr/samples of every statistic key of both sets."""
    config = tiny_config()
    run = run_patch_statistics(config)
    assert run.results_file == config.run_dir / "results" / RESULTS_NAME
    assert (run.n_maps, run.n_patches, run.failures, run.resumed) == (4, 16, (), 0)
    results = read_results(run.results_file)
    settings = StatisticsSettings.quick()
    for set_name in ("subpatches", "periodic"):
        for key in statistic_keys(settings):
            base = f"sets/{set_name}/{key}"
            width = results[f"{base}/mean"].shape[0]
            assert results[f"{base}/samples"].shape == (8, width)
            assert results[f"{base}/std"].shape == (width,)
            assert results[f"{base}/covariance"].shape == (width, width)
            assert results[f"{base}/correlation"].shape == (width, width)
    assert results["meta/lensing_ssc_version"] == "0.1.0"
    assert results["meta/config"]["pipeline"]["synthetic"]["patch_pixels"] == 64
    assert results["meta/settings"] == settings.to_dict()
    assert results["meta/sets"]["subpatches"]["n_patches"] == 8
    np.testing.assert_array_equal(results["binning/ell_edges"], settings.ell_edges)


def test_samples_are_the_statistics_of_the_documented_seeded_patches(
    tiny_results: dict[str, Any], model: HalofitConvergenceSpectrum
) -> None:
    """Rows of `samples` are compute_patch_statistics of patches drawn with the documented seeds."""
    results = tiny_results
    settings = StatisticsSettings.quick()
    shift = -model.minimum_convergence()
    large = lognormal_field(128, 2.0, model, np.random.default_rng([42, 0, 1, 0]), shift=shift)
    sub = cut_subpatches(large, 64)[3]  # map 1 of the sub-patch set, patch 3: row 4 + 3
    expected = compute_patch_statistics(sub, 2.0, settings, np.random.default_rng([42, 0, 1, 1, 3]))
    periodic = lognormal_field(
        64, 2.0, model, np.random.default_rng([42, 1, 0, 0]), shift=shift, n_fields=4
    )[2]
    expected_periodic = compute_patch_statistics(
        periodic, 2.0, settings, np.random.default_rng([42, 1, 0, 1, 2])
    )
    for key, values in expected.items():
        np.testing.assert_array_equal(results[f"sets/subpatches/{key}/samples"][7], values)
        np.testing.assert_array_equal(
            results[f"sets/periodic/{key}/samples"][2], expected_periodic[key]
        )


def test_summaries_are_the_ensemble_statistics_of_the_samples(
    tiny_results: dict[str, Any],
) -> None:
    """Mean, std (ddof 1), covariance and correlation in the file are those of its samples."""
    results = tiny_results
    for key in ("cl/ngal=30", "peaks/ngal=0/smoothing=5", "v1/ngal=30/smoothing=2"):
        base = f"sets/periodic/{key}"
        samples = results[f"{base}/samples"]
        np.testing.assert_allclose(results[f"{base}/mean"], samples.mean(axis=0))
        np.testing.assert_allclose(results[f"{base}/std"], samples.std(axis=0, ddof=1))
        np.testing.assert_allclose(results[f"{base}/covariance"], np.cov(samples.T, ddof=1))
        varying = samples.std(axis=0) > 0
        np.testing.assert_allclose(
            results[f"{base}/correlation"][np.ix_(varying, varying)],
            np.corrcoef(samples[:, varying].T),
        )


def test_ssc_variance_ratio_divides_the_sub_patch_variance_by_the_periodic_one(
    tiny_results: dict[str, Any],
) -> None:
    """ssc/<key>/variance_ratio is var(sub-patches)/var(periodic); no element-wise matrix."""
    results = tiny_results
    for key in ("cl/ngal=0", "pdf/ngal=30/smoothing=2"):
        sub = np.diag(results[f"sets/subpatches/{key}/covariance"])
        per = np.diag(results[f"sets/periodic/{key}/covariance"])
        defined = per != 0
        ratio = results[f"ssc/{key}/variance_ratio"]
        np.testing.assert_allclose(ratio[defined], sub[defined] / per[defined])
        assert f"ssc/{key}/covariance_ratio" not in results
        assert results[f"ssc/{key}/variance_ratio_interval"].shape == (2, ratio.size)
        assert results[f"ssc/{key}/correlation"].shape == (2, ratio.size, ratio.size)
    resampling = results["meta/comparisons"][""]["resampling"]
    assert resampling == {
        "method": "bootstrap over maps",
        "interval": "jackknife",
        "n_resamples": 200,
        "confidence": 0.68,
        "n_maps": [2, 2],
        "seed": 42,
    }


@pytest.mark.parametrize(("kind", "excess"), [("lognormal", True), ("gaussian", False)])
def test_lognormal_sub_patches_show_super_sample_variance_and_gaussian_ones_do_not(
    tiny_config: Factory, kind: str, excess: bool
) -> None:
    """128 vs 128 patches: lognormal Var Ĉ ratio > 1.6 in the top two ℓ bins; Gaussian ≈ 1.

    A variance ratio of 128 patches each scatters by ~0.18, the mean of two bins by ~0.13:
    the lognormal excess (~2.1 expected) clears 1.6 by ~4σ, the Gaussian mean stays within
    1 ± 0.35 (~3σ).
    """
    config = tiny_config(
        statistics={"names": ["cl"], "n_gal": [0]},
        synthetic={"kind": kind, "patches_per_side": 4, "n_large_fields": 8},
    )
    results = read_results(run_patch_statistics(config).results_file)
    ratio = results["ssc/cl/ngal=0/variance_ratio"]
    assert results["sets/subpatches/cl/ngal=0/samples"].shape[0] == 128
    if excess:
        assert ratio[-2:].mean() > 1.6, ratio
    else:
        assert abs(ratio.mean() - 1.0) < 0.35, ratio


@pytest.mark.parametrize(
    "executor",
    ["threads", "processes", pytest.param("dask", marks=pytest.mark.slow)],
)
def test_every_executor_gives_the_same_results_as_serial(
    tiny_config: Factory, same_results: SameResults, tiny_results: dict[str, Any], executor: str
) -> None:
    """Every number is seeded per map and patch, so the executor does not change any of them."""
    run = run_patch_statistics(tiny_config(executor), executor=executor, workers=2)
    assert (run.n_patches, run.failures) == (16, ())
    same_results(tiny_results, read_results(run.results_file))


def test_rerun_takes_every_task_from_the_journal_and_writes_the_same_file(
    tiny_config: Factory, same_results: SameResults
) -> None:
    """A second run in the same directory computes nothing and reproduces the results."""
    config = tiny_config()
    first = read_results(run_patch_statistics(config).results_file)
    again = run_patch_statistics(config)
    assert again.resumed == 4 + 16
    same_results(first, read_results(again.results_file))


def test_resuming_a_run_with_other_settings_is_refused(tiny_config: Factory) -> None:
    """Changed settings in the same run directory raise ConfigError; resume=False starts over."""
    run_patch_statistics(tiny_config())
    changed = tiny_config(statistics={"n_gal": [0, 15]})
    with pytest.raises(ConfigError, match="holds a run with other inputs or settings") as info:
        run_patch_statistics(changed)
    assert info.value.field == "run_dir"
    # It names what changed, as the runs used it (the preset gave the first one its n_gal).
    assert ": pipeline.statistics.n_gal [0.0, 30.0] → [0.0, 15.0]; resuming" in str(info.value)
    assert "--fresh" in str(info.value)
    fresh = run_patch_statistics(changed, resume=False)
    assert fresh.resumed == 0
    assert read_results(fresh.results_file)["meta/settings"]["n_gal"] == [0.0, 15.0]


def test_maps_are_cached_once_and_a_fresh_run_takes_them_from_the_cache(
    tiny_config: Factory,
) -> None:
    """Each map's patches are cached once; starting over reuses them instead of drawing again."""
    config = tiny_config()
    assert run_patch_statistics(config).maps_from_cache == 0
    assert run_patch_statistics(config, resume=False).maps_from_cache == 4
    with CacheManager(config=config) as cache:
        assert cache.invalidate_by_tags([MAP_TAG]) == 4
    assert run_patch_statistics(config, resume=False).maps_from_cache == 0


def test_cached_maps_damaged_between_the_stages_are_drawn_again_in_the_workers(
    tiny_config: Factory,
    same_results: SameResults,
    tiny_results: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers check every cached map they read; a damaged one is remade, no number changes."""
    import lensing_ssc.pipelines.patch_statistics as pipeline

    config = tiny_config("processes")
    damaged: list[Path] = []
    check = pipeline.check_geometries

    def damage_then_check(*args: Any) -> Any:
        for path in sorted(config.cache_dir.glob("values/*/*.val")):
            with open(path, "r+b") as handle:
                handle.seek(-8, 2)
                handle.write(b"\xff" * 8)
            damaged.append(path)
        return check(*args)  # the memory guard reads it, where the job has a memory limit

    monkeypatch.setattr(pipeline, "check_geometries", damage_then_check)
    run = run_patch_statistics(config, executor="processes", workers=2)
    assert len(damaged) == 4
    assert (run.n_patches, run.failures) == (16, ())
    same_results(tiny_results, read_results(run.results_file))


def test_a_map_too_large_for_the_cache_is_made_once_per_stage_not_once_per_patch(
    tiny_config: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a cache that holds nothing, patches of one map reuse the map in hand."""
    loads: list[str] = []
    original = SyntheticMap.load

    def counting_load(self: SyntheticMap) -> np.ndarray:
        loads.append(repr(self.seed))
        return original(self)

    monkeypatch.setattr(SyntheticMap, "load", counting_load)
    config = tiny_config()
    config.cache.disk = False
    config.cache.max_size_mb = 0.01  # a 4 × 64² map (128 KiB) never fits
    run = run_patch_statistics(config)  # no Python warning: the run's log says it
    assert "exceeds the memory tier's limit of 0.0 MiB" in run.log_file.read_text()
    assert run.n_patches == 16
    assert len(loads) == 2 * 4  # each map once in the maps stage, once in the patches stage


def test_progress_heartbeats_count_the_running_stage(tiny_config: Factory) -> None:
    """Heartbeat lines of the run count the patches of the patches stage, not the stages."""
    config = tiny_config(synthetic={"n_large_fields": 8})
    config.progress.enabled = True
    config.progress.heartbeat_interval = 0.01
    run_patch_statistics(config)
    records = [json.loads(line) for line in config.log_file.read_text().splitlines()]
    progress = [r for r in records if r["logger"] == "lensing_ssc.progress"]
    root = [r["progress"] for r in progress if r["progress"]["name"] == "patch statistics"]
    assert root[0]["total"] is None
    assert root[-1]["finished"]
    nested = [r for r in progress if r["message"].startswith("patch statistics [patches]: ")]
    assert nested
    assert {r["progress"]["total"] for r in nested} == {64}


def test_failed_maps_are_recorded_and_the_run_goes_on(tmp_path: Path, tiny_config: Factory) -> None:
    """A NaN patch and a non-square patch fail at once (bad data: no retry); the rest merges."""
    rng = np.random.default_rng(5)
    for i in range(4):
        np.save(tmp_path / f"good_{i}.npy", 1e-2 * rng.standard_normal((64, 64)))
    nan = 1e-2 * rng.standard_normal((64, 64))
    nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "oblong.npy", np.zeros((64, 32)))
    config = tiny_config(
        input="patches",
        patches={"files": [str(tmp_path / "*.npy")], "pixel_size_arcmin": 2.0},
        statistics={"preset": "quick"},
        retries=1,
    )
    run = run_patch_statistics(config)
    assert (run.n_maps, run.n_patches) == (4, 4)
    logged = [json.loads(line) for line in config.log_file.read_text().splitlines()]
    errors = [r for r in logged if (r["level"], r["logger"]) == ("ERROR", "lensing_ssc.pipelines")]
    assert [(r["map"], r["step"]) for r in errors] == [
        ("patches/map-0004", "maps"),
        ("patches/map-0005", "maps"),
    ]
    assert all("failed after 1 attempt(s)" in r["message"] for r in errors)
    failures = {f.key: f for f in run.failures}
    assert sorted(failures) == ["patches/map-0004", "patches/map-0005"]
    assert {f.stage for f in run.failures} == {"maps"}
    assert failures["patches/map-0004"].message.startswith(
        "patch in nan.npy contains 1 NaN or infinite pixel(s)"
    )
    assert failures["patches/map-0005"].message.startswith(
        "patch in oblong.npy must be a square 2-D array, got shape (64, 32)"
    )
    results = read_results(run.results_file)
    assert results["sets/patches/cl/ngal=0/samples"].shape[0] == 4
    assert {f["error_type"] for f in results["meta/failures"]} == {
        "lensing_ssc.core.base.exceptions.AnalysisError"
    }
    summary = run.summary_file.read_text()
    assert "failures    2 (the run went on without them)" in summary


def test_json_logs_carry_the_map_the_patch_and_the_step(tiny_config: Factory) -> None:
    """Log lines of the tasks are JSON with map, patch and step fields at the top level."""
    config = tiny_config(level="DEBUG")
    run_patch_statistics(config)
    records = [json.loads(line) for line in config.log_file.read_text().splitlines()]
    patch_lines = [r for r in records if r.get("step") == "statistics"]
    assert len(patch_lines) == 16
    assert {"map", "patch", "message"} <= set(patch_lines[0])
    assert {(r["map"], r["patch"]) for r in patch_lines} == {
        (f"{s}/map-{m:04d}", p)
        for s in ("subpatches", "periodic")
        for m in (0, 1)
        for p in range(4)
    }
    map_lines = [r for r in records if r.get("step") == "load" and "patch" not in r]
    assert {r["map"] for r in map_lines} == {
        "subpatches/map-0000",
        "subpatches/map-0001",
        "periodic/map-0000",
        "periodic/map-0001",
    }
    assert any(r.get("step") == "merge" for r in records)


def test_maps_too_large_for_the_memory_limit_are_refused_before_any_work(
    tiny_config: Factory,
) -> None:
    """An 8192² field per worker against a 1500 MiB limit raises ResourceError naming the limit."""
    config = tiny_config(synthetic={"patch_pixels": 2048, "patches_per_side": 4})
    config.resources.memory_limit_mb = 1500
    with pytest.raises(ResourceError, match="more than the memory limit of 1500 MiB") as info:
        run_patch_statistics(config)
    assert info.value.value == 1500
    assert not (config.run_dir / "tasks" / "maps.journal").exists()


def _estimate_mib(config: Any, executor: str) -> float:
    """The memory the run's guard expects, read from its refusal under a 1 MiB limit."""
    limit = config.resources.memory_limit_mb
    config.resources.memory_limit_mb = 1
    with pytest.raises(ResourceError, match=r"the run needs about (\d+) MiB") as info:
        run_patch_statistics(config, executor=executor, workers=2)
    config.resources.memory_limit_mb = limit
    return float(str(info.value).split("needs about ")[1].split(" MiB")[0])


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_the_memory_estimate_covers_what_the_run_really_uses(
    tiny_config: Factory, executor: str
) -> None:
    """The guard's estimate is at least the peak resident memory of the run's processes."""
    config = tiny_config(synthetic={"patch_pixels": 128, "n_large_fields": 4})
    estimate = _estimate_mib(config, executor)
    me = psutil.Process()
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                tree = [me, *me.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run_patch_statistics(config, executor=executor, workers=2, resume=False)
    finally:
        done.set()
        sampler.join()
    assert peak / 2**20 <= estimate


def test_worker_processes_that_cannot_fit_are_refused_with_their_parts_named(
    tiny_config: Factory,
) -> None:
    """Two worker processes each count a copy of this one: a limit just above it is refused."""
    config = tiny_config()
    used = psutil.Process().memory_info().rss / 2**20
    config.resources.memory_limit_mb = used * 1.5
    with pytest.raises(ResourceError, match="MiB per worker process: ") as info:
        run_patch_statistics(config, executor="processes", workers=2)
    assert "as a copy of this one" in str(info.value)
    assert "64 MiB of cached maps" not in str(info.value)  # the tiny run's maps are smaller
    assert not (config.run_dir / "tasks" / "maps.journal").exists()


def test_settings_that_do_not_fit_the_patches_fail_once_before_any_work(
    tiny_config: Factory,
) -> None:
    """32² patches of 2′ have no triangle in the lowest bispectrum bin: one clear error."""
    config = tiny_config(synthetic={"patch_pixels": 32})
    with pytest.raises(AnalysisError, match="has no closed triangle on a 32-pixel patch") as info:
        run_patch_statistics(config)
    assert str(info.value).startswith("pipeline.statistics does not fit patches of 32² × 2′")
    assert not (config.run_dir / "tasks").exists()


def test_a_run_refused_for_its_settings_runs_once_they_are_fixed(tiny_config: Factory) -> None:
    """ℓ_max above the patches' Nyquist fails before any map; the corrected run then starts."""
    config = tiny_config(statistics={"preset": "quick", "ell_max": 100000})
    with pytest.raises(AnalysisError, match="ℓ_max=100000 is above the Nyquist"):
        run_patch_statistics(config)
    config.pipeline.statistics.ell_max = 3000
    assert run_patch_statistics(config).n_patches == 16


def test_npz_results_hold_the_same_numbers_as_hdf5(
    tiny_config: Factory, same_results: SameResults
) -> None:
    """results_format: npz writes patch_statistics.npz that reads back like the HDF5 file."""
    hdf5 = run_patch_statistics(tiny_config("h5"))
    npz = run_patch_statistics(tiny_config("npz", results_format="npz"))
    assert npz.results_file.name == "patch_statistics.npz"
    same_results(
        read_results(hdf5.results_file),
        read_results(npz.results_file),
        pipeline_fields=("results_format",),
    )


def test_the_pipeline_leaves_the_figures_to_the_command(tiny_config: Factory) -> None:
    """With figures: true the pipeline still draws none: no figures/, none in the summary."""
    config = tiny_config(figures=True)
    run = run_patch_statistics(config)
    assert not (config.run_dir / "figures").exists()
    labels = [line.split()[0] for line in run.summary_file.read_text().splitlines() if line]
    assert "results" in labels
    assert "figure" not in labels
    assert "figures" not in run.to_dict()


def test_a_stop_after_the_last_task_still_finishes_the_run(
    tiny_config: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the results are written: the run completes, status says finished."""
    from lensing_ssc.pipelines import patch_statistics

    write = patch_statistics.write_results

    def write_then_get_terminated(*args: Any, **kwargs: Any) -> None:
        write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the run's handler turns it into a stop request

    monkeypatch.setattr(patch_statistics, "write_results", write_then_get_terminated)
    config = tiny_config()
    run = run_patch_statistics(config)
    assert run.results_file.exists()
    assert run.summary_file.exists()
    assert json.loads(config.status_file.read_text())["state"] == "finished"


def test_a_patch_of_another_size_is_refused_by_name_not_mixed_in(
    tmp_path: Path, tiny_config: Factory
) -> None:
    """A 128² file among 64² ones fails naming both sizes; the covariance has only 64² rows."""
    rng = np.random.default_rng(6)
    for i in range(3):
        np.save(tmp_path / f"small_{i}.npy", 1e-2 * rng.standard_normal((64, 64)))
    np.save(tmp_path / "big.npy", 1e-2 * rng.standard_normal((128, 128)))
    config = tiny_config(
        input="patches",
        patches={"files": [str(tmp_path / "*.npy")], "pixel_size_arcmin": 2.0},
        statistics={"preset": "quick"},
    )
    run = run_patch_statistics(config)
    assert (run.n_maps, run.n_patches) == (3, 3)
    (failure,) = run.failures
    assert failure.key == "patches/map-0000"  # big.npy sorts first
    assert "big.npy has patches of 128² × 2′" in failure.message
    assert "set's are 64² × 2′" in failure.message
    results = read_results(run.results_file)
    assert results["sets/patches/peaks/ngal=0/smoothing=2/samples"].shape[0] == 3
    assert "big.npy" in run.summary_file.read_text()


def test_a_full_disk_at_the_results_file_is_one_error_and_the_rerun_only_merges(
    tiny_config: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC writing the results: ResourceError naming the file; the rerun redoes no task."""
    from lensing_ssc.pipelines import patch_statistics

    write = patch_statistics.write_results

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    config = tiny_config()
    monkeypatch.setattr(patch_statistics, "write_results", disk_full)
    with pytest.raises(
        ResourceError, match=r"cannot write .*patch_statistics\.(h5|npz).*No space left"
    ):
        run_patch_statistics(config)
    monkeypatch.setattr(patch_statistics, "write_results", write)
    run = run_patch_statistics(config)
    assert run.resumed == 20  # 4 maps and 16 patches, all from the journals
    assert run.results_file.exists()


def test_a_full_disk_at_the_run_directory_says_what_may_be_deleted(
    tiny_config: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC claiming the run directory: a ConfigError whose hint points at the cache."""
    from lensing_ssc.pipelines import _run_record

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_run_record, "atomic_write", disk_full)
    with pytest.raises(ConfigError, match="No space left on device") as info:
        run_patch_statistics(tiny_config())
    assert "a run's cache directory may be deleted" in str(info.value)
