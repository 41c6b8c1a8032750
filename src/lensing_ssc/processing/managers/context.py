"""``ManagerContext``: the five managers built, started, coordinated and closed as one.

It composes the managers and owns their start-up and shutdown; it does not sample memory,
write files or draw bars itself. What it adds is the wiring between them:

- a memory warning from the ResourceManager shrinks the cache;
- a limit breach (with ``graceful_stop``), SIGTERM, SIGINT or a scheduler's early-warning
  signal (SLURM's ``--signal=B:USR1@120``) requests a graceful stop: logs are flushed, the
  state registered with :meth:`ManagerContext.save_on_stop` is checkpointed, and the next
  context call raises :class:`~lensing_ssc.core.base.exceptions.InterruptedRunError`;
  a second SIGINT meanwhile raises ``KeyboardInterrupt`` at once: running tasks are ended
  rather than awaited, what finished is kept, and the run is recorded as interrupted too;
- checkpoints carry the progress tree, so a resumed run shows "resumed at 420/1000";
- :meth:`ManagerContext.map` runs a function over items with the resumable task runner,
  counting progress, carrying log context into threads and worker logs into the run's log
  (on Dask, worker logs and progress counts travel as Dask events: no local socket; from
  a user's executor out of the socket's reach, progress counts come back with the results);
  the executor (a process pool, a Dask cluster) is kept for the next ``map`` with the same
  settings and closed with the context (:mod:`._kept_runners`);
- :meth:`ManagerContext.runner_for` hands out the runner a ``map`` call will use, so a
  caller asks it how many workers it runs and where, rather than guessing;
- the run's status file is refreshed in the background (``lensing-ssc status RUN_DIR``);
- one run at a time uses a run directory: a context built while another process runs there
  is refused before it writes anything (:mod:`.runlock`).

The managers themselves are in their own modules; ``map`` and ``runner_for`` in
:mod:`._context_tasks`, over the runner in :mod:`lensing_ssc.processing.runner`; signal
handling in :mod:`._signals`; where each file of the run directory lives in :mod:`.rundir`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from lensing_ssc.core.base.exceptions import InterruptedRunError, LensingSSCError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers._context_tasks import ContextTasks
from lensing_ssc.processing.managers._kept_runners import RunnerShelf
from lensing_ssc.processing.managers._signals import StopRequest, StopSignals
from lensing_ssc.processing.managers.cache import CacheManager
from lensing_ssc.processing.managers.checkpoint import CheckpointInfo, CheckpointManager
from lensing_ssc.processing.managers.log import LogManager
from lensing_ssc.processing.managers.progress import ProgressManager
from lensing_ssc.processing.managers.resource import ResourceManager
from lensing_ssc.processing.managers.rundir import RunDir
from lensing_ssc.processing.managers.runlock import RunLock
from lensing_ssc.processing.managers.status import StatusFile

__all__ = ["ManagerContext"]

_log = logging.getLogger("lensing_ssc.context")

# Checkpoints saved through the context wrap the user's state with the progress tree.
_WRAPPER_KEY = "__lensing_ssc_context__"


class ManagerContext(ContextTasks):
    """Build all five managers, coordinate them, and close them in reverse order.

    Args:
        resource_limit_mb: The job's memory limit (``ResourceManager.memory_limit_mb``).
        checkpoint_dir: Where checkpoints go; default ``config.checkpoint_dir``. Without a
            ``config``, it also places the run: the run directory is its parent, so the
            cache, logs, task journals and ``status.json`` go beside the checkpoints
            (``checkpoint_dir="job/checkpoints"`` writes everything under ``job/``).
        progress_total: Items the job's top-level progress bar expects.
        cache_size_mb: Byte limit of the cache's memory tier.
        log_level: ``"DEBUG"``..``"CRITICAL"``; default the config's.
        config: A :class:`ProcessingConfig` (default: its defaults, ``run_dir=runs/default``,
            or beside ``checkpoint_dir``). Explicit arguments override it.
        description: Name of the top-level progress task.
        graceful_stop: On a resource-limit breach, stop gracefully instead of raising
            ``ResourceError`` (default ``config.resources.graceful_stop``).
        stop_signals: Signals that request a graceful stop (installed in the main thread
            only, restored on exit). ``()`` installs none.
        status_interval: Seconds between refreshes of ``run_dir/status.json``; ``None``
            writes it only at start and end.
        executor, max_workers, retries: Defaults for :meth:`map`.

    Raises:
        CheckpointError: Another process runs in the run directory (naming it); nothing
            is written.

    Example:
        >>> with ManagerContext(checkpoint_dir="runs/demo/checkpoints", progress_total=10) as ctx:
        ...     state = ctx.load_checkpoint() or {"done": 0}
        ...     for i in range(state["done"], 10):
        ...         ctx.check_resources()
        ...         ctx.update_progress(1)
        ...         info = ctx.save_checkpoint({"done": i + 1})
        >>> ctx.load_checkpoint()["done"]
        10
    """

    def __init__(
        self,
        resource_limit_mb: float | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        progress_total: int | None = None,
        cache_size_mb: float | None = None,
        log_level: str | None = None,
        *,
        config: ProcessingConfig | None = None,
        description: str = "",
        graceful_stop: bool | None = None,
        stop_signals: Iterable[str | int] = ("SIGTERM", "SIGINT", "SIGUSR1"),
        status_interval: float | None = 10.0,
        executor: Any = "serial",
        max_workers: int | None = None,
        retries: int = 0,
    ) -> None:
        if config is None:
            config = ProcessingConfig()
            if checkpoint_dir is not None:
                # The user said where the run lives: not ./runs/default for the rest of it.
                config.checkpoint.dir = Path(checkpoint_dir)
                config.run_dir = config.checkpoint.dir.parent
        self.config = config
        self._run_dir = RunDir.from_config(self.config)
        # Before anything is built: a run refused here has written nothing (status, log).
        self._run_lock = RunLock(self._run_dir.lock_file)
        self._run_lock.acquire()
        self._stops = StopSignals(
            stop_signals, on_request=self._on_stop_request, announce=self._announce
        )
        self._state_provider: Callable[[], Any] | None = None
        self._executor = executor
        self._max_workers = max_workers
        self._retries = retries
        self._entered = False
        self._closed = False
        self._stop_handled = False
        self._runners = RunnerShelf()
        built: list[Any] = []
        try:
            self.log = LogManager(level=log_level, config=self.config)
            built.append(self.log)
            self.resource = ResourceManager(
                resource_limit_mb, graceful_stop=graceful_stop, config=self.config
            )
            built.append(self.resource)
            self.checkpoint = CheckpointManager(checkpoint_dir, config=self.config)
            built.append(self.checkpoint)
            self.cache = CacheManager(cache_size_mb, config=self.config)
            built.append(self.cache)
            self.progress = ProgressManager(
                progress_total,
                description,
                config=self.config,
                logger=self.log.get_logger("lensing_ssc.progress"),
            )
            built.append(self.progress)
        except BaseException:
            _close_all(reversed(built), body_error=True)
            self._run_lock.release()
            raise
        self.resource.add_warning_callback(self._on_resource_warning)
        self.resource.add_stop_callback(self._stops.request_stop)
        self._status = StatusFile(
            self._run_dir.status_file, self.get_manager_status, interval=status_interval
        )

    # -- lifetime --------------------------------------------------------------------------
    def start(self) -> ManagerContext:
        """Install signal handlers, start the resource monitor and the status file."""
        if not self._entered:
            self._entered = True
            self._stops.install()
            self.resource.start_monitoring()
            self._status.start()
            _log.info("run started in %s", self.config.run_dir)
        return self

    def close(self, *, outcome: str = "finished", reason: str | None = None) -> None:
        """Close the managers in reverse order of creation; idempotent.

        An error while closing one manager does not stop the others from closing; the
        first such error is raised once all are closed. A ``KeyboardInterrupt`` while the
        executors close still lets the status be written and the managers close.

        Args:
            outcome: The run's final state in ``status.json``.
            reason: Why it ended so (``"SIGTERM"``), recorded with it.
        """
        if self._closed:
            return
        self._closed = True
        self._stops.restore()
        errors: list[BaseException] = []
        try:
            errors += _close_all([self._runners], body_error=False)  # workers log until they exit
        finally:
            self._status.close(state=outcome, reason=reason)
            errors += _close_all(
                [self.progress, self.cache, self.checkpoint, self.resource, self.log],
                body_error=False,
            )
            self._run_lock.release()
        if errors:
            raise errors[0]

    def __enter__(self) -> ManagerContext:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        reason: str | None = None
        if isinstance(exc, InterruptedRunError):
            outcome, reason = "interrupted", exc.signal_name
        elif isinstance(exc, KeyboardInterrupt):
            outcome, reason = "interrupted", self._interrupt_reason()
            _log.warning("%s; what finished is saved, rerun to resume", reason)
        else:
            outcome = "failed"
            if isinstance(exc, LensingSSCError):
                # The package's own errors say what was wrong and how to fix it: a traceback
                # in the terminal would bury that line.
                self.log.get_logger("lensing_ssc.errors").error(
                    "run failed: %s: %s", type(exc).__name__, exc
                )
            elif isinstance(exc, Exception):
                self.log.log_error(exc, "run failed")
        try:
            self.close(outcome=outcome, reason=reason)
        except Exception:  # never hide the body's exception behind a closing error
            _log.exception("error while closing the managers after a failure")

    # -- coordination ----------------------------------------------------------------------
    def _on_resource_warning(self, usage: Any, warnings: dict[str, str]) -> None:
        if "memory" in warnings:
            freed = self.cache.shrink(fraction=0.5)
            _log.warning(
                "memory warning (%s): freed %.1f MiB of cache", warnings["memory"], freed / 2**20
            )

    def _on_stop_request(self, request: StopRequest) -> None:
        # May run inside a signal handler: only record; the work happens in _raise_if_stopping.
        self.resource.request_stop(request.reason)

    def _announce(self, line: str) -> bool:
        # From a signal handler, installed by start(): the managers are built by then.
        return self.progress.announce(line)

    def _interrupt_reason(self) -> str:
        request = self._stops.request
        if request is None:
            return "KeyboardInterrupt: stopped at once"
        # StopSignals raises KeyboardInterrupt for a SIGINT that comes with a stop pending.
        return f"{request.reason}, then SIGINT: stopped at once without waiting"

    @property
    def stop_requested(self) -> bool:
        """``True`` once a graceful stop was requested (signal, breach or :meth:`request_stop`)."""
        return self._stops.request is not None

    def request_stop(self, reason: str = "requested") -> None:
        """Ask for a graceful stop: the next context call raises ``InterruptedRunError``."""
        self._stops.request_stop(reason)

    def save_on_stop(self, provider: Callable[[], Any]) -> None:
        """Register ``provider()`` returning the state to checkpoint on a graceful stop."""
        self._state_provider = provider

    def _raise_if_stopping(self) -> None:
        request = self._stops.request
        if request is None:
            return
        if not self._stop_handled:
            self._stop_handled = True
            _log.warning("stopping gracefully: %s", request.reason)
            if self._state_provider is not None:
                self.save_checkpoint(
                    self._state_provider(),
                    description=f"graceful stop ({request.reason})",
                    tags=("stop",),
                )
            self.log.flush()
        raise InterruptedRunError(
            f"run stopped gracefully ({request.reason}); rerun to resume",
            value=request.reason,
            signal_name=request.reason,
        )

    # -- the helpers of the README's pipeline example -------------------------------------
    def check_resources(self) -> None:
        """Raise if a stop was requested or a resource limit is exceeded.

        Raises:
            InterruptedRunError: a graceful stop was requested.
            ResourceError: a limit is exceeded and graceful stop is off.
        """
        self._raise_if_stopping()
        self.resource.check_limits(raise_on_exceed=not self.resource.settings.graceful_stop)
        self._raise_if_stopping()

    def update_progress(self, n: int = 1) -> None:
        """Advance the top-level progress by ``n``; raises if a stop was requested."""
        self.progress.update(n)
        if self._stops.request is not None:
            self._raise_if_stopping()

    def save_checkpoint(
        self, state: Any, description: str = "", tags: Iterable[str] | str = ()
    ) -> CheckpointInfo:
        """Checkpoint ``state`` together with the progress tree."""
        wrapped = {_WRAPPER_KEY: 1, "state": state, "progress": self.progress.export_state()}
        return self.checkpoint.save_checkpoint(wrapped, description=description, tags=tags)

    def load_checkpoint(self, checkpoint_id: str | None = None) -> Any:
        """Load the newest intact checkpoint (or the one named), restoring progress.

        Returns:
            The state given to :meth:`save_checkpoint`, or ``None`` when there is none.
        """
        loaded = self.checkpoint.load_checkpoint(checkpoint_id)
        if isinstance(loaded, dict) and loaded.get(_WRAPPER_KEY) == 1:
            self.progress.import_state(loaded["progress"])
            return loaded["state"]
        return loaded

    def log_operation_start(self, name: str, **fields: Any) -> None:
        """Log the start of an operation and start timing it."""
        self.log.log_operation_start(name, **fields)

    def log_operation_end(self, name: str, success: bool = True, **fields: Any) -> float | None:
        """Log the end of an operation with its duration; ERROR when not ``success``."""
        return self.log.log_operation_end(name, success=success, **fields)

    def get_manager_status(self) -> dict[str, Any]:
        """JSON-ready status of every manager, keyed by manager."""
        return {
            "resource": self.resource.get_status(),
            "checkpoint": self.checkpoint.get_status(),
            "progress": self.progress.get_status(),
            "cache": self.cache.get_status(),
            "log": self.log.get_status(),
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._entered else "created")
        return f"<ManagerContext run_dir={str(self.config.run_dir)!r} ({state})>"


def _close_all(managers: Iterable[Any], *, body_error: bool) -> list[BaseException]:
    """Close each manager, even when an earlier one fails; return the errors."""
    errors: list[BaseException] = []
    for manager in managers:
        try:
            manager.close()
        except Exception as exc:
            errors.append(exc)
            _log.error("error while closing %r: %s", manager, exc, exc_info=not body_error)
    return errors
