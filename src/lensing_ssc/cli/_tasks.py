"""``lensing-ssc tasks RUN_DIR``: what each task journal of a run finished and what failed.

One block per journal (``RUN_DIR/tasks/<name>.journal``, one per ``map`` call: ``maps`` and
``patches`` for ``lensing-ssc run``): its completed and failed counts, then each failure
with its error. The journals are read, never changed, so this works while the run goes on.
Paths come from :class:`~lensing_ssc.processing.managers.RunDir`; reading is
:func:`lensing_ssc.processing.runner.read_journal_summary`. Where a run is as a whole (its
progress, memory, cache) is ``lensing-ssc status``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.managers import RunDir
from lensing_ssc.processing.runner import JournalSummary, read_journal_summary

__all__ = ["tasks"]


def _summaries(run_dir: Path) -> list[JournalSummary]:
    """The summary of every journal of ``run_dir``, by name; an error naming a wrong directory."""
    layout = RunDir(run_dir)
    journals = sorted(layout.tasks.glob("*.journal")) if layout.tasks.is_dir() else []
    if not journals:
        raise CheckpointError(
            f"no task journals in {str(layout.tasks)!r}",
            value=str(run_dir),
            hint="give the run directory of a run (runs/default for lensing-ssc run)",
        )
    return [read_journal_summary(path) for path in journals]


def _block(summary: JournalSummary, show: int) -> list[str]:
    lines = [f"{summary.name}: {summary.completed} completed, {summary.failed} failed"]
    if summary.damaged_bytes or summary.torn_bytes:
        lines.append(
            f"  damaged {summary.damaged_bytes} bytes, torn {summary.torn_bytes} bytes "
            "(skipped; the next run redoes those items)"
        )
    for failure in summary.failures[:show]:
        kind = failure.error_type.rpartition(".")[2]
        tries = f"{failure.attempts} attempt{'s' if failure.attempts != 1 else ''}"
        lines.append(f"  failed {failure.key} after {tries}: {kind}: {failure.message}")
    if summary.failed > show:
        lines.append(f"  ... {summary.failed - show} more (--all lists every one)")
    return lines


def tasks(
    run_dir: Path = typer.Argument(..., help="The run directory (holds tasks/*.journal)."),
    show_all: bool = typer.Option(False, "--all", help="List every failure, not the first 10."),
    as_json: bool = typer.Option(False, "--json", help="Print the summaries as JSON."),
) -> None:
    """Show each task journal's completed and failed counts, and the failures' errors."""
    summaries = _summaries(run_dir)
    if as_json:
        typer.echo(json.dumps([summary.to_dict() for summary in summaries], indent=2))
        return
    show = max(summary.failed for summary in summaries) if show_all else 10
    for summary in summaries:
        typer.echo("\n".join(_block(summary, show)))
