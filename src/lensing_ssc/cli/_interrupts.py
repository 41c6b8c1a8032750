"""Ctrl-C in the ``lensing-ssc`` command: exit status 130 whenever it comes, never the signal.

Python's own SIGINT handler raises ``KeyboardInterrupt``; where nothing catches it, the
interpreter ends the process by the signal itself (status -2 to the caller, with a
traceback). And while the interpreter shuts down it gives SIGINT back to the system's
default action, so a Ctrl-C then also ends the process by the signal. The command's body
turns ``KeyboardInterrupt`` into status 130 (click, the run command), but these moments lie
outside it, and an early or impatient Ctrl-C lands there:

- while ``lensing_ssc.cli`` imports its modules (up to a second on a cold start):
  :func:`guard_imports` installs a handler that exits with 130 (nothing has started), and
  :func:`end_of_imports` puts Python's back;
- while :func:`lensing_ssc.cli.main` reports a Ctrl-C that reached it:
  :class:`CommandInterrupts` raises ``KeyboardInterrupt`` for each SIGINT as Python does
  until then (one raised where Python cannot raise it, in a finaliser, is lost, and the
  next must work), and ignores SIGINT from then on;
- once the command's own ``main`` has returned, and once the import guard has decided to
  exit, SIGINT is ignored (``SIG_IGN``, which the shutdown keeps): the status is the
  command's.

During a run, the run's context installs its own handlers (a first Ctrl-C stops gracefully,
a second at once: :mod:`lensing_ssc.processing.managers.context`) and puts these back.
Handlers are installed only from the main thread, and only over Python's default one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["EXIT_INTERRUPTED", "CommandInterrupts", "end_of_imports", "guard_imports"]

EXIT_INTERRUPTED = 130
"""The shell's status of a job ended by SIGINT (128 + 2)."""

_NOTE = b"\nlensing-ssc: interrupted\n"


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_while_importing(signum: int, frame: FrameType | None) -> None:
    """A SIGINT before the command runs: status 130, whatever comes after."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.write(2, _NOTE)
    raise SystemExit(EXIT_INTERRUPTED)


def guard_imports() -> None:
    """From now until :func:`end_of_imports`, a SIGINT exits with status 130."""
    if _main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_while_importing)


def end_of_imports() -> None:
    """Give SIGINT back to Python's handler, unless someone replaced ours meanwhile."""
    if _main_thread() and signal.getsignal(signal.SIGINT) is _exit_while_importing:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class CommandInterrupts:
    """SIGINT while :func:`lensing_ssc.cli.main` runs: ``KeyboardInterrupt`` until it reports.

    Args:
        command: ``main`` runs as the command itself (``argv`` from ``sys.argv``): after it
            returns, SIGINT is ignored until the process ends. Otherwise the previous
            handler is put back when it returns.
    """

    def __init__(self, *, command: bool) -> None:
        self._command = command
        self._exiting = False
        self._previous: Any = None
        self._installed = False

    def install(self) -> CommandInterrupts:
        """Take SIGINT over (from the main thread, over Python's default handler only)."""
        if _main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._exiting:
            return  # the command is reporting a Ctrl-C already: let it finish
        raise KeyboardInterrupt

    def interrupted(self) -> int:
        """Note that the command ends by a Ctrl-C: later ones are ignored; returns 130."""
        self._exiting = True
        return EXIT_INTERRUPTED

    def finish(self) -> None:
        """After ``main``: ignore SIGINT (the command), or put back the previous handler."""
        if not self._installed or not _main_thread():
            return
        self._installed = False
        signal.signal(signal.SIGINT, signal.SIG_IGN if self._command else self._previous)
