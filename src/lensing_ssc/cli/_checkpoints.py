"""``lensing-ssc checkpoints list|show|verify|delete``: inspect a run's checkpoints.

Each command takes a run directory (its checkpoints live in ``RUN_DIR/checkpoints``) or a
checkpoint directory itself. ``list``, ``show`` and ``verify`` only read: they work on a
finished run, a copy, or a directory another job is still writing to. ``verify`` exits 1
when it finds damage. A pipeline run (``lensing-ssc run``) journals its tasks instead of
saving checkpoints: on its directory these commands say so, list what it holds (journals,
results, figures, log) and point to ``lensing-ssc tasks RUN_DIR``. The saving and loading are
:class:`CheckpointManager`'s; where a run keeps its checkpoints is
:class:`~lensing_ssc.processing.managers.RunDir`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from lensing_ssc.cli._help import ReadableCommand, ReadableGroup
from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.managers import RunDir
from lensing_ssc.processing.managers.checkpoint import CheckpointInfo, CheckpointManager

__all__ = ["checkpoints_app"]

checkpoints_app = typer.Typer(
    cls=ReadableGroup,
    help="List, show, verify and delete the checkpoints of a run.",
    no_args_is_help=True,
)

_RUN_DIR = typer.Argument(..., help="Run directory (or its checkpoints/ directory).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def _journals(run_dir: Path) -> list[str]:
    """The names of the task journals ``run_dir`` holds (``maps``, ``patches``), if any."""
    tasks = RunDir(run_dir).tasks
    return [path.stem for path in sorted(tasks.glob("*.journal"))] if tasks.is_dir() else []


def _journals_instead(run_dir: Path, journals: list[str]) -> str:
    """Where the work of a run that journals its tasks instead of checkpointing is shown."""
    return (
        f"{run_dir} holds task journals instead: {', '.join(journals)}; "
        f"see them with lensing-ssc tasks {run_dir}"
    )


def _run_holdings(run_dir: Path) -> list[str]:
    """What a run directory without checkpoints holds instead, a line each; none without journals.

    A pipeline run journals its tasks rather than saving checkpoints: its journals, results,
    figures and log are what there is to show.
    """
    journals = _journals(run_dir)
    if not journals:
        return []
    layout = RunDir(run_dir)
    lines = [_journals_instead(run_dir, journals)]
    for label, directory in (("results", layout.results), ("figures", layout.figures)):
        names = sorted(p.name for p in directory.glob("*") if p.is_file())
        if names:
            lines.append(f"  {label:<8} {directory}: {', '.join(names)}")
    if layout.log_file.is_file():
        lines.append(f"  log      {layout.log_file}")
    return lines


def _checkpoint_dir(run_dir: Path) -> Path:
    for candidate in (RunDir(run_dir).checkpoints, run_dir):
        if (candidate / "manifests").is_dir():
            return candidate
    journals = _journals(run_dir)
    raise CheckpointError(
        f"no checkpoints found in {str(run_dir)!r}",
        value=str(run_dir),
        hint=_journals_instead(run_dir, journals)
        if journals
        else "give the run directory (holding checkpoints/) or a checkpoint directory",
    )


def _manager(run_dir: Path) -> CheckpointManager:
    """A read-only manager of the run's checkpoints; an error pointing to the journals if none.

    A checkpoint directory the run created but never saved into is no checkpoint either:
    on a run that journals its tasks, that error names the journals and ``lensing-ssc tasks``.
    """
    manager = CheckpointManager(_checkpoint_dir(run_dir), read_only=True)
    journals = _journals(run_dir)
    if journals and not manager.list_checkpoints() and not manager.get_status()["damaged"]:
        manager.close()
        raise CheckpointError(
            f"no checkpoints in {str(manager.checkpoint_dir)!r}",
            value=str(run_dir),
            hint=_journals_instead(run_dir, journals),
        )
    return manager


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@checkpoints_app.command("list", cls=ReadableCommand)
def list_checkpoints(run_dir: Path = _RUN_DIR, as_json: bool = _JSON) -> None:
    """List checkpoints, newest first: id, time, step, size, tags, description."""
    holdings = _run_holdings(run_dir)
    try:
        manager = _manager(run_dir)
    except CheckpointError:
        if not holdings:
            raise
        # A run that journals its tasks: no checkpoints is an answer, with where to look.
        if as_json:
            _echo_json([])
            return
        typer.echo(f"no checkpoints in {RunDir(run_dir).checkpoints}")
        typer.echo("\n".join(holdings))
        return
    with manager:
        infos = manager.list_checkpoints()
        damaged = manager.get_status()["damaged"]
    if as_json:
        _echo_json([info.to_dict() for info in infos])
        return
    if not infos and not damaged:
        typer.echo(f"no checkpoints in {manager.checkpoint_dir}")
    for info in infos:
        step = "-" if info.step is None else str(info.step)
        tags = ",".join(info.tags) or "-"
        when = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{info.id}  {when}  step {step:>6}  {_size(info.size):>10}  {tags}  {info.description}"
        )
    for checkpoint_id in damaged:
        typer.echo(f"{checkpoint_id}  DAMAGED manifest: run `verify {checkpoint_id}`", err=True)


def _describe(info: CheckpointInfo) -> list[str]:
    lines = [
        f"id:              {info.id}",
        f"created:         {info.created_at.isoformat(timespec='seconds')}",
        f"description:     {info.description}",
        f"tags:            {', '.join(info.tags) or '-'}",
        f"step:            {'-' if info.step is None else info.step}",
        f"size:            {_size(info.size)} ({info.blobs} blobs)",
        f"written:         {_size(info.written_bytes)}",
        f"data:            {_size(info.data_bytes)} before compression",
        f"format:          {info.format}, compression {info.compression}",
        f"written by:      lensing_ssc {info.package_version} on {info.host} (pid {info.pid})",
    ]
    if info.pickled:
        lines.append(f"pickled pieces:  {', '.join(info.pickled)}")
    return lines


@checkpoints_app.command("show", cls=ReadableCommand)
def show(
    run_dir: Path = _RUN_DIR,
    checkpoint_id: str | None = typer.Argument(
        None, help="Id or unique prefix; newest if omitted."
    ),
    as_json: bool = _JSON,
) -> None:
    """Show one checkpoint's record (the newest by default)."""
    with _manager(run_dir) as manager:
        info = manager.get_checkpoint_info(checkpoint_id)
    if as_json:
        _echo_json(info.to_dict())
    else:
        typer.echo("\n".join(_describe(info)))


