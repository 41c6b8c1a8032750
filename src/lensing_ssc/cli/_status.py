"""``lensing-ssc status RUN_DIR``: what a running (or finished) job is doing, from status.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from lensing_ssc.processing.managers._status import read_status

__all__ = ["status"]


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _progress_lines(task: dict[str, Any], depth: int = 0) -> list[str]:
    total = task.get("total")
    position = f"{task.get('current', 0)}" + (f"/{total}" if total is not None else "")
    pct = task.get("percentage")
    line = f"{'  ' * depth}{task.get('name', 'progress')}: {position}"
    if pct is not None:
        line += f" ({pct:.1f}%)"
    if task.get("rate"):
        line += f", {task['rate']:.3g}/s, eta {_fmt_seconds(task.get('eta'))}"
    lines = [line]
    for child in task.get("children", []):
        lines.extend(_progress_lines(child, depth + 1))
    return lines


def status(
    run_dir: Path = typer.Argument(..., help="The run directory (holds status.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw status as JSON."),
) -> None:
    """Show the state of a run: progress, memory, checkpoints, cache and log."""
    data = read_status(run_dir)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    managers = data.get("managers", {})
    age = time.time() - float(data.get("updated", time.time()))
    typer.echo(
        f"{run_dir}: {data.get('state', '?')} (pid {data.get('pid')} on {data.get('host')}, "
        f"updated {age:.0f} s ago)"
    )
    progress = managers.get("progress")
    if progress:
        typer.echo("\n".join("  " + line for line in _progress_lines(progress)))
    resource = managers.get("resource", {})
    usage = resource.get("current") or resource.get("last_sample") or {}
    if usage.get("memory_mb") is not None:
        typer.echo(f"  memory: {usage['memory_mb']:.0f} MiB")
    checkpoint = managers.get("checkpoint", {})
    if "checkpoints" in checkpoint:
        typer.echo(f"  checkpoints: {checkpoint['checkpoints']}")
    cache = managers.get("cache", {})
    if "hit_rate" in cache:
        typer.echo(f"  cache: {cache.get('entries', 0)} entries, hit rate {cache['hit_rate']:.0%}")
