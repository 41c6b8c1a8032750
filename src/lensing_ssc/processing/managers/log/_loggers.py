"""Which stdlib loggers a manager writes for, and putting them back as they were.

A manager attaches its one handler to a few *attachment points*: the package logger
``lensing_ssc`` always, plus loggers the user names (``capture=("mypipeline",)``) or the
root logger when asked (``capture="root"``, ``"root"`` among the names, or
``capture_root=True``, which then replaces the others: records reach the root through
propagation, and attaching twice would double them).

Per point there is a stack: the newest open manager's handler is the only one attached,
and closing it puts the previous one back. So creating a manager twice, e.g. re-running a
notebook cell, never writes a line twice, and closing the last one restores the logger's
original level, propagation and handlers. A point other than the root stops propagating
while attached (unless ``propagate=True``), so records do not also reach handlers the
application put on the root logger.

The handler itself is in :mod:`._writer`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

__all__ = ["PACKAGE_LOGGER", "Attachment", "attach", "attachment_points", "detach", "reset"]

PACKAGE_LOGGER = "lensing_ssc"
ROOT = "root"


@dataclass(frozen=True)
class Attachment:
    """One manager's claim on one logger."""

    handler: logging.Handler
    level: int
    propagate: bool | None  # None: leave as it was (the root logger)


_lock = threading.RLock()
_stacks: dict[str, list[Attachment]] = {}
_saved: dict[str, tuple[int, bool]] = {}


def _logger(name: str) -> logging.Logger:
    return logging.getLogger() if name == ROOT else logging.getLogger(name)


def attachment_points(capture: tuple[str, ...], capture_root: bool) -> tuple[str, ...]:
    """The loggers to attach to: no point below another one (which would double records)."""
    if capture_root or ROOT in capture:
        return (ROOT,)
    names = sorted({PACKAGE_LOGGER, *capture})
    return tuple(name for name in names if not any(name.startswith(other + ".") for other in names))


def _apply(logger: logging.Logger, entry: Attachment) -> None:
    logger.addHandler(entry.handler)
    logger.setLevel(entry.level)
    if entry.propagate is not None:
        logger.propagate = entry.propagate


def attach(name: str, entry: Attachment) -> None:
    """Make ``entry`` the one manager writing for logger ``name``."""
    with _lock:
        logger = _logger(name)
        stack = _stacks.setdefault(name, [])
        if stack:
            logger.removeHandler(stack[-1].handler)
        else:
            _saved[name] = (logger.level, logger.propagate)
        stack.append(entry)
        _apply(logger, entry)


def detach(handler: logging.Handler) -> None:
    """Remove ``handler`` everywhere; the previous manager (or the original state) returns."""
    with _lock:
        for name in list(_stacks):
            stack = _stacks[name]
            index = next((i for i, e in enumerate(stack) if e.handler is handler), None)
            if index is None:
                continue
            was_top = index == len(stack) - 1
            del stack[index]
            if not was_top:
                continue
            logger = _logger(name)
            logger.removeHandler(handler)
            if stack:
                _apply(logger, stack[-1])
            else:
                level, propagate = _saved.pop(name)
                logger.setLevel(level)
                logger.propagate = propagate
                del _stacks[name]


def reset() -> None:
    """Detach every manager's handler and restore all loggers (tests' clean slate)."""
    with _lock:
        for name in list(_stacks):
            for entry in list(reversed(_stacks.get(name, []))):
                detach(entry.handler)


def _reinit_after_fork() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
