"""``lensing-ssc cache stats|clean|invalidate``: inspect and empty a run's disk cache.

Each command takes the run directory (its cache is ``RUN_DIR/cache``) or a cache directory
itself, or ``--cache-dir`` for a cache kept elsewhere (``cache.dir`` in the config). The
commands work on the disk tier (``clean`` asks first, unless ``--yes``; ``clear`` is its
former name, kept working) every process of the run shares; memory tiers live and die
with their processes. ``stats`` only reads (it works on a cache this user may not write);
``clean`` and ``clear`` replace a damaged index by an empty one. The cache itself is
:class:`~lensing_ssc.processing.managers.CacheManager`; these commands go through
:class:`~lensing_ssc.processing.managers.cache.CacheDirectory`, and find the run's cache with
:class:`~lensing_ssc.processing.managers.RunDir`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from lensing_ssc.cli._help import ReadableCommand, ReadableGroup
from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.processing.managers import RunDir
from lensing_ssc.processing.managers.cache import CacheDirectory

__all__ = ["cache_app"]

cache_app = typer.Typer(
    cls=ReadableGroup, help="Show, clear and invalidate a run's disk cache.", no_args_is_help=True
)

_RUN_DIR = typer.Argument(
    ..., metavar="RUN_DIR", help="Run directory (its cache is RUN_DIR/cache) or a cache directory."
)
_CACHE_DIR = typer.Option(
    None, "--cache-dir", metavar="DIR", help="The cache directory, when not RUN_DIR/cache."
)


def _find(run_dir: Path, cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        candidates = [cache_dir]
    else:
        candidates = [path for path in (RunDir(run_dir).cache, run_dir) if path is not None]
    for directory in candidates:
        if CacheDirectory.holds_cache(directory):
            return directory
    raise CacheError(
        f"no cache found in {' or '.join(repr(str(path)) for path in candidates)}",
        value=str(candidates[0]),
        hint="pass the run directory of a run that used a disk cache, or --cache-dir",
    )


def _open(run_dir: Path, cache_dir: Path | None) -> CacheDirectory:
    return CacheDirectory(_find(run_dir, cache_dir))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _rebuild(directory: Path, damage: CacheError, *, ask: bool) -> None:
    """Replace a damaged index (its entries cannot be listed, so none can be removed one by one)."""
    typer.echo(damage.message)
    if ask and not typer.confirm(
        f"replace it with an empty index and remove every value file of {directory}?",
        default=False,
    ):
        typer.echo("nothing removed")
        raise typer.Exit(1)
    files, size = CacheDirectory.rebuild(directory)
    typer.echo(
        f"replaced the damaged index of {directory} with an empty one, removed {files} value "
        f"files, freed {_mib(size)}"
    )


@cache_app.command("stats", cls=ReadableCommand)
def stats(
    run_dir: Path = _RUN_DIR,
    cache_dir: Path | None = _CACHE_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Entries, bytes, tags and the hits and misses of every process so far (read-only)."""
    disk = CacheDirectory(_find(run_dir, cache_dir), read_only=True)
    totals = disk.totals()
    lookups = totals["hits"] + totals["misses"]
    totals["hit_rate"] = totals["hits"] / lookups if lookups else 0.0
    totals["cache_dir"] = str(disk.directory)
    if as_json:
        typer.echo(json.dumps(totals, indent=2, sort_keys=True))
        return
    typer.echo(f"cache       {disk.directory}")
    typer.echo(f"entries     {totals['entries']}")
    typer.echo(f"size        {_mib(totals['bytes'])}")
    typer.echo(
        f"lookups     {lookups} (hits {totals['hits']}, misses {totals['misses']}, "
        f"hit rate {totals['hit_rate']:.1%})"
    )
    typer.echo(
        f"removed     evicted {totals['evictions']}, expired {totals['expirations']}, "
        f"rejected {totals['rejected']}"
    )
    tags = totals["tags"]
    if tags:
        listed = ", ".join(f"{tag} ({count})" for tag, count in sorted(tags.items()))
        typer.echo(f"tags        {listed}")


def _disk_bytes(directory: Path) -> int:
    """Bytes of the files under ``directory`` (index, value files, leftovers of dead writers)."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # removed by a live run between listing and stat
                continue
    return total


def _remove_all(
    directory: Path, *, ask: bool, size: Callable[[dict[str, Any]], int]
) -> tuple[int, int] | None:
    """Remove every entry of the disk cache in ``directory``: ``(entries removed, size before)``.

    ``size`` measures the cache just before the removal, given the index's totals. With
    ``ask``, the user confirms first (``nothing removed`` and exit status 1 if not). A
    damaged index is replaced by an empty one instead (:func:`_rebuild`), and ``None``
    returned.
    """
    try:
        with CacheDirectory(directory) as disk:
            totals = disk.totals()
            if ask and not typer.confirm(
                f"remove all {totals['entries']} entries of {directory}?", default=False
            ):
                typer.echo("nothing removed")
                raise typer.Exit(1)
            before = size(totals)
            removed = disk.clear()
    except CacheError as exc:
        if not CacheDirectory.is_damaged(exc):
            raise
        _rebuild(directory, exc, ask=ask)
        return None
    return removed, before


@cache_app.command("clean", cls=ReadableCommand)
def clean(
    run_dir: Path = _RUN_DIR,
    cache_dir: Path | None = _CACHE_DIR,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove every entry of the run's disk cache and say how much disk space that freed.

    A damaged index, whose entries cannot be listed, is replaced by an empty one instead.
    """
    directory = _find(run_dir, cache_dir)
    outcome = _remove_all(directory, ask=not yes, size=lambda _: _disk_bytes(directory))
    if outcome is None:
        return
    removed, before = outcome
    freed = max(before - _disk_bytes(directory), 0)
    typer.echo(f"removed {removed} entries from {directory}, freed {_mib(freed)}")


@cache_app.command("clear", cls=ReadableCommand, hidden=True)
def clear(run_dir: Path = _RUN_DIR, cache_dir: Path | None = _CACHE_DIR) -> None:
    """Remove every entry of the disk cache, without asking (``clean --yes``'s former name)."""
    directory = _find(run_dir, cache_dir)
    outcome = _remove_all(directory, ask=False, size=lambda totals: totals["bytes"])
    if outcome is None:
        return
    removed, size = outcome
    typer.echo(f"removed {removed} entries ({_mib(size)}) from {directory}")


@cache_app.command("invalidate", cls=ReadableCommand)
def invalidate(
    run_dir: Path = _RUN_DIR,
    tags: list[str] = typer.Option(
        ..., "--tag", "-t", metavar="TAG", help="Remove entries with this tag (repeatable)."
    ),
    cache_dir: Path | None = _CACHE_DIR,
) -> None:
    """Remove every entry carrying any of the given tags."""
    disk = _open(run_dir, cache_dir)
    try:
        removed = disk.invalidate(tags)
    finally:
        disk.close()
    typer.echo(f"removed {removed} entries tagged {', '.join(tags)} from {disk.directory}")
