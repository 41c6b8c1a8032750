"""Turning scheduler signals into a graceful-stop request.

SLURM sends SIGTERM at the wall-time limit (then SIGKILL after ``KillWait``), and with
``--signal=B:USR1@120`` an early warning two minutes before. :class:`StopSignals` installs
handlers that only *record* the request; the :class:`ManagerContext` checks it at its next
call and raises :class:`InterruptedRunError` after saving and flushing. A SIGINT that
arrives while a stop is pending (an impatient second Ctrl-C) raises ``KeyboardInterrupt``
at once instead. Handlers are installed only from the main thread, and the previous ones
are restored on exit. Each signal is acknowledged at once with one line for the person
watching: through ``announce`` (the context passes its progress manager's, which prints it
above live bars), else straight to stderr.

This module does not decide what a stop does; see :mod:`.context`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError

__all__ = ["StopRequest", "StopSignals", "parse_signal"]

_Handler = Callable[[int, FrameType | None], Any] | int | None


@dataclass(frozen=True)
class StopRequest:
    """Why and when a graceful stop was requested."""

    reason: str
    requested_at: float


def parse_signal(value: str | int | signal.Signals) -> signal.Signals:
    """``"USR1"``, ``"SIGUSR1"``, ``10`` or ``signal.SIGUSR1`` → ``signal.SIGUSR1``."""
    if isinstance(value, signal.Signals):
        return value
    try:
        if isinstance(value, int):
            return signal.Signals(value)
        name = value.upper()
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise ConfigError(
            f"unknown signal {value!r}",
            value=value,
            hint="use a name such as 'SIGTERM', 'SIGUSR1' or 'USR2'",
        ) from None


class StopSignals:
    """Record a stop request when one of ``signals`` arrives, or when asked in code.

    A second SIGINT while a stop is pending raises ``KeyboardInterrupt`` at once, so an
    impatient Ctrl-C still works; a first SIGINT while a stop for another reason (a memory
    breach, SIGTERM) is pending only says so.

    Args:
        signals: Signals to watch (names or numbers).
        on_request: Called once, from the signal handler, with the first request.
        announce: Called from the signal handler with the acknowledgement line; returns
            whether it shows the line (without taking a lock). When it is ``None`` or
            returns ``False`` the line is written to stderr's descriptor.
    """

    def __init__(
        self,
        signals: Iterable[str | int | signal.Signals] = ("SIGTERM", "SIGINT"),
        *,
        on_request: Callable[[StopRequest], None] | None = None,
        announce: Callable[[str], bool] | None = None,
    ) -> None:
        self._signals = tuple(dict.fromkeys(parse_signal(s) for s in signals))
        self._on_request = on_request
        self._announce = announce
        self._previous: dict[signal.Signals, _Handler] = {}
        self._request: StopRequest | None = None
        self._ctrl_c = False  # whether a SIGINT came already: the next one stops at once
        # Re-entrant: a second signal's handler may run inside request_stop, in the same
        # thread, while the first one holds the lock.
        self._lock = threading.RLock()

    @property
    def installed(self) -> bool:
        """Whether handlers are currently installed."""
        return bool(self._previous)

    @property
    def request(self) -> StopRequest | None:
        """The first stop request, or ``None``."""
        return self._request

    def install(self) -> bool:
        """Install the handlers; returns ``False`` (and does nothing) outside the main thread."""
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return False
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def request_stop(self, reason: str) -> StopRequest:
        """Record a stop request (the first one wins) and return the one in force."""
        candidate = StopRequest(reason=reason, requested_at=time.time())
        with self._lock:
            first = self._request is None
            if first:
                self._request = candidate
            request = self._request
        assert request is not None
        if first and self._on_request is not None:
            self._on_request(request)
        return request

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            if self._ctrl_c and self._request is not None:
                raise KeyboardInterrupt
            self._ctrl_c = True
            pending = self._request
            if pending is not None:  # a stop for another reason (a breach, SIGTERM) is on
                self._say(
                    f"SIGINT: already stopping ({pending.reason}); Ctrl-C again to stop at once"
                )
                return
        if self._request is None:
            # Say at once that the signal was heard: the stop waits for the running tasks,
            # and silence is what makes people press Ctrl-C again.
            again = "; Ctrl-C again to stop at once" if signum == signal.SIGINT else ""
            self._say(f"{name}: stopping after the running tasks, saving what finished{again}")
        self.request_stop(name)

    def _say(self, line: str) -> None:
        """Show ``line`` from a signal handler: through ``announce``, else on stderr.

        The fallback is a plain write to the descriptor, on a line of its own: a handler
        must not take the locks (logging's, a stream's) that the thread it interrupted may
        hold.
        """
        if self._announce is not None and self._announce(line):
            return
        with contextlib.suppress(OSError):
            os.write(2, f"\n{line}\n".encode())
