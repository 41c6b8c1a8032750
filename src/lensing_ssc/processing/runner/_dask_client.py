"""The Client side of the Dask executor: fetching each task's result, and Dask's client log.

Two quirks of ``distributed`` that a run would otherwise show its user on stderr, beside its
own one-line report of a stop:

- ``distributed.Future.result(timeout=...)`` cancels Dask's gather when the timeout passes.
  A gather cancelled while it waits for a result to be computed again (the worker holding
  it died before it was fetched) leaves its inner tasks behind, and once the task is
  cancelled, asyncio prints each one's ``AllExit`` as "Task exception was never retrieved",
  with a traceback. :func:`fetch_when_done` fetches a result on the Client's event loop as
  soon as its task ends, and nothing ever cancels that fetch.
- ``distributed`` gives its client logger a handler of its own, on stderr, and stops it
  propagating (unless the application configured logging before importing it). Its
  warnings about a run's tasks ("Couldn't gather 1 keys, rescheduling ...") would reach the
  user's terminal. :data:`CLIENT_LOG` sends them to the runner's logger instead (the run's
  log file, under a ``LogManager``) while an adapter holds a Client it opened;
  :func:`client_log_dropped` drops them where the run already says what they say.

Not here: the adapter that uses them, and the cluster (:mod:`._dask`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

try:
    import distributed
except ImportError:  # pragma: no cover - exercised only without the dask extra
    distributed = None  # type: ignore[assignment]

__all__ = ["CLIENT_LOG", "ClientLogRoute", "client_log_dropped", "fetch_when_done"]

logger = logging.getLogger("lensing_ssc.processing.runner")


def fetch_when_done(client: Any, task: Any) -> Future[Any]:
    """A future of ``task``'s result, fetched on ``client``'s event loop once the task ends.

    The future is done once the result is here, or with the task's error (a
    ``KilledWorker``, or Dask's ``CancelledError`` once the task is cancelled or the
    scheduler lost). A result lost with its worker before it was fetched is waited for
    until it is computed again or the task is cancelled; waiting on the returned future
    with a timeout cancels nothing.
    """
    return asyncio.run_coroutine_threadsafe(_fetch(client, task), client.loop.asyncio_loop)


async def _fetch(client: Any, task: Any) -> Any:
    return (await client.gather([task], asynchronous=True))[0]


class ClientLogRoute(logging.Filter):
    """A filter of ``distributed``'s client logger that hands its records to the runner's.

    It lets no record through to Dask's own handler. Attached once, however many adapters
    hold it; the last :meth:`release` detaches it.

    Example:
        >>> route = ClientLogRoute()
        >>> route.hold(); route.hold(); route.release()
        >>> route in distributed.client.logger.filters
        True
        >>> route.release()
        >>> route in distributed.client.logger.filters
        False
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._holders = 0

    def hold(self) -> None:
        """Route the client logger's records (again, for one more holder)."""
        with self._lock:
            if self._holders == 0:
                _client_logger().addFilter(self)
            self._holders += 1

    def release(self) -> None:
        """One holder less; the last one puts the client logger back as it was."""
        with self._lock:
            self._holders = max(self._holders - 1, 0)
            if self._holders == 0:
                _client_logger().removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Hand ``record`` to the runner's logger; ``False``: not to Dask's handler."""
        logger.handle(record)
        return False


CLIENT_LOG = ClientLogRoute()
"""The route every adapter holds while it holds a Client it opened (a user's is left be)."""


@contextlib.contextmanager
def client_log_dropped() -> Iterator[None]:
    """Drop the records of ``distributed``'s client logger meanwhile, routed or not."""
    client_log = _client_logger()
    client_log.filters.insert(0, _drop_all)  # first: before CLIENT_LOG passes them on
    try:
        yield
    finally:
        client_log.removeFilter(_drop_all)


def _client_logger() -> logging.Logger:
    if distributed is None:
        raise ModuleNotFoundError(
            'the Dask executor needs the "dask" extra: pip install "lensing-ssc[dask]"',
            name="distributed",
        )
    return distributed.client.logger


def _drop_all(record: logging.LogRecord) -> bool:
    """A logging filter that lets nothing through."""
    return False
