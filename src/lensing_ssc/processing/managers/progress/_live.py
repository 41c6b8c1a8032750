"""Interactive progress displays: a rich live table in a terminal, a live table in Jupyter.

:class:`LiveDisplay` draws one :class:`rich.live.Live` with a row per open task (subtasks
indented): bar, percentage, count, rate, ETA, elapsed. While it runs, ``print()`` output
and existing logging handlers that write to the same terminal are redirected above it
(rich's ``redirect_stdout``/``redirect_stderr`` plus a swap of those handlers' streams), so
nothing garbles the bars; a notice (a signal's acknowledgement) is printed above it the same
way, the bars cleared and drawn again below, as ``tqdm.write`` does. A line written to the
terminal behind rich's back would be wiped, or left under a stale copy of the bars, by the
next redraw.

In Jupyter, :class:`NotebookDisplay` draws the same table as one cell output and replaces it
in place through ``IPython.display`` (``display_id`` updates), whether or not ``ipywidgets``
is installed. It does not use rich's widget display: that one captures the cell's output
while it redraws from the refresher thread, so a ``print()`` landing in that moment was
erased by the next redraw. This way ``print()`` and logging output stay ordinary cell output,
and the final table is saved with the notebook.

Plain heartbeat lines for files and pipes are in ``_display``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
import threading
import weakref
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.jupyter import JUPYTER_HTML_FORMAT
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lensing_ssc.processing.managers.progress._display import Display, work_rows
from lensing_ssc.processing.managers.progress._snapshot import (
    ProgressSnapshot,
    format_count,
    format_duration,
    format_rate,
)

__all__ = ["LiveDisplay", "NotebookDisplay", "TaskTable", "notebook_display"]

_BAR_MIN, _BAR_MAX = 10, 40


class TaskTable:
    """The rich renderable of a task tree: one row per task, subtasks indented.

    A task that only holds subtasks shares its row with its newest open subtask
    (:func:`._display.work_rows`), so the top row shows the work being done.

    A task with nothing to count (no total, no count, no open subtask: the root between the
    stages of a job, or after the last one closed) shows only its name and elapsed time, not
    an empty count at ``?/s``.

    Laid out for the width it is given: numbers are never cut; on a narrow terminal the bar
    shrinks first (down to 10 cells), then task names are shortened with an ellipsis.
    """

    def __init__(self, snapshot: ProgressSnapshot) -> None:
        self._rows: list[tuple[Text, ProgressSnapshot, list[str]]] = []
        for _, depth, row in work_rows(snapshot):
            label = Text("  " * depth + row.name, style="bold" if depth == 0 else "")
            if row.resumed_from is not None:
                label.append(f" (resumed at {format_count(row.resumed_from)})", style="dim")
            if _counts_nothing(row):
                self._rows.append((label, row, ["", "", "", "", format_duration(row.elapsed)]))
                continue
            count = format_count(row.current)
            if row.total is not None:
                count = f"{count}/{format_count(row.total)}"
            cells = [
                "" if row.percentage is None else f"{row.percentage:5.1f}%",
                count,
                "paused" if row.paused else format_rate(row.rate),
                "" if row.total is None else f"eta {format_duration(row.eta)}",
                format_duration(row.elapsed),
            ]
            self._rows.append((label, row, cells))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = [max(len(cells[i]) for _, _, cells in self._rows) for i in range(5)]
        room = options.max_width - sum(widths) - 6  # six one-cell gaps between 7 columns
        label_width = max(label.cell_len for label, _, _ in self._rows)
        bar_width = max(_BAR_MIN, min(_BAR_MAX, room - label_width))
        label_width = max(1, min(label_width, room - bar_width))
        table = Table.grid(padding=(0, 1))
        table.add_column(width=label_width, no_wrap=True, overflow="ellipsis")
        table.add_column(width=bar_width)
        for width in widths:
            table.add_column(justify="right", no_wrap=True, min_width=width)
        for label, row, cells in self._rows:
            if _counts_nothing(row):
                table.add_row(label, "", *cells)
                continue
            total = row.total
            bar = ProgressBar(
                total=None if total is None else max(float(total), 1e-12),
                completed=float(row.current) if total is None else min(float(row.current), total),
                width=bar_width,
            )
            table.add_row(label, bar, *cells)
        yield table


def _counts_nothing(row: ProgressSnapshot) -> bool:
    return row.total is None and not row.current and not row.children


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


_consoles: weakref.WeakKeyDictionary[Any, Console] = weakref.WeakKeyDictionary()
_consoles_lock = threading.Lock()


def _shared_console(stream: TextIO) -> Console:
    """One console per terminal, so managers open at the same time stack their tables.

    rich draws every live display of a console together (the first one started renders
    the others below it); two consoles on one terminal would overwrite each other.
    """
    # sys.stderr may be an open display's redirection of the terminal
    stream = getattr(stream, "rich_proxied_file", stream)
    with _consoles_lock:
        console = _consoles.get(stream)
        if console is None:
            console = Console(file=stream, force_terminal=True, force_jupyter=False)
            with contextlib.suppress(TypeError):  # a stream without weak references: not shared
                _consoles[stream] = console
        return console


class LiveDisplay:
    """A rich live table in a terminal, redrawn by the manager's refresher thread.

    Args:
        stream: The terminal to draw on.
    """

    mode = "terminal"

    def __init__(self, stream: TextIO) -> None:
        self._console = _shared_console(stream)
        # Redirect print() only where it would land on this same screen.
        self._live = Live(
            console=self._console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=_is_tty(sys.stdout),
            redirect_stderr=_is_tty(sys.stderr),
        )
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []

    def start(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Start the live display and move terminal logging handlers above it."""
        originals = (sys.stdout, sys.stderr)
        self._live.start()
        self._redirect_logging(originals)
        self._live.update(TaskTable(snapshot), refresh=True)

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Redraw the table."""
        self._live.update(TaskTable(snapshot), refresh=True)

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Redraw: pauses and restores show in the rows themselves."""
        self.refresh(snapshot, now)

    def notice(self, line: str) -> None:
        """Print ``line`` above the table, which is drawn again below it."""
        # soft_wrap: the terminal folds a long line, rather than rich breaking it at a word.
        self._console.print(Text(line), soft_wrap=True)

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Draw the final table, leave it on screen, restore streams and handlers."""
        try:
            self._live.update(TaskTable(snapshot), refresh=True)
        finally:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()
            self._live.stop()

    def _redirect_logging(self, originals: tuple[Any, Any]) -> None:
        proxies = {
            id(old): new for old, new in zip(originals, (sys.stdout, sys.stderr), strict=True)
        }
        proxies = {key: new for key, new in proxies.items() if new not in originals}
        if not proxies:
            return
        loggers: list[Any] = [logging.getLogger()]
        loggers.extend(logging.Logger.manager.loggerDict.values())
        for logger in loggers:
            for handler in getattr(logger, "handlers", ()):
                if not isinstance(handler, logging.StreamHandler) or isinstance(
                    handler, logging.FileHandler
                ):
                    continue
                proxy = proxies.get(id(handler.stream))
                if proxy is not None:
                    self._swapped.append((handler, handler.setStream(proxy)))


class NotebookDisplay:
    """A Jupyter cell output updated in place through ``IPython.display`` (no widgets)."""

    mode = "jupyter"

    def __init__(self, display: Any) -> None:
        self._display = display
        self._handle: Any = None

    def _bundle(self, snapshot: ProgressSnapshot) -> dict[str, str]:
        console = Console(
            file=io.StringIO(), record=True, width=110, force_terminal=False, force_jupyter=False
        )
        console.print(TaskTable(snapshot))
        return {
            "text/plain": console.export_text(clear=False),
            "text/html": console.export_html(inline_styles=True, code_format=JUPYTER_HTML_FORMAT),
        }

    def start(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Create the cell output."""
        self._handle = self._display(self._bundle(snapshot), raw=True, display_id=True)

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Replace the cell output with the current table."""
        self._handle.update(self._bundle(snapshot), raw=True)

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Redraw: pauses and restores show in the rows themselves."""
        self.refresh(snapshot, now)

    def notice(self, line: str) -> None:
        """Print ``line`` as ordinary cell output, which the table's updates leave alone."""
        print(line, file=sys.stderr)

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Leave the final table in the cell."""
        self.refresh(snapshot, now)


def notebook_display() -> Display:
    """The Jupyter display: one cell output replaced in place (no ``ipywidgets`` needed)."""
    ipython_display = importlib.import_module("IPython.display")  # in every Jupyter kernel
    return NotebookDisplay(ipython_display.display)
