"""Tasks of a progress tree: counting, nesting, wrapping iterables, saving and restoring.

:class:`ProgressTask` is the handle ``ProgressManager.subprogress()`` yields (and the base
of ``ProgressManager`` itself, the root task). Its ``update()`` is the hot path: a closed
check, one comparison and one ``next()`` on an atomic counter — no lock, no clock, no
rendering.
Everything that reads counts (snapshots, exports) pays instead.

:class:`TaskTree` is the state all tasks of one manager share: the tree lock, the active
clock, the id registry used by worker-process reporters. Displays, the refresher thread
and callbacks are the manager's (``progress_manager``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from types import TracebackType
from typing import TypeVar

from lensing_ssc.core.base.exceptions import ProgressError
from lensing_ssc.processing.managers._channel import ChannelServer
from lensing_ssc.processing.managers.progress._clock import (
    ActiveClock,
    Number,
    check_amount,
    check_total,
    estimate_rate,
    unit_counter,
)
from lensing_ssc.processing.managers.progress._reporter import (
    ProgressReporter,
    amount_of_event,
    open_server,
)
from lensing_ssc.processing.managers.progress._snapshot import ProgressSnapshot
from lensing_ssc.processing.managers.progress._state import SavedTask

__all__ = ["ProgressTask", "TaskTree"]

T = TypeVar("T")

_log = logging.getLogger("lensing_ssc.processing.managers.progress")


class TaskTree:
    """What the tasks of one manager share. Not part of the public API."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        self.active = ActiveClock(clock)
        self._ids = itertools.count()
        self._tasks: weakref.WeakValueDictionary[int, ProgressTask] = weakref.WeakValueDictionary()
        self._server: ChannelServer | None = None
        self._closed = False
        #: The Dask event topic of this tree's reporters in Dask workers.
        self.topic = f"lensing_ssc-progress-{uuid.uuid4().hex}"

    def register(self, task: ProgressTask) -> int:
        task_id = next(self._ids)
        self._tasks[task_id] = task
        return task_id

    def reporter(self, task_id: int) -> ProgressReporter:
        with self.lock:
            if self._closed:
                raise ProgressError(
                    "cannot hand out a reporter: the progress manager is closed",
                    value=task_id,
                    hint="create reporters while the manager's with-block is running",
                )
            if self._server is None:
                self._server = open_server(self._deliver)
            return ProgressReporter(self._server.address, self._server.token, task_id, self.topic)

    def _deliver(self, task_id: int, amount: Number) -> None:
        task = self._tasks.get(task_id)
        if task is not None:
            task._add(amount)

    def take_event(self, event: object) -> None:
        """Add the count of one Dask event from a reporter in a Dask worker."""
        self._deliver(*amount_of_event(event))

    def take_counts(self, counts: Mapping[str, Mapping[int, Number]]) -> None:
        """Add the counts a worker carried back for this tree (other trees' are left out)."""
        for task_id, amount in counts.get(self.topic, {}).items():
            self._deliver(task_id, amount)

    def drain(self) -> None:
        server = self._server
        if server is not None:
            server.drain()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            server.close()


