"""How a run knows its inputs: small files by their content, large ones by size and time;
and a plan too large for the job's memory is refused before anything is built."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import ConfigError, ResourceError
from lensing_ssc.pipelines import PipelineConfig, run_patch_statistics
from lensing_ssc.pipelines import _inputs as inputs_module
from lensing_ssc.pipelines._config import PipelineSection
from lensing_ssc.pipelines._inputs import plan_maps


def _patch_file(path: Path, seed: int) -> None:
    np.save(path, np.random.default_rng(seed).normal(scale=0.01, size=(96, 96)))


def _keys(section: PipelineSection) -> list[object]:
    return [task.source.cache_key() for task in plan_maps(section)]


def _rewrite_keeping_size_and_time(path: Path, seed: int) -> None:
    """Other numbers in the file, with its size and modification time as they were
    (what ``cp -p`` or ``rsync -t`` of another version does)."""
    before = path.stat()
    _patch_file(path, seed)
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_small_input_with_other_content_but_the_same_size_and_time_is_another_input(
    tmp_path: Path,
) -> None:
    """A small patch file rewritten with its size and time kept gets another cache key."""
    path = tmp_path / "a.npy"
    _patch_file(path, 1)
    section = PipelineSection(input="patches", patches={"files": [str(path)]})
    before = _keys(section)
    _rewrite_keeping_size_and_time(path, 2)
    assert _keys(section) != before


def test_touching_a_small_input_keeps_its_identity(tmp_path: Path) -> None:
    """A new modification time alone (``touch``) does not make a small input another one."""
    path = tmp_path / "a.npy"
    _patch_file(path, 1)
    section = PipelineSection(input="patches", patches={"files": [str(path)]})
    before = _keys(section)
    os.utime(path, ns=(1, 10**18))
    assert _keys(section) == before


def test_files_above_the_hash_size_are_known_by_size_and_time(tmp_path: Path) -> None:
    """hash_inputs_mb=0 identifies every file by size and time: a touch changes it."""
    path = tmp_path / "a.npy"
    _patch_file(path, 1)
    section = PipelineSection(input="patches", patches={"files": [str(path)]}, hash_inputs_mb=0)
    before = _keys(section)
    os.utime(path, ns=(1, 10**18))
    assert _keys(section) != before


def test_a_resumed_run_refuses_an_input_rewritten_with_its_size_and_time(
    tmp_path: Path,
) -> None:
    """Resuming after an input changed in place is refused, not answered with old results."""
    path = tmp_path / "a.npy"
    _patch_file(path, 1)
    _patch_file(tmp_path / "b.npy", 3)  # a covariance needs two patches
    config = PipelineConfig(
        run_dir=tmp_path / "run",
        logging={"console": False},
        progress={"enabled": False},
        pipeline={
            "input": "patches",
            "patches": {"files": [str(tmp_path / "*.npy")], "pixel_size_arcmin": 3.0},
            "executor": "serial",
            "figures": False,
            "statistics": {"names": ["cl"]},
        },
    )
    run_patch_statistics(config)
    _rewrite_keeping_size_and_time(path, 2)
    with pytest.raises(ConfigError, match="other inputs or settings"):
        run_patch_statistics(config)


def test_a_plan_too_large_for_memory_is_refused_before_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A valid but huge n_large_fields is refused by the plan, before a task is built.

    (10**6 fields: some 16 GB of tasks and records, refused under 1000 MiB; a plan that
    built them would cost seconds and about 1 GB, not hang the machine.)
    """
    section = PipelineSection(synthetic={"n_large_fields": 10**6})
    with pytest.raises(ResourceError, match="n_large_fields") as info:
        plan_maps(section, memory_limit_mb=1000)
    assert "1000 MiB of the job's memory limit" in str(info.value)
    monkeypatch.setattr(inputs_module.psutil, "virtual_memory", lambda: _Memory(1000 * 2**20))
    with pytest.raises(ResourceError, match="1000 MiB of this machine's memory"):
        plan_maps(section)  # no limit given: the machine's memory bounds it
    huge = PipelineSection(synthetic={"n_large_fields": 10**22})
    with pytest.raises(ResourceError, match=r"n_large_fields = 10\^22"):
        plan_maps(huge, memory_limit_mb=1000)


class _Memory:
    """What psutil.virtual_memory() says of a machine with ``total`` bytes."""

    def __init__(self, total: int) -> None:
        self.total = total


def test_the_pipeline_refuses_a_plan_too_large_for_the_jobs_memory(tmp_path: Path) -> None:
    """A plan above the job's memory limit is refused before the run directory is made."""
    config = PipelineConfig(
        run_dir=tmp_path / "run",
        resources={"memory_limit_mb": 10},
        pipeline={"executor": "serial", "synthetic": {"n_large_fields": 3000}},
    )
    with pytest.raises(ResourceError, match="n_large_fields"):
        run_patch_statistics(config)
    assert not (tmp_path / "run").exists()
