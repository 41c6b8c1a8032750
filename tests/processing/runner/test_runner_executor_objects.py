"""A user's executor object: its size is asked of it, it is named for the record, and the
progress counts of its workers reach the driver even where the local socket cannot.

The executors here are the standard library's pools (mpi4py's ``MPIPoolExecutor`` runs
under ``mpiexec`` in ``tests/examples/test_slurm_examples.py``).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext, _channel
from lensing_ssc.processing.managers.progress import ProgressManager, ProgressReporter
from lensing_ssc.processing.managers.progress import _reporter as _progress_reporter
from lensing_ssc.processing.runner import TaskRunner

STEPS = 3


def report_steps(item: tuple[int, ProgressReporter]) -> int:
    """Report ``STEPS`` sub-item counts; return the worker's pid."""
    _, reporter = item
    for _ in range(STEPS):
        time.sleep(0.005)
        reporter.update(1)
    return os.getpid()


class SaysNothing(Executor):
    """An executor that runs each call at once and tells nobody its size."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@pytest.fixture(autouse=True)
def _no_unsent_counts() -> Iterator[None]:
    """No test sees counts another left unsent in this process."""
    _progress_reporter.reset_unsent()
    yield
    _progress_reporter.reset_unsent()


@pytest.fixture
def unreachable_channels(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every local channel the driver opens has its socket file removed once bound."""
    opened: list[Any] = []
    original = _channel.ChannelServer.__init__

    def bind_then_hide(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if isinstance(self.address, str):
            os.unlink(self.address)
        opened.append(self)

    monkeypatch.setattr(_channel.ChannelServer, "__init__", bind_then_hide)
    return opened


def test_max_workers_is_what_a_borrowed_pool_was_made_with() -> None:
    """A ProcessPoolExecutor of 3 plans 3 at once, not the usable CPUs; max_workers= wins."""
    with ProcessPoolExecutor(max_workers=3) as pool:
        assert TaskRunner(pool).max_workers == 3
        assert TaskRunner(pool, max_workers=5).max_workers == 5


def test_a_factory_is_started_to_be_asked_its_size() -> None:
    """The class as a factory is built on the question and answers with its own size."""
    factory = functools.partial(ThreadPoolExecutor, max_workers=3)
    with TaskRunner(factory) as runner:
        assert (runner.max_workers, runner.worker_count()) == (3, 3)
        assert runner.map(abs, [-1, 2]).results == [1, 2]


def test_an_executor_that_does_not_say_is_planned_with_the_usable_cpus() -> None:
    """Without num_workers or _max_workers the runner falls back to this machine's CPUs."""
    from lensing_ssc.core.base.cpus import usable_cpus

    runner = TaskRunner(SaysNothing())
    assert runner.max_workers == usable_cpus()
    assert runner.map(abs, [-3]).results == [3]


@pytest.mark.parametrize(
    ("executor", "name"),
    [
        ("processes", "processes"),
        (
            functools.partial(ThreadPoolExecutor, max_workers=1),
            "concurrent.futures.ThreadPoolExecutor",
        ),
        (SaysNothing(), f"{__name__}.SaysNothing"),
        (lambda: ThreadPoolExecutor(1), "concurrent.futures.ThreadPoolExecutor"),
    ],
    ids=["name", "class-factory", "instance", "other-factory"],
)
def test_executor_name_is_the_name_or_the_public_class_path(executor: Any, name: str) -> None:
    """Names stay names; objects are their class through the shortest module exporting it."""
    with TaskRunner(executor) as runner:
        assert runner.executor_name == name


def test_counts_of_a_user_executors_workers_come_back_with_results_without_the_socket(
    tmp_path: Path, unreachable_channels: list[Any]
) -> None:
    """With no socket to reach, every sub-item count of a process pool's workers arrives."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run",
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
    )
    items = 12
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"))
    with (
        pool,
        ManagerContext(config=config, executor=pool, stop_signals=()) as ctx,
        ctx.progress.subprogress("sub-items", total=items * STEPS) as steps,
    ):
        reporter = steps.reporter()
        result = ctx.map(
            report_steps,
            [(x, reporter) for x in range(items)],
            name="steps",
            key=lambda pair: pair[0],
            chunksize=1,
        )
        counted = steps.current
    assert os.getpid() not in set(result.results)
    assert any(s.name.startswith("lensing_ssc-progress") for s in unreachable_channels)
    assert counted == items * STEPS


def test_unsent_counts_are_handed_out_once_and_only_to_their_own_manager(
    unreachable_channels: list[Any],
) -> None:
    """A reporter without its socket keeps counts; another manager's tree takes none of them."""
    with (
        ProgressManager(enabled=False) as mine,
        ProgressManager(enabled=False) as other,
        mine.subprogress("a", total=5) as task,
    ):
        reporter = task.reporter()
        reporter.update(2)
        reporter.update(3)
        counts = ProgressManager.unsent_counts()
        assert ProgressManager.unsent_counts() is None
        assert counts is not None
        other.take_worker_counts(counts)
        assert task.current == 0
        mine.take_worker_counts(counts)
        assert task.current == 5