@checkpoints_app.command("verify", cls=ReadableCommand)
def verify(
    run_dir: Path = _RUN_DIR,
    checkpoint_id: str | None = typer.Argument(
        None, help="Id or unique prefix; newest if omitted."
    ),
    check_all: bool = typer.Option(False, "--all", help="Verify every checkpoint."),
    as_json: bool = _JSON,
) -> None:
    """Read every byte of a checkpoint and check its checksums; exit 1 on damage."""
    with _manager(run_dir) as manager:
        if check_all:
            ids = [info.id for info in manager.list_checkpoints()]
            ids = sorted(ids + manager.get_status()["damaged"], reverse=True)
            reports = [manager.verify_checkpoint(cid) for cid in ids]
        else:
            reports = [manager.verify_checkpoint(checkpoint_id)]
    if as_json:
        _echo_json([report.to_dict() for report in reports])
    else:
        for report in reports:
            state = "ok" if report.ok else "DAMAGED"
            typer.echo(
                f"{report.checkpoint_id}: {state} "
                f"({report.checked_files} files, {_size(report.checked_bytes)})"
            )
            for problem in report.problems:
                typer.echo(f"  {problem}")
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


@checkpoints_app.command("delete", cls=ReadableCommand)
def delete(
    run_dir: Path = _RUN_DIR,
    checkpoint_id: str = typer.Argument(..., help="Id or unique prefix of the checkpoint."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete one checkpoint; data no other checkpoint uses is removed too."""
    directory = _checkpoint_dir(run_dir)
    if not yes:
        typer.confirm(f"delete checkpoint {checkpoint_id}?", abort=True)
    # Only now: a manager that may write collects unreferenced data as it opens.
    with CheckpointManager(directory) as manager:
        deleted = manager.delete_checkpoint(checkpoint_id)
    typer.echo(f"deleted {deleted}")
