"""Worker messages that travel through the executor itself: Dask's event topics.

On a Dask cluster a worker may run on another host, or in another mount namespace, where
the driver's local socket (:mod:`._channel`) cannot be reached. There the log and progress
managers send through Dask instead: a worker calls ``Worker.log_event(topic, message)``,
the scheduler passes each event on to the clients subscribed to ``topic``, and the driver's
handler (``Client.subscribe_topic``, wired by the runner's Dask adapter) takes the
message. Nothing there touches the driver's ``/tmp``.

Why events rather than riding back with each task's result: results come back only when a
task ends, so a long item would show neither its records nor its progress until it is
done; events arrive while it runs. Measured on 2 shared cores (``distributed`` 2026.8, a
one-worker ``LocalCluster`` on 127.0.0.1, other tests running): 1.2 ms median from
``log_event`` in a worker to the driver's handler, and 20 000 events from one task reached
the handler at 31 000 a second. The log sink sends one event per writer round (every
``flush_interval``, 0.1 s) however many records it holds; progress sends one per update.
The worker's ``BatchedSend`` keeps events and task results on one ordered stream, so
what a task sent before it returned reaches the driver before its result does.

Here: :func:`current_dask_worker`, the Dask worker this process serves (``None`` elsewhere,
never importing ``distributed``), and :func:`send_event`. What each manager sends and how
it reads it back is its own (:mod:`.log._transport`, :mod:`.progress._reporter`).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["current_dask_worker", "send_event"]

_worker: Any = None


def current_dask_worker() -> Any:
    """The ``distributed.Worker`` of this process, or ``None`` outside a Dask worker.

    Found from a task's thread (``distributed.get_worker()``) and kept, so threads of the
    process that are not a task's (a log writer) find it too. ``distributed`` is not
    imported here: a process that never imported it is no Dask worker.
    """
    global _worker
    worker = _worker
    if worker is not None and worker.status.name in ("running", "paused"):
        return worker
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except ValueError:  # not a task's thread of a worker
        return None
    _worker = worker
    return worker


def send_event(worker: Any, topic: str, message: Any) -> bool:
    """Send ``message`` (msgpack-ready) on ``topic`` through ``worker``; ``False`` if it cannot.

    A worker that is closing, or a message Dask refuses, is ``False``: the caller falls back
    or drops; the item never fails for it.
    """
    try:
        worker.log_event(topic, message)
    except (TypeError, RuntimeError, OSError):
        return False
    return True
