"""Small pipeline configurations shared by the pipeline tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.core.config._loading import merge
from lensing_ssc.pipelines import PipelineConfig

ConfigFactory = Callable[..., PipelineConfig]

TINY_PIPELINE: dict[str, Any] = {
    "executor": "serial",
    "retries": 0,
    "figures": False,
    "synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2},
}
"""Two 128² lognormal fields cut into 8 sub-patches of 64², and 8 periodic 64² fields."""


def make_config(run_dir: Path, *, level: str = "INFO", **pipeline: Any) -> PipelineConfig:
    """A quiet configuration (JSON log file, no console, no progress display) in ``run_dir``."""
    return PipelineConfig(
        run_dir=run_dir,
        logging={"console": False, "format": "json", "level": level},
        progress={"enabled": False},
        pipeline=merge(TINY_PIPELINE, pipeline),
    )


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The results file of one tiny synthetic run, read back (shared by read-only tests)."""
    from lensing_ssc.pipelines import read_results, run_patch_statistics

    config = make_config(tmp_path_factory.mktemp("tiny") / "run")
    return read_results(run_patch_statistics(config).results_file)


@pytest.fixture
def tiny_config(tmp_path: Path) -> ConfigFactory:
    """Build a tiny configuration in ``tmp_path/<name>``, with pipeline overrides."""

    def build(name: str = "run", *, level: str = "INFO", **pipeline: Any) -> PipelineConfig:
        return make_config(tmp_path / name, level=level, **pipeline)

    return build


def assert_same_results(
    first: Mapping[str, Any], second: Mapping[str, Any], *, pipeline_fields: tuple[str, ...] = ()
) -> None:
    """Every dataset equal bit for bit, the metadata equal except where and how it ran.

    The run directory and what ran the tasks (executor, scheduler, workers) may differ;
    ``pipeline_fields`` names further fields of the recorded pipeline section allowed to.
    """
    arrays = sorted(k for k in first if not k.startswith("meta/"))
    assert arrays == sorted(k for k in second if not k.startswith("meta/"))
    for key in arrays:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    for key in ("meta/settings", "meta/failures", "meta/sets", "meta/lensing_ssc_version"):
        assert first[key] == second[key], key
    configs = []
    for results in (first, second):
        config = {k: v for k, v in results["meta/config"].items() if k != "run_dir"}
        config["pipeline"] = {
            k: v
            for k, v in config["pipeline"].items()
            if k not in (*pipeline_fields, "executor", "scheduler", "workers")
        }
        configs.append(config)
    assert configs[0] == configs[1]


@pytest.fixture
def same_results() -> Callable[..., None]:
    """The assertion that two results files hold the same numbers and metadata."""
    return assert_same_results
