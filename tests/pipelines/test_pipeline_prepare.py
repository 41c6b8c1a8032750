"""What the maps of a run share is computed once: before worker processes are forked, or
into the run's cache for workers that are not forks of the run's process."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.analysis import HalofitConvergenceSpectrum, lognormal_field
from lensing_ssc.analysis import fields as fields_module
from lensing_ssc.analysis.fields import prepare_field
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines import PipelineConfig, PipelineSection
from lensing_ssc.pipelines._inputs import plan_maps, prepare_maps
from lensing_ssc.pipelines._tasks import MapStore, MapWorker
from lensing_ssc.processing.managers import CacheManager

_SECTION = PipelineSection.model_validate(
    {"synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 3}}
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_after_prepare_maps_draws_its_maps_without_recomputing_the_spectrum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker forked after prepare_maps draws identical maps without evaluating the spectrum."""
    maps = plan_maps(_SECTION)
    expected = [task.source.load() for task in maps]
    fields_module._plans.clear()
    prepare_maps(maps)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: any evaluation of the spectrum on a grid now fails
        os.close(read)
        code = 1
        try:

            def refuse(*args: object) -> None:
                raise RuntimeError("the spectrum was evaluated again")

            monkeypatch.setattr(fields_module, "spectrum_on_grid", refuse)
            same = all(
                np.array_equal(task.source.load(), want)
                for task, want in zip(maps, expected, strict=True)
            )
            code = 0 if same else 2
        except BaseException as exc:  # report, never run the parent's test code
            os.write(write, repr(exc).encode())
            code = 3
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        message = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, message or "maps differ after prepare_maps"


def test_prepared_fields_are_the_fields_drawn_without_preparing() -> None:
    """Preparing a field plan ahead does not change the field a seed draws."""
    model = HalofitConvergenceSpectrum()
    shift = -model.minimum_convergence()
    fields_module._plans.clear()
    cold = lognormal_field(64, 2.0, model, np.random.default_rng(5), shift=shift)
    fields_module._plans.clear()
    prepare_field(64, 2.0, model, shift=shift)
    warm = lognormal_field(64, 2.0, model, np.random.default_rng(5), shift=shift)
    np.testing.assert_array_equal(warm, cold)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"n_pixels": 4}, "n_pixels=4"),
        ({"pixel_size_arcmin": -1.0}, "-1"),
        ({"shift": 0.0}, "shift"),
    ],
)
def test_prepare_field_refuses_bad_input_by_name(kwargs: dict[str, float], named: str) -> None:
    """A bad size, pixel size or shift is an AnalysisError naming the value."""
    args = {"n_pixels": 64, "pixel_size_arcmin": 2.0, **kwargs}
    shift = args.pop("shift", None)
    with pytest.raises(AnalysisError, match=named):
        prepare_field(
            int(args["n_pixels"]),
            float(args["pixel_size_arcmin"]),
            HalofitConvergenceSpectrum(),
            shift=shift,
        )


