"""``lensing-ssc status RUN_DIR``: what a running (or finished) job is doing, from status.json.

A file that says "running" is checked against the process it names: a job killed with
SIGKILL (or by the out-of-memory killer, or a crash of the machine) never writes its final
state, so on the run's own host a vanished process is reported as stopped, and on another
host the run is shown as last seen. The file is read, never changed. A field whose type is
not what a run writes (a damaged or hand-edited file) is one error line naming it
(:func:`_check_fields`); a field left out or null is shown as unknown.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path
from typing import Any

import typer

from lensing_ssc.core.base.exceptions import LensingSSCError
from lensing_ssc.processing.managers import RunDir
from lensing_ssc.processing.managers.status import check_writer, read_status

__all__ = ["status"]


_NUMBER = "a number"
_PID = "a process id"
_MAX_PID = 2**31 - 1
_DEPTH = 16  # progress rows nested deeper than any run writes
_PROGRESS: dict[str, Any] = {
    "name": str,
    "current": _NUMBER,
    "total": _NUMBER,
    "percentage": _NUMBER,
    "rate": _NUMBER,
    "eta": _NUMBER,
}
_USAGE = {"memory_mb": _NUMBER}
_FIELDS: dict[str, Any] = {
    "state": str,
    "pid": _PID,
    "host": str,
    "updated": _NUMBER,
    "stop_reason": str,
    "refresh_interval": _NUMBER,
    "pid_started": _NUMBER,
    "started": _NUMBER,
    "managers": {
        "progress": _PROGRESS,
        "resource": {"current": _USAGE, "last_sample": _USAGE},
        "checkpoint": {},
        "cache": {
            "entries": _NUMBER,
            "bytes": _NUMBER,
            "hits": _NUMBER,
            "misses": _NUMBER,
            "cache_dir": str,
            "disk": {"entries": _NUMBER, "bytes": _NUMBER},
            "shared": {"hits": _NUMBER, "misses": _NUMBER},
            "memory": {"hits": _NUMBER},
        },
    },
}


def _kind_error(value: Any, wanted: Any) -> str | None:
    """What is wrong with ``value`` as a field described by ``wanted``; ``None``: nothing."""
    if isinstance(wanted, dict):
        return None if isinstance(value, dict) else "an object"
    if wanted is str:
        return None if isinstance(value, str) else "a string"
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if wanted == _PID:
        return None if number and isinstance(value, int) and 0 < value <= _MAX_PID else _PID
    return None if number and math.isfinite(value) else _NUMBER


def _checked(data: dict[str, Any], spec: dict[str, Any], where: str, depth: int) -> dict[str, Any]:
    """``data`` without the fields of ``spec`` that are null (shown as unknown).

    Raises:
        ValueError: naming the first field whose type ``spec`` does not allow.
    """
    kept = dict(data)
    for name, wanted in spec.items():
        value = kept.get(name)
        if value is None:
            kept.pop(name, None)
            continue
        field = f"{where}{name}"
        problem = _kind_error(value, wanted)
        if problem is not None:
            raise ValueError(f"{field} is {type(value).__name__} {_cut(value)}, not {problem}")
        if isinstance(wanted, dict):
            kept[name] = _checked(value, wanted, f"{field}.", depth)
    children = kept.pop("children", None) if spec is _PROGRESS else None
    if children is not None:
        if not isinstance(children, list) or depth >= _DEPTH:
            raise ValueError(f"{where}children is not a list of progress rows")
        rows = []
        for index, child in enumerate(children):
            if not isinstance(child, dict):
                raise ValueError(f"{where}children.{index} is not a progress row")
            rows.append(_checked(child, _PROGRESS, f"{where}children.{index}.", depth + 1))
        kept["children"] = rows
    return kept


def _cut(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _shown_fields(run_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The status ``data`` of ``run_dir`` as shown: each field of the type a run writes.

    Raises:
        LensingSSCError: A field has another type (naming it).
    """
    try:
        return _checked(data, _FIELDS, "", 0)
    except ValueError as exc:
        path = RunDir(run_dir).status_file
        raise LensingSSCError(
            f"{str(path)!r} is damaged: {exc}",
            value=str(path),
            hint="a run rewrites it while it lives; rerun the run to write it afresh",
        ) from None


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _headline(run_dir: Path, data: dict[str, Any]) -> str:
    """The first line: the run's state, checked against its process when it says running."""
    state = data.get("state", "?")
    pid, host = data.get("pid"), data.get("host")
    age = time.time() - float(data.get("updated", time.time()))
    seen = f"updated {age:.0f} s ago"
    if state == "interrupted":
        reason = data.get("stop_reason")
        why = f" ({reason})" if reason else ""
        return f"{run_dir}: interrupted{why} — rerun to resume (pid {pid} on {host}, {seen})"
    if state != "running":
        return f"{run_dir}: {state} (pid {pid} on {host}, {seen})"
    check = check_writer(data)
    if check.verdict == "gone":
        return (
            f"{run_dir}: stopped unexpectedly (pid {pid} is gone; killed or crashed) "
            f"— rerun to resume (last {seen})"
        )
    if check.verdict == "replaced":
        return (
            f"{run_dir}: stopped unexpectedly (pid {pid} is now another process; the run was "
            f"killed or crashed) — rerun to resume (last {seen})"
        )
    if check.verdict == "elsewhere":
        line = (
            f"{run_dir}: running on {host} as of {age:.0f} s ago (pid {pid}; "
            f"whether it still runs cannot be checked from {socket.gethostname()})"
        )
        interval = data.get("refresh_interval")
        if isinstance(interval, int | float) and age > 3 * interval + 5:
            line += f"; it refreshes this file every {interval:g} s, so it may have stopped"
        return line
    return f"{run_dir}: running (pid {pid} on {host}, {seen})"


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


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _cache_lines(cache: dict[str, Any]) -> list[str]:
    """What the cache holds and how often it answered, saying whose lookups are counted.

    With a disk tier, entries and bytes are the directory's, and the lookups are every
    process's disk lookups plus the main process's memory hits: worker processes' memory
    hits are recorded nowhere. Without one, all figures are the main process's.
    """
    disk, shared, memory = cache.get("disk"), cache.get("shared"), cache.get("memory") or {}
    if disk is None:
        head = (
            f"cache: {cache.get('entries', 0)} entries, {_mib(cache.get('bytes', 0))} "
            "in the main process's memory"
        )
        hits, misses, whose = cache.get("hits", 0), cache.get("misses", 0), "main process only"
    else:
        where = f" in {cache['cache_dir']}" if cache.get("cache_dir") else ""
        entries, size = disk.get("entries", 0), disk.get("bytes", 0)
        head = f"cache: {entries} entries, {_mib(size)} on disk{where}"
        if shared is None:  # written before the disk lookups of every process were recorded
            hits, misses = cache.get("hits", 0), cache.get("misses", 0)
            whose = "main process only"
        else:
            hits = memory.get("hits", 0) + shared.get("hits", 0)
            misses = shared.get("misses", 0)
            whose = "disk: all processes; memory: main process only"
    lookups = hits + misses
    if not lookups:
        return [head, f"  this run: no lookups ({whose})"]
    return [head, f"  this run: {lookups} lookups, hit rate {hits / lookups:.1%} ({whose})"]


def status(
    run_dir: Path = typer.Argument(..., help="The run directory (holds status.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw status as JSON."),
) -> None:
    """Show the state of a run: progress, memory, checkpoints, cache and log."""
    if not RunDir(run_dir).status_file.is_file():
        raise LensingSSCError(
            f"no run in {str(run_dir)!r}: it has no status.json",
            value=str(run_dir),
            hint="give the directory a run writes (runs/default for lensing-ssc run, "
            "or its --run-dir)",
        )
    data = read_status(run_dir)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    data = _shown_fields(run_dir, data)
    managers = data.get("managers", {})
    typer.echo(_headline(run_dir, data))
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
        typer.echo("\n".join("  " + line for line in _cache_lines(cache)))
