"""``ProgressManager``: progress of a long job, in a terminal, a notebook or a batch log.

``update()`` only counts — an atomic counter, no lock, no clock, no drawing — and a
background thread (``lensing_ssc-progress``) draws at a bounded rate. Where output goes
decides how (see ``_display``): a rich live table in a terminal, a live cell in
Jupyter, plain timestamped heartbeat lines in files and pipes (or through a ``logging``
logger), nothing when disabled. Rate and ETA count only the work of this run and only
active time (``_clock.estimate_rate``). The whole task tree exports to a JSON-ready
dict for checkpoints and imports back ("resumed at 420/1000"). Worker processes report
through picklable ``reporter()`` handles (``_reporter``).

Tasks themselves (``subprogress``, ``track``, counting) are in ``_task``; this
module adds the display, the refresher thread, pause/resume, callbacks and persistence.

Example:
    >>> from lensing_ssc.processing.managers import ProgressManager
    >>> with ProgressManager(total=1000, description="Processing items") as pm:
    ...     for i in range(1000):
    ...         pm.update(1)
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TextIO

from lensing_ssc.core.base.exceptions import ConfigError, ProgressError
from lensing_ssc.core.config import ProcessingConfig, ProgressSection, resolve_settings
from lensing_ssc.processing.managers.progress._clock import Number, check_total
from lensing_ssc.processing.managers.progress._display import NullDisplay
from lensing_ssc.processing.managers.progress._reporter import (
    ProgressReporter,
    UnsentCounts,
    take_unsent,
)
from lensing_ssc.processing.managers.progress._select import choose_display
from lensing_ssc.processing.managers.progress._snapshot import (
    ProgressSnapshot,
    format_count,
    format_duration,
)
from lensing_ssc.processing.managers.progress._state import parse_state
from lensing_ssc.processing.managers.progress._task import ProgressTask, TaskTree

__all__ = ["ENV_ENABLED", "ProgressManager", "ProgressReporter", "ProgressSnapshot", "ProgressTask"]

ENV_ENABLED = "LENSING_SSC_PROGRESS__ENABLED"
"""Environment switch honoured with or without a config: ``false``/``0``/``no``/``off``."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_log = logging.getLogger(__name__)
Callback = Callable[[ProgressSnapshot], None]


def _enabled_from_env(environ: Mapping[str, str]) -> bool | None:
    raw = environ.get(ENV_ENABLED, "").strip()
    if not raw:
        return None
    if raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    raise ConfigError(
        f"{ENV_ENABLED}={raw!r} is not a boolean",
        value=raw,
        hint="use true or false",
        field="progress.enabled",
        source=ENV_ENABLED,
    )