def test_a_run_without_figures_never_imports_matplotlib(tmp_path: Path) -> None:
    """A run with figures off never pays for importing matplotlib."""
    script = textwrap.dedent(
        f"""
        import sys
        from lensing_ssc.pipelines import PipelineConfig
        from lensing_ssc.pipelines import run_patch_statistics
        config = PipelineConfig(
            run_dir={str(tmp_path / "run")!r},
            logging={{"console": False}},
            progress={{"enabled": False}},
            pipeline={{"figures": False, "synthetic": {{"patch_pixels": 64,
                "patches_per_side": 2, "n_large_fields": 1}}}},
        )
        run_patch_statistics(config)
        print("matplotlib" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False", out.stderr


def test_a_spectrum_that_cannot_be_prepared_is_left_to_the_map_tasks(tmp_path: Path) -> None:
    """A spectrum that fails while preparing fails each map task instead of the whole run."""
    table = tmp_path / "bad.txt"
    table.write_text("100 1e-9\n1000 -1e-9\n10000 1e-9\n")
    section = PipelineSection.model_validate(
        {
            "synthetic": {
                "patch_pixels": 64,
                "patches_per_side": 2,
                "n_large_fields": 1,
                "spectrum_table": str(table),
            }
        }
    )
    maps = plan_maps(section)
    prepare_maps(maps)  # does not raise
    with pytest.raises(AnalysisError, match="must be > 0"):
        maps[0].source.load()


def test_worker_tasks_import_nothing_the_pipeline_module_did_not(tmp_path: Path) -> None:
    """Workers forked from a run's process import nothing more to make a map and measure it."""
    script = textwrap.dedent(
        f"""
        import sys
        from lensing_ssc.pipelines import PipelineConfig
        from lensing_ssc.pipelines import run_patch_statistics
        from lensing_ssc.pipelines._inputs import plan_maps
        from lensing_ssc.pipelines._tasks import MapStore, MapWorker, PatchTask, PatchWorker
        config = PipelineConfig(
            run_dir={str(tmp_path / "run")!r},
            pipeline={{"synthetic": {{"patch_pixels": 64, "patches_per_side": 2,
                "n_large_fields": 1}}}},
        )
        maps = plan_maps(config.pipeline)
        store = MapStore(config)  # as in a worker: opens the run's cache on first use
        settings = config.pipeline.statistics_settings()
        before = set(sys.modules)
        MapWorker(store)(maps[0])
        PatchWorker(store, settings, config.pipeline.seed)(PatchTask(maps[0], 0))
        print(sorted(set(sys.modules) - before))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


_DRAW_IN_A_FRESH_PROCESS = """
import pickle, sys
import numpy as np
from lensing_ssc.analysis import fields

def refuse(*args):
    raise RuntimeError("the spectrum was evaluated")

fields.spectrum_on_grid = refuse
from lensing_ssc.pipelines._tasks import MapWorker
with open(sys.argv[1], "rb") as fh:
    store, maps = pickle.load(fh)
expected = np.load(sys.argv[2])
try:
    for task, want in zip(maps, expected, strict=True):
        MapWorker(store)(task)
        assert np.array_equal(store.patches(task)[0], want), task.map_id
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
else:
    print("same maps")
"""


@pytest.mark.parametrize("shared", [True, False])
def test_a_worker_that_is_no_fork_draws_its_maps_from_the_plans_the_run_shared(
    tmp_path: Path, shared: bool
) -> None:
    """A fresh process draws identical maps from the plans the run's process put in the run's
    cache, without evaluating the spectrum; without sharing it would have to evaluate it."""
    config = PipelineConfig(
        run_dir=tmp_path / "run",
        pipeline={"synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2}},
    )
    maps = plan_maps(config.pipeline)
    expected = np.stack([task.source.load() for task in maps])
    with CacheManager(config=config) as cache:
        store = MapStore(config, cache)
        if shared:
            store.share_plans(maps)
        with open(tmp_path / "store.pkl", "wb") as fh:
            pickle.dump((store, maps), fh)
        np.save(tmp_path / "expected.npy", expected)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _DRAW_IN_A_FRESH_PROCESS,
                str(tmp_path / "store.pkl"),
                str(tmp_path / "expected.npy"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
    want = "same maps" if shared else "RuntimeError: the spectrum was evaluated"
    assert out.stdout.strip() == want, out.stdout + out.stderr


def test_a_recipe_that_cannot_be_shared_fails_its_map_tasks_not_the_run(tmp_path: Path) -> None:
    """A spectrum table with bad values is not shared: each map task meets the AnalysisError."""
    table = tmp_path / "bad.txt"
    table.write_text("100 1e-9\n1000 -1e-9\n10000 1e-9\n")
    config = PipelineConfig(
        run_dir=tmp_path / "run",
        pipeline={
            "synthetic": {
                "patch_pixels": 64,
                "patches_per_side": 2,
                "n_large_fields": 1,
                "spectrum_table": str(table),
            }
        },
    )
    maps = plan_maps(config.pipeline)
    with CacheManager(config=config) as cache:
        store = MapStore(config, cache)
        store.share_plans(maps)  # does not raise
        with pytest.raises(AnalysisError, match="must be > 0"):
            MapWorker(store)(maps[0])
