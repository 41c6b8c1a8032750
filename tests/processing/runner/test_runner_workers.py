"""TaskRunner's answers: how many items run at once, in this process or not, in forks or not."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.processing.runner import TaskRunner


def thread_name(_: int) -> str:
    """The name of the thread that runs the item."""
    return threading.current_thread().name


def test_serial_runs_one_item_at_a_time_in_this_process() -> None:
    """A serial runner answers 1 worker, whatever max_workers says, and in this process."""
    runner = TaskRunner("serial", max_workers=8)
    assert runner.max_workers == 1
    assert runner.runs_in_this_process
    assert not runner.forks_workers


def test_threads_default_to_cpus_plus_four_and_start_that_many() -> None:
    """Threads default to the usable CPUs + 4 (at most 32): the size the pool is started with."""
    with TaskRunner("threads") as runner:
        assert runner.max_workers == min(32, usable_cpus() + 4)
        assert runner.runs_in_this_process
        assert not runner.forks_workers
        runner.map(thread_name, range(3))
        assert runner.get_status()["workers"] == runner.max_workers


def test_processes_default_to_the_usable_cpus_and_run_elsewhere() -> None:
    """Processes default to the usable CPUs, run outside this process, and honour max_workers."""
    assert TaskRunner("processes").max_workers == usable_cpus()
    assert TaskRunner("processes", max_workers=3).max_workers == 3
    assert not TaskRunner("processes").runs_in_this_process


@pytest.mark.parametrize(
    ("mp_context", "forks"),
    [("fork", True), ("spawn", False), (multiprocessing.get_context("spawn"), False)],
)
def test_processes_fork_only_with_the_fork_start_method(mp_context: object, forks: bool) -> None:
    """forks_workers follows the start method given, by name or as a context."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform cannot fork")
    assert TaskRunner("processes", mp_context=mp_context).forks_workers is forks  # type: ignore[arg-type]


def test_processes_without_a_start_method_follow_pythons_default() -> None:
    """Without mp_context, forks_workers says whether Python's default start method forks."""
    method = multiprocessing.get_start_method(allow_none=True)
    default = method or multiprocessing.get_all_start_methods()[0]
    assert TaskRunner("processes").forks_workers is (default == "fork")
    assert multiprocessing.get_start_method(allow_none=True) == method  # asking fixed nothing


def test_a_borrowed_thread_pool_runs_in_this_process() -> None:
    """A ThreadPoolExecutor instance runs items here; its size is max_workers, else the CPUs."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert TaskRunner(pool, max_workers=2).max_workers == 2
        assert TaskRunner(pool).max_workers == usable_cpus()
        assert TaskRunner(pool).runs_in_this_process
        assert not TaskRunner(pool).forks_workers


def test_a_borrowed_process_pool_runs_elsewhere() -> None:
    """A ProcessPoolExecutor instance, or a factory of one, runs items outside this process."""
    with ProcessPoolExecutor(max_workers=1) as pool:
        runner = TaskRunner(pool, max_workers=1)
        assert runner.max_workers == 1
        assert not runner.runs_in_this_process
        assert not runner.forks_workers  # a user's executor is not asked
    assert not TaskRunner(ProcessPoolExecutor).runs_in_this_process


def test_dask_runs_elsewhere_on_the_usable_cpus() -> None:
    """Dask workers are their own processes; the default is the usable CPUs."""
    runner = TaskRunner("dask")
    assert runner.max_workers == usable_cpus()
    assert not runner.runs_in_this_process


@pytest.mark.parametrize("mp_context", [None, "forkserver", "spawn"])
def test_a_local_dask_cluster_never_forks_this_process(mp_context: str | None) -> None:
    """The local Dask cluster's workers are never forks of this process (fork is refused)."""
    assert not TaskRunner("dask", mp_context=mp_context).forks_workers
    joined = TaskRunner("dask", mp_context="fork", scheduler_address="tcp://10.0.0.5:8786")
    assert not joined.forks_workers  # a joined cluster's workers are never this process's
