"""Faults of a joined Dask cluster: a lost scheduler, no workers left, an item killing its worker.

Each test starts its own scheduler and workers as processes on 127.0.0.1 (``start_dask`` in
``conftest.py``) and waits on the runner's hooks and on marker files, not on sleeps.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (installed with distributed)

from lensing_ssc.core.base.exceptions import InterruptedRunError  # noqa: E402
from lensing_ssc.processing.runner import RunnerHooks, TaskRunner  # noqa: E402

from .conftest import DaskProcesses  # noqa: E402

# Dask workers cannot import test modules by name: ship their functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ITEMS = 40


def nap_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


def kill_on_three(job: tuple[int, str]) -> int:
    """Square the item; item 3 leaves a marker and kills its worker process."""
    x, folder = job
    if x == 3:
        Path(folder, f"run-{os.getpid()}-{time.monotonic_ns()}").touch()
        os._exit(1)
    return x * x


def _stopping_after(count: int, action: Callable[[], None]) -> RunnerHooks:
    """Hooks that call ``action`` once ``count`` items are durable."""
    done: list[str] = []

    def on_complete(key: str, value: object) -> None:
        done.append(key)
        if len(done) == count:
            action()

    return RunnerHooks(on_complete=on_complete)


def test_a_killed_scheduler_stops_the_run_and_a_new_cluster_finishes_it(
    start_dask: Callable[..., DaskProcesses], tmp_path: Path
) -> None:
    """A scheduler killed mid-run is an InterruptedRunError; nothing failed; a rerun finishes."""
    cluster = start_dask(workers=2)
    journal = tmp_path / "squares.journal"
    hooks = _stopping_after(5, cluster.scheduler.kill)
    with (
        TaskRunner("dask", scheduler_address=cluster.address, chunksize=1, hooks=hooks) as runner,
        pytest.raises(InterruptedRunError) as info,
    ):
        runner.map(nap_square, range(ITEMS), journal=journal)
    partial = info.value.value
    assert (info.value.signal_name or "").startswith(
        f"lost the Dask scheduler at {cluster.address}: "
    )
    assert len(str(info.value).splitlines()) == 1
    assert (partial.failed, partial.failures) == (0, ())
    assert 5 <= partial.completed < ITEMS

    second = start_dask(workers=2)
    with TaskRunner("dask", scheduler_address=second.address) as runner:
        rerun = runner.map(nap_square, range(ITEMS), journal=journal)
    assert (rerun.skipped, rerun.completed, rerun.failed) == (
        partial.completed,
        ITEMS - partial.completed,
        0,
    )
    assert rerun.results == [x * x for x in range(ITEMS)]


def test_a_cluster_without_workers_stops_after_the_grace_with_one_warning(
    start_dask: Callable[..., DaskProcesses], caplog: pytest.LogCaptureFixture
) -> None:
    """All workers killed and none started: the run stops after no_workers_timeout, warned once."""
    cluster = start_dask(workers=1)
    hooks = _stopping_after(3, cluster.kill_workers)
    runner = TaskRunner(
        "dask",
        scheduler_address=cluster.address,
        chunksize=1,
        no_workers_timeout=1.0,
        hooks=hooks,
    )
    started = time.monotonic()
    with (
        runner,
        caplog.at_level(logging.WARNING, logger="lensing_ssc.processing.runner"),
        pytest.raises(InterruptedRunError) as info,
    ):
        runner.map(nap_square, range(ITEMS))
    assert time.monotonic() - started < 20
    reason = info.value.signal_name or ""
    assert reason.startswith(f"the Dask cluster at {cluster.address} had no workers for ")
    assert float(reason.rsplit(" ", 2)[-2]) >= 1.0
    assert info.value.value.failed == 0
    warnings = [r.getMessage() for r in caplog.records if "has no workers" in r.getMessage()]
    assert warnings == [
        f"the Dask cluster at {cluster.address} has no workers; waiting up to 1 s for one"
    ]


def test_a_worker_killing_item_is_run_retries_plus_one_times_whatever_allowed_failures(
    start_dask: Callable[..., DaskProcesses], tmp_path: Path
) -> None:
    """With allowed-failures 1 and retries 3, the killer runs 4 times in all; others complete."""
    cluster = start_dask(workers=2, nanny=True, allowed_failures=1)
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = [(x, str(markers)) for x in range(8)]
    with TaskRunner("dask", scheduler_address=cluster.address, chunksize=1, retries=3) as runner:
        result = runner.map(kill_on_three, jobs)
    (failure,) = result.failures
    assert (failure.index, failure.error_type, failure.attempts) == (3, "WorkerDied", 4)
    assert len(list(markers.iterdir())) == 4
    assert result.results == [x * x if x != 3 else None for x in range(8)]
