"""Which display a progress manager draws on: none, Jupyter, a terminal, or plain lines.

* disabled → nothing;
* a Jupyter kernel → a live cell display (:mod:`._live`);
* a terminal (``isatty()`` and ``TERM`` not ``dumb``) → a rich live display (:mod:`._live`);
* anything else (a file, a pipe, a batch log) → plain heartbeat lines (:mod:`._display`).

The displays themselves are in those modules; this one only chooses.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from rich.console import Console

from lensing_ssc.processing.managers.progress._display import Display, NullDisplay, PlainDisplay

__all__ = ["choose_display"]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def choose_display(
    stream: TextIO,
    *,
    enabled: bool,
    logger: logging.Logger | None,
    heartbeat_interval: float,
) -> Display:
    """The display for ``stream``: disabled, Jupyter, terminal or plain heartbeat lines."""
    if not enabled:
        return NullDisplay()
    # Imported here: the rich live machinery is only needed for interactive output.
    from lensing_ssc.processing.managers.progress import _live as _progress_live

    if stream in (sys.stdout, sys.stderr) and Console(file=stream).is_jupyter:
        return _progress_live.notebook_display()
    if _is_terminal(stream):
        return _progress_live.LiveDisplay(stream)
    return PlainDisplay(stream, logger=logger, heartbeat_interval=heartbeat_interval)