class ProgressManager(ProgressTask):
    """Progress of a job: the root task, its display and its persistence.

    Args:
        total: Items expected, or ``None`` when unknown (``track()`` can fill it in).
        description: The root task's name in the display.
        config: Takes ``progress.enabled``, ``heartbeat_interval``, ``refresh_per_second``;
            explicit arguments win, arguments left ``None`` come from it (else from the
            section's defaults).
        enabled: Show anything at all. Overrides ``LENSING_SSC_PROGRESS__ENABLED``, which
            overrides the config.
        file: Where to draw; default ``sys.stderr``. A terminal gets live bars, anything
            else heartbeat lines.
        heartbeat_interval: Seconds between heartbeat lines when ``file`` is no terminal.
        refresh_per_second: Redraws per second of the live display.
        logger: In heartbeat mode, send lines to this logger (``logger.info`` with the
            task's status as ``extra={"progress": ...}``) instead of ``file``.
        clock: Monotonic seconds, ``time.monotonic`` by default; tests pass a fake.

    Raises:
        ProgressError: ``total`` is negative or not a number.
        ConfigError: a setting is invalid, naming the field (``progress.heartbeat_interval``),
            the value and the allowed range; or the environment switch is not a boolean.
    """

    def __init__(
        self,
        total: Number | None = None,
        description: str = "",
        *,
        config: ProcessingConfig | None = None,
        enabled: bool | None = None,
        file: TextIO | None = None,
        heartbeat_interval: float | None = None,
        refresh_per_second: float | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(description, str):
            raise ProgressError(
                f"description must be a string, got {description!r}",
                value=description,
                hint='e.g. description="Processing maps"',
            )
        if logger is not None and not isinstance(logger, logging.Logger):
            raise ConfigError(
                f"logger must be a logging.Logger, got {type(logger).__name__}",
                value=logger,
                hint="pass log_manager.get_logger(name) or logging.getLogger(name)",
                field="progress.logger",
            )
        settings = resolve_settings(
            ProgressSection,
            config,
            enabled=_enabled_from_env(os.environ) if enabled is None else enabled,
            heartbeat_interval=heartbeat_interval,
            refresh_per_second=refresh_per_second,
        )
        self._clock = clock if clock is not None else time.monotonic
        super().__init__(TaskTree(self._clock), description or "progress", check_total(total), None)
        self._logger = logger
        self._display = choose_display(
            file if file is not None else sys.stderr,
            enabled=settings.enabled,
            logger=logger,
            heartbeat_interval=settings.heartbeat_interval,
        )
        self._tick_seconds = 1.0 / settings.refresh_per_second
        if self._display.mode == "plain":
            self._tick_seconds = min(self._tick_seconds, settings.heartbeat_interval)
        self._callbacks: list[Callback] = []
        self._last_key: tuple[Any, ...] | None = None
        self._render_lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._paused_at: float | None = None
        self._notices: collections.deque[str] = collections.deque()
        self._display.start(self.snapshot(), self._clock())
        if not isinstance(self._display, NullDisplay):
            self._start_refresher()
            # A manager never closed still ends its display (cursor back, end line) at exit.
            atexit.register(self.close)

    # -- the refresher ------------------------------------------------------------------
    def _start_refresher(self) -> None:
        with self._render_lock:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(
                target=self._run, name="lensing_ssc-progress", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_seconds):
            try:
                self.refresh()
            except Exception:  # a broken display must not take the job down: stop drawing
                (self._logger or _log).exception("progress display failed; no more redraws")
                return

    def refresh(self) -> None:
        """Draw now (or write a heartbeat if one is due) and run callbacks if work was done.

        The refresher thread calls this at ``refresh_per_second``; call it yourself to force
        a redraw, e.g. after advancing a fake clock in a test.
        """
        self._tree.drain()
        with self._render_lock:
            if self._closing:
                return
            self._show_notices()
            snapshot = self.snapshot()
            self._display.refresh(snapshot, self._clock())
            self._notify(snapshot)

    def announce(self, line: str) -> bool:
        """Show ``line`` above the live bars within one redraw; ``False`` where there are none.

        Safe to call from a signal handler: it only appends to a queue (no lock), which the
        refresher thread prints above the bars and draws them again below, as ``tqdm.write``
        does. A line written straight to the terminal would be erased by the next redraw.
        Without live bars (a file, a pipe, a notebook, progress off) nothing erases a line:
        the caller writes it itself, at once.

        Example:
            >>> import io
            >>> pm = ProgressManager(total=3, file=io.StringIO())  # not a terminal
            >>> pm.announce("SIGTERM: stopping")
            False
            >>> pm.close()
        """
        thread = self._thread
        if self._display.mode != "terminal" or self._closing or thread is None:
            return False
        if not thread.is_alive():  # the display failed and stopped drawing
            return False
        self._notices.append(line)
        return True

    def _show_notices(self) -> None:
        while self._notices:
            self._display.notice(self._notices.popleft())

    def _notify(self, snapshot: ProgressSnapshot) -> None:
        key = snapshot.progress_key()
        if key == self._last_key:
            return
        self._last_key = key
        for callback in list(self._callbacks):
            try:
                callback(snapshot)
            except Exception:  # a user callback must not stop the display or the job
                (self._logger or _log).exception("progress callback %r failed", callback)

    # -- callbacks ----------------------------------------------------------------------
    def add_callback(self, callback: Callback) -> None:
        """Call ``callback(snapshot)`` from the refresher thread whenever work was done.

        At most ``refresh_per_second`` times a second, and once more with the final
        snapshot (``finished=True``) on ``close()``. Exceptions are logged, not raised.
        """
        if not callable(callback):
            raise ProgressError(
                f"callback must be callable, got {callback!r}",
                value=callback,
                hint="pass a function taking one ProgressSnapshot",
            )
        with self._render_lock:
            self._callbacks.append(callback)
        self._start_refresher()

    def remove_callback(self, callback: Callback) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._render_lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    # -- pausing ------------------------------------------------------------------------
    @property
    def is_paused(self) -> bool:
        """Whether the clocks of rate, ETA and elapsed are stopped."""
        return self._tree.active.paused

    def pause(self) -> None:
        """Stop the clocks of every task (waiting for input, saving a checkpoint...).

        Updates still count; paused time is left out of rate, ETA and elapsed.
        """
        if self._tree.active.pause():
            self._paused_at = self._clock()
            snapshot = self.snapshot()
            with self._render_lock:
                if not self._closing:
                    message = f"paused at {_position(snapshot)}"
                    self._display.event(snapshot, message, self._clock())

    def resume(self) -> None:
        """Start the clocks again after :meth:`pause`; a no-op when not paused."""
        if self._tree.active.resume():
            pause = self._clock() - (self._paused_at or self._clock())
            snapshot = self.snapshot()
            with self._render_lock:
                if not self._closing:
                    message = f"running again after a pause of {format_duration(pause)}"
                    self._display.event(snapshot, message, self._clock())

    # -- worker processes ---------------------------------------------------------------
    @staticmethod
    def unsent_counts() -> UnsentCounts | None:
        """In a worker process: the counts its reporters could not send, or ``None``.

        A reporter out of reach of its parent's socket (on another node) keeps its counts
        in the process; each call hands out what was kept since the last one. Carry them
        to the parent (with a task's result) and add them there with
        :meth:`~ProgressTask.take_worker_counts`. ``ManagerContext.map`` does both for
        the processes of a user's executor.
        """
        return take_unsent()

    # -- status and persistence ---------------------------------------------------------
    @property
    def description(self) -> str:
        """The root task's name."""
        return self._name

    @property
    def display_mode(self) -> str:
        """``terminal``, ``jupyter``, ``plain`` or ``disabled``: what the display does."""
        return self._display.mode

    def get_status(self) -> dict[str, Any]:
        """JSON-ready status: ``current``, ``total``, ``percentage``, ``rate``, ``eta``,
        ``elapsed``, ``paused``, ``finished``, ``resumed_from``, ``children`` and ``display``.
        """
        self._tree.drain()
        status = self.snapshot().to_dict()
        status["display"] = self._display.mode
        return status

    def export_state(self) -> dict[str, Any]:
        """The whole task tree as a JSON-ready dict, for a checkpoint."""
        self._tree.drain()
        with self._tree.lock:
            return self._saved(self._tree.active.now()).to_state()

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Continue from an exported tree: counts, totals and elapsed time come back.

        Rate and ETA then count only new work. A saved subtask continues when its name is
        opened again with ``subprogress`` (pass ``resume=False`` to start it afresh).

        Raises:
            ProgressError: ``state`` is not what ``export_state`` returns.
        """
        saved = parse_state(state)
        self._tree.drain()
        with self._tree.lock:
            self._restore(saved)
        snapshot = self.snapshot()
        with self._render_lock:
            if not self._closing:
                message = f"resumed at {_position(snapshot)}"
                self._display.event(snapshot, message, self._clock())

    # -- closing ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the refresher, draw the final state, release the output. Idempotent."""
        self._shutdown(None)

    def _shutdown(self, error: type[BaseException] | None) -> None:
        with self._render_lock:
            if self._closing:
                return
            self._closing = True
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._tree.close()
        with self._tree.lock:
            self._finish(self._tree.active.now())
        snapshot = self.snapshot()
        with self._render_lock:
            self._show_notices()
            self._display.stop(snapshot, _outcome(snapshot, error), self._clock())
            self._last_key = None
            self._notify(snapshot)

    def __enter__(self) -> ProgressManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown(exc_type)

    def __repr__(self) -> str:
        return (
            f"<ProgressManager {self._name!r} {format_count(self.current)}/"
            f"{format_count(self._total)} display={self._display.mode}>"
        )


def _position(snapshot: ProgressSnapshot) -> str:
    if snapshot.total is None:
        return format_count(snapshot.current)
    return f"{format_count(snapshot.current)}/{format_count(snapshot.total)}"


def _outcome(snapshot: ProgressSnapshot, error: type[BaseException] | None) -> str:
    if error is not None:
        return (
            "interrupted" if issubclass(error, KeyboardInterrupt) else f"failed ({error.__name__})"
        )
    if snapshot.total is not None and snapshot.current < snapshot.total:
        return "stopped"
    return "done"
