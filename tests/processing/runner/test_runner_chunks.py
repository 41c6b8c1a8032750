"""How many items each task carries: per-task overhead, workers sharing cores, the probes."""

from __future__ import annotations

import importlib.util

import pytest

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.processing.runner import TaskRunner
from lensing_ssc.processing.runner._chunk_sizer import ChunkSizer

needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason='needs the "dask" extra'
)


def test_the_last_short_items_go_several_to_a_task_where_each_task_has_an_overhead() -> None:
    """Spreading the last 64 items of 10 ms over 16 workers keeps 3 per task at 6 ms a task."""
    plain = ChunkSizer(None, 0.25)
    costly = ChunkSizer(None, 0.25, overhead=0.006)
    for sizer in (plain, costly):
        sizer.observe(0.1, 10)
    assert plain.size(64, 16) == 2  # two tasks per worker, whatever they cost
    assert costly.size(64, 16) == 3  # 6 ms is 20 % of three items' 30 ms
    assert costly.size(10_000, 16) == 25  # away from the end: the target decides


def test_items_timed_on_workers_that_share_cores_are_sized_by_their_work() -> None:
    """Eight workers per core make 10 ms of work last 80 ms: the task still holds 0.25 s of work."""
    alone = ChunkSizer(None, 0.25)
    shared = ChunkSizer(None, 0.25, sharing=8.0)
    for sizer in (alone, shared):
        sizer.observe(0.8, 10)  # 80 ms an item, as measured
    assert alone.size(10_000, 16) == 3
    assert shared.size(10_000, 16) == 25


def test_an_executor_with_a_task_overhead_first_gets_one_probe_per_worker() -> None:
    """Before any item is measured, a costly executor gets one task per worker, a pool two."""
    assert ChunkSizer(None, 0.25, overhead=0.006).tasks_per_worker() == 1
    assert ChunkSizer(None, 0.1).tasks_per_worker() == 2
    sizer = ChunkSizer(None, 0.25, overhead=0.006)
    sizer.observe(1.0, 10)
    assert sizer.tasks_per_worker() == 2


def test_workers_that_share_cores_keep_more_work_queued() -> None:
    """A hand-off takes longer where workers share cores: 0.1 s of queue per sharing worker."""
    alone = ChunkSizer(None, 0.25, task_mean=0.2)
    shared = ChunkSizer(None, 0.25, task_mean=0.2, sharing=8.0)
    assert alone.tasks_per_worker() == 2
    assert shared.tasks_per_worker() == 5  # 0.8 s of queue in tasks of 0.2 s, and the one running


@needs_dask
def test_a_local_cluster_of_more_workers_than_cores_says_how_many_share_each() -> None:
    """The cluster the runner starts knows its workers share this machine's cores; a joined
    cluster's workers are taken to have a core each."""
    from lensing_ssc.processing.runner._dask import DaskAdapter

    cpus = usable_cpus()
    local = DaskAdapter(client=None, scheduler_address=None, n_workers=4 * cpus, setup=None)
    few = DaskAdapter(client=None, scheduler_address=None, n_workers=1, setup=None)
    joined = DaskAdapter(
        client=None, scheduler_address="tcp://127.0.0.1:1", n_workers=4 * cpus, setup=None
    )
    assert local.workers_per_core == 4.0
    assert few.workers_per_core == 1.0
    assert joined.workers_per_core == 1.0


def _double(x: int) -> int:
    return 2 * x


@needs_dask
def test_many_short_items_on_a_crowded_local_cluster_come_back_whole_and_in_order() -> None:
    """Sized in large tasks on workers that share cores, every item's result is still its own."""
    with TaskRunner("dask", max_workers=2 * usable_cpus()) as runner:
        result = runner.map(_double, range(500))
    assert result.ok
    assert result.results == [2 * x for x in range(500)]