class ProgressTask:
    """One task of a progress tree: a count, an optional total, nested subtasks.

    Obtained from ``ProgressManager.subprogress(name, total=...)`` (or a task's own
    ``subprogress``); a context manager that closes the task — removing its row — on exit.

    Example:
        >>> from lensing_ssc.processing.managers import ProgressManager
        >>> with ProgressManager(total=2, description="maps", enabled=False) as pm:
        ...     for i in range(2):
        ...         with pm.subprogress(f"map_{i}", total=3) as sub:
        ...             for _ in range(3):
        ...                 sub.update()
        ...         pm.update()
        ...     pm.current
        2
    """

    __slots__ = (
        "__weakref__",
        "_active_start",
        "_baseline",
        "_children",
        "_closed",
        "_dormant",
        "_elapsed_before",
        "_extra",
        "_id",
        "_late",
        "_lock",
        "_name",
        "_ones",
        "_parent",
        "_reads",
        "_restored",
        "_resumed_from",
        "_stopped_at",
        "_total",
        "_tree",
    )

    def __init__(
        self, tree: TaskTree, name: str, total: Number | None, parent: ProgressTask | None
    ) -> None:
        self._tree = tree
        self._name = name
        self._total = total
        self._parent = parent
        self._children: dict[str, ProgressTask] = {}
        self._restored: dict[str, ProgressTask] = {}
        self._ones = unit_counter()
        self._lock = threading.Lock()
        self._extra: Number = 0
        self._reads = 0
        self._baseline: Number = 0
        self._active_start = tree.active.now()
        self._elapsed_before = 0.0
        self._resumed_from: Number | None = None
        self._stopped_at: float | None = None
        self._closed = False
        self._late = False
        self._dormant = False
        self._id = tree.register(self)

    # -- counting ---------------------------------------------------------------------
    def update(self, n: Number = 1) -> None:
        """Count ``n`` more finished items. Never draws; safe from any thread.

        After :meth:`close` the update is ignored, as tqdm ignores updates of a closed bar:
        the count stays as it was closed, and the first such update logs one warning.

        Raises:
            ProgressError: ``n`` is negative, not finite or not a number.
        """
        if self._closed:
            self._ignore_late_update(n)
        elif n == 1:
            next(self._ones)
        else:
            self._add(n)

    def _ignore_late_update(self, n: object) -> None:
        with self._lock:
            if self._late:
                return
            self._late = True
        _log.warning(
            "progress task %r is closed: update(%r) and any later ones are ignored", self._name, n
        )

    def _add(self, n: object) -> None:
        amount = check_amount(n)
        with self._lock:
            self._extra += amount

    @property
    def current(self) -> Number:
        """Items done so far, restored ones included."""
        with self._lock:
            units = next(self._ones) - self._reads
            self._reads += 1
            return units + self._extra

    def count_restored(self, n: Number) -> None:
        """Count ``n`` items an earlier run finished (taken from a journal, say).

        They add to the count and show as ``(resumed at N)``, but not to rate and ETA,
        which count only this run's work.

        Raises:
            ProgressError: ``n`` is negative, not finite or not a number.
        """
        if self._closed:
            self._ignore_late_update(n)
            return
        amount = check_amount(n)
        with self._tree.lock, self._lock:
            self._extra += amount
            self._baseline += amount
            self._resumed_from = (self._resumed_from or 0) + amount

    def _set_current(self, value: Number) -> None:
        with self._lock:
            units = next(self._ones) - self._reads
            self._reads += 1
            self._extra = value - units

    @property
    def name(self) -> str:
        """The task's name."""
        return self._name

    @property
    def total(self) -> Number | None:
        """Items expected, or ``None`` when unknown."""
        return self._total

    def set_total(self, total: Number | None) -> None:
        """Change the expected number of items (``None``: unknown).

        Raises:
            ProgressError: ``total`` is negative, not finite or not a number.
        """
        self._total = check_total(total)

    # -- nesting ----------------------------------------------------------------------
    def subprogress(
        self, name: str, total: Number | None = None, *, resume: bool = True
    ) -> ProgressTask:
        """Open a nested task, shown indented under this one until it is closed.

        Args:
            name: Unique among this task's open subtasks (``f"map_{i}"``).
            total: Items expected, or ``None`` when unknown.
            resume: If a subtask of this name was restored by ``import_state`` and not yet
                reopened, continue its count (the default) instead of starting at zero.

        Raises:
            ProgressError: ``name`` is empty or already open here; ``total`` is invalid.
        """
        if not isinstance(name, str) or not name:
            raise ProgressError(
                f"subtask name must be a non-empty string, got {name!r}",
                value=name,
                hint="name subtasks after what they process, e.g. f'map_{i}'",
            )
        size = check_total(total)
        with self._tree.lock:
            if name in self._children:
                raise ProgressError(
                    f"a subtask named {name!r} is already open under {self._name!r}",
                    value=name,
                    hint="close it first (leave its with-block) or give each a unique name",
                )
            restored = self._restored.pop(name, None)
            if restored is not None and resume:
                restored._claim(size)
                child = restored
            else:
                child = ProgressTask(self._tree, name, size, self)
            self._children[name] = child
        return child

    def track(
        self, iterable: Iterable[T], total: Number | None = None, *, name: str | None = None
    ) -> Iterator[T]:
        """Yield the items of ``iterable``, counting each one once its loop body is done.

        The total is ``total``, else this task's own, else ``len(iterable)`` when it has one.
        With ``name``, the items are counted on a new subtask of that name instead, closed
        when the iteration ends.

        Example:
            >>> # for patch in pm.track(patches):  process(patch)
        """
        size = check_total(total)
        if size is None and isinstance(iterable, Sized):
            size = len(iterable)
        if name is not None:
            return self.subprogress(name, total=size)._iterate(iterable, closing=True)
        if total is not None or self._total is None:
            self._total = size
        return self._iterate(iterable, closing=False)

    def _iterate(self, iterable: Iterable[T], *, closing: bool) -> Iterator[T]:
        ones = self._ones
        try:
            for item in iterable:
                yield item
                next(ones)
        finally:
            if closing:
                self.close()

    def reporter(self) -> ProgressReporter:
        """A picklable handle through which other processes advance this task."""
        return self._tree.reporter(self._id)

    @property
    def executor_topic(self) -> str:
        """The Dask event topic through which reporters in Dask workers send their counts."""
        return self._tree.topic

    def take_worker_event(self, event: object) -> None:
        """Add the count of one Dask event ``(timestamp, [task id, amount])`` (the driver's
        handler of :attr:`executor_topic`)."""
        self._tree.take_event(event)

    def take_worker_counts(self, counts: Mapping[str, Mapping[int, Number]]) -> None:
        """Add the counts a worker's reporters could not send, carried back with a task's
        result (``{topic: {task id: amount}}``, from ``ProgressManager.unsent_counts()``
        in the worker); those of another manager's tasks are left out."""
        self._tree.take_counts(counts)

    # -- reading ----------------------------------------------------------------------
    def snapshot(self) -> ProgressSnapshot:
        """This task and its open subtasks now, as a frozen value."""
        with self._tree.lock:
            return self._snapshot(self._tree.active.now(), self._tree.active.paused)

    def _snapshot(self, active_now: float, paused: bool) -> ProgressSnapshot:
        current, total = self.current, self._total
        end = self._stopped_at if self._stopped_at is not None else active_now
        active = max(end - self._active_start, 0.0)
        rate, eta = estimate_rate(current, total, current - self._baseline, active)
        # The count may pass the total (items retried or counted twice by the caller); the
        # percentage stops at 100 so the display never claims more than all of the work.
        percentage = (
            None if total is None else (min(100.0 * current / total, 100.0) if total else 100.0)
        )
        return ProgressSnapshot(
            name=self._name,
            current=current,
            total=total,
            percentage=percentage,
            rate=rate,
            eta=eta,
            elapsed=self._elapsed_before + active,
            paused=paused,
            finished=self._closed,
            resumed_from=self._resumed_from,
            children=tuple(
                child._snapshot(active_now, paused) for child in self._children.values()
            ),
        )

    # -- saving and restoring ---------------------------------------------------------
    def _saved(self, active_now: float) -> SavedTask:
        if self._dormant:
            elapsed = self._elapsed_before
        else:
            end = self._stopped_at if self._stopped_at is not None else active_now
            elapsed = self._elapsed_before + max(end - self._active_start, 0.0)
        children = [*self._children.values(), *self._restored.values()]
        return SavedTask(
            self._name,
            self.current,
            self._total,
            elapsed,
            tuple(child._saved(active_now) for child in children),
        )

    def _restore(self, saved: SavedTask) -> None:
        self._set_current(saved.current)
        if self._total is None:
            self._total = saved.total
        self._baseline = saved.current
        self._active_start = self._tree.active.now()
        self._stopped_at = None
        self._elapsed_before = saved.elapsed
        self._resumed_from = saved.current
        for child_state in saved.children:
            live = self._children.get(child_state.name)
            if live is None:
                live = ProgressTask(self._tree, child_state.name, None, self)
                live._dormant = True
                self._restored[child_state.name] = live
            live._restore(child_state)

    def _claim(self, total: Number | None) -> None:
        if total is not None:
            self._total = total
        self._dormant = False
        self._baseline = self.current
        self._active_start = self._tree.active.now()

    # -- closing ----------------------------------------------------------------------
    def close(self) -> None:
        """Finish this task and its subtasks; its row disappears. Idempotent.

        Counts reported by worker processes before this call are included. Later updates
        of a closed task are ignored (one warning is logged), and so are later counts from
        worker processes.
        """
        self._tree.drain()
        with self._tree.lock:
            self._finish(self._tree.active.now())

    def _finish(self, active_now: float) -> None:
        if self._closed:
            return
        for child in list(self._children.values()):
            child._finish(active_now)
        self._restored.clear()
        self._closed = True
        self._stopped_at = active_now
        parent = self._parent
        if parent is not None and parent._children.get(self._name) is self:
            del parent._children[self._name]

    def __enter__(self) -> ProgressTask:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ProgressTask {self._name!r} {self.current}/{self._total} {state}>"
