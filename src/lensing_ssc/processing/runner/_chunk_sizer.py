"""How many items each task of a parallel run carries, and how many tasks stay submitted.

:class:`ChunkSizer` sizes each task so it holds about the executor's ``chunk_target`` of
work (or ``chunksize`` items when one is given), and, as the last items are spread over the
workers, so that the executor's ``task_overhead`` stays a small share of each task. Work is
the items' measured time divided by the executor's ``workers_per_core``: on a machine with
more workers than cores, an item takes that many times longer than the work it does. It
also says how many tasks to keep submitted per worker: two, or enough for about 0.1 s of
queued work, at most 16.

Not here: the loop that submits the tasks (:mod:`._engine`) and what it does with each
task's outcome (:mod:`._parallel_run`, which feeds the measured times back through
:meth:`ChunkSizer.observe`); the executors' own figures are their adapters'
(:class:`~._adapter.Adapter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ChunkSizer"]

_MAX_CHUNK = 1000
_QUEUED_SECONDS = 0.1
_MAX_TASKS_PER_WORKER = 16
# A task of items of known length holds enough of them that the executor's per-task
# overhead is at most this share of its work, even as the last items are spread over the
# workers: the pipeline's patches (~10 ms of work each) on a Dask cluster (~6 ms a task)
# end three to a task rather than one, and no worker waits on a longer task than ~30 ms.
_OVERHEAD_SHARE = 0.2


@dataclass
class ChunkSizer:
    """Items per task: fixed, or sized from measured item times to hold ``target`` seconds
    of work.

    ``overhead`` is what each task costs beyond its items (:attr:`Adapter.task_overhead`);
    ``sharing`` the workers that share each core (:attr:`Adapter.workers_per_core`), by
    which an item's measured time is divided to give its work.

    Example:
        >>> sizer = ChunkSizer(fixed=None, target=0.25)
        >>> sizer.size(remaining=100, workers=4)  # nothing measured yet: one item a task
        1
        >>> sizer.observe(0.01, 1)  # 10 ms an item
        >>> sizer.size(remaining=100, workers=4)  # 12 a task still leaves 2 per worker
        12
    """

    fixed: int | None
    target: float
    mean: float | None = None
    task_mean: float | None = None
    overhead: float = 0.0
    sharing: float = 1.0

    def observe(self, seconds: float, count: int) -> None:
        """Fold a task's measured time (per item and per task) into the running means."""
        per_item = seconds / max(count, 1)
        self.mean = per_item if self.mean is None else 0.8 * self.mean + 0.2 * per_item
        self.task_mean = seconds if self.task_mean is None else 0.8 * self.task_mean + 0.2 * seconds

    def tasks_per_worker(self) -> int:
        """Tasks to keep submitted per worker: at least 2, and ~0.1 s of queued work.

        The queued work is what a worker runs while the runner is slow to hand it more (on
        a loaded machine the runner's own process waits for a core too; where workers share
        cores, a hand-off takes ``sharing`` times longer, and as much more is queued). Before
        any task has been measured: 2, or 1 where each task has an overhead (its items are
        sized once the first one is back).
        """
        if self.task_mean is None:
            return 1 if self.overhead > 0 else 2
        queued = _QUEUED_SECONDS * max(self.sharing, 1.0)
        return max(
            2,
            min(_MAX_TASKS_PER_WORKER, 1 + math.ceil(queued / max(self.task_mean, 1e-6))),
        )

    def size(self, remaining: int, workers: int) -> int:
        """Items for the next task, leaving enough tasks to keep every worker busy, but
        never so few that the per-task overhead passes its share of the task."""
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:
            return 1
        work = max(self.mean, 1e-9) / max(self.sharing, 1.0)
        wanted = int(self.target / work)
        spread = remaining // (2 * max(workers, 1))
        floor = math.ceil(self.overhead / (_OVERHEAD_SHARE * work))
        return max(1, min(max(spread, floor), wanted, _MAX_CHUNK))
