"""The memory limits that apply to this job: every cgroup on its path, and its rlimits.

Covers reading ``/proc/self/cgroup`` and the cgroup filesystem (both paths injectable, so
tests build fake trees in a temporary directory), walking from the process's own cgroup up
to the root of each hierarchy, and ``RLIMIT_AS`` / ``RLIMIT_RSS``. SLURM and container
runtimes put a job's limit on an ancestor of the cgroup its processes run in (``job_123``
above ``step_0/task_0``), so reading only the top-level file misses it.

Also turns the user's own numbers into limits (``memory_limit_percent`` is a percentage of
what the system gives the job). Choosing the lowest is left to
:class:`~lensing_ssc.processing.managers.resource._manager.ResourceManager`; measuring
usage is :mod:`.sampling`. Missing or unreadable files are skipped, never raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

try:
    import resource as _rlimits
except ImportError:  # Windows has no rlimits
    _rlimits = None  # type: ignore[assignment]

__all__ = ["CgroupReader", "MemoryLimit", "rlimit_memory_limits", "user_memory_limits"]

_log = logging.getLogger("lensing_ssc.processing.managers.resource")

MIB = 1024 * 1024
# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages (about 2**63 bytes); anything this
# large is no limit at all.
_UNLIMITED_BYTES = 1 << 62
_V2_FILES = ("memory.max", "memory.high")
_V1_FILES = ("memory.limit_in_bytes",)


@dataclass(frozen=True)
class MemoryLimit:
    """One memory limit and where it was found.

    Args:
        limit_mb: The limit in MiB (2**20 bytes, as SLURM's ``--mem`` counts).
        source: Where it came from: ``"user"``, ``"RLIMIT_AS"``, or the cgroup file, e.g.
            ``"cgroup v2 /sys/fs/cgroup/system.slice/job_123/memory.max"``.
    """

    limit_mb: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: ``{"limit_mb": ..., "source": ...}``."""
        return {"limit_mb": self.limit_mb, "source": self.source}


class CgroupReader:
    """Reads the memory limits of every cgroup from this process's own up to the root.

    Handles cgroup v2 (unified, ``memory.max`` and ``memory.high``), v1 (the ``memory``
    controller's ``memory.limit_in_bytes``) and hybrid layouts (v1 memory controller plus
    a v2 tree under ``unified/``). When the path listed in ``/proc/self/cgroup`` does not
    exist below the mount (a container without a cgroup namespace sees the host's path but
    has its own cgroup mounted at the root), the longest existing tail of it is used.

    Args:
        root: Where the cgroup filesystems are mounted.
        proc_cgroup: The file listing this process's cgroups (``/proc/<pid>/cgroup`` format).

    Example:
        >>> reader = CgroupReader()
        >>> limits = reader.memory_limits()   # () on a machine without limits
    """

    def __init__(
        self,
        root: str | Path = "/sys/fs/cgroup",
        proc_cgroup: str | Path = "/proc/self/cgroup",
    ) -> None:
        self.root = Path(root)
        self.proc_cgroup = Path(proc_cgroup)

    def memory_limits(self) -> tuple[MemoryLimit, ...]:
        """Every memory limit on the path from this process's cgroups to the root."""
        limits: list[MemoryLimit] = []
        for hierarchy, controllers, path in self._memberships():
            if hierarchy == "0" and not controllers:
                mount = self._v2_mount()
                if mount is not None:
                    limits.extend(self._walk(mount, path, _V2_FILES, "cgroup v2"))
            elif "memory" in controllers:
                mount = self._v1_mount(controllers)
                if mount is not None:
                    limits.extend(self._walk(mount, path, _V1_FILES, "cgroup v1"))
        return tuple(limits)

    # -- internals -----------------------------------------------------------------------
    def _memberships(self) -> list[tuple[str, list[str], str]]:
        try:
            text = self.proc_cgroup.read_text()
        except OSError as exc:
            _log.debug("no cgroup membership readable at %s: %s", self.proc_cgroup, exc)
            return []
        entries = []
        for line in text.splitlines():
            parts = line.strip().split(":", 2)
            if len(parts) != 3:
                continue
            hierarchy, controllers, path = parts
            entries.append((hierarchy, [c for c in controllers.split(",") if c], path))
        return entries

    def _v2_mount(self) -> Path | None:
        for mount in (self.root, self.root / "unified"):
            if (mount / "cgroup.controllers").is_file():
                return mount
        return None

    def _v1_mount(self, controllers: list[str]) -> Path | None:
        for mount in (self.root / "memory", self.root / ",".join(controllers)):
            if mount.is_dir():
                return mount
        return None

    @staticmethod
    def _resolve(mount: Path, path: str) -> Path:
        parts = [p for p in path.split("/") if p and p != ".."]
        for start in range(len(parts) + 1):
            candidate = mount.joinpath(*parts[start:])
            if candidate.is_dir():
                return candidate
        return mount

    def _walk(self, mount: Path, path: str, names: tuple[str, ...], kind: str) -> list[MemoryLimit]:
        found: list[MemoryLimit] = []
        directory = self._resolve(mount, path)
        while True:
            for name in names:
                limit = _read_limit_bytes(directory / name)
                if limit is not None:
                    found.append(MemoryLimit(limit / MIB, f"{kind} {directory / name}"))
            if directory == mount or directory.parent == directory:
                return found
            directory = directory.parent


def _read_limit_bytes(file: Path) -> int | None:
    """A limit file's value in bytes, or ``None`` for "max", absent or unreadable files."""
    try:
        text = file.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.debug("cannot read cgroup limit %s: %s", file, exc)
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        _log.debug("ignoring cgroup limit %s with unexpected content %r", file, text[:40])
        return None
    if value <= 0 or value >= _UNLIMITED_BYTES:
        return None
    return value


def rlimit_memory_limits() -> tuple[MemoryLimit, ...]:
    """The soft ``RLIMIT_AS`` and ``RLIMIT_RSS`` limits that are set, in MiB.

    ``RLIMIT_AS`` caps virtual memory, which is at least the resident memory, so the job
    fails an allocation no later than its resident memory reaches it.
    """
    if _rlimits is None:
        return ()
    limits = []
    for name in ("RLIMIT_AS", "RLIMIT_RSS"):
        which = getattr(_rlimits, name, None)
        if which is None:
            continue
        try:
            soft, _hard = _rlimits.getrlimit(which)
        except (OSError, ValueError) as exc:
            _log.debug("cannot read %s: %s", name, exc)
            continue
        if soft != _rlimits.RLIM_INFINITY and 0 < soft < _UNLIMITED_BYTES:
            limits.append(MemoryLimit(soft / MIB, name))
    return tuple(limits)


def user_memory_limits(
    system: tuple[MemoryLimit, ...],
    memory_limit_mb: float | None,
    memory_limit_percent: float | None,
) -> tuple[MemoryLimit, ...]:
    """The user's limits: ``memory_limit_mb`` as is, ``memory_limit_percent`` of a base.

    The base of the percentage is the memory the system gives the job: the lowest of its
    ``system`` limits and the machine's physical memory.
    """
    limits = []
    if memory_limit_mb is not None:
        limits.append(MemoryLimit(memory_limit_mb, "user"))
    if memory_limit_percent is not None:
        bases = list(system)
        try:
            bases.append(MemoryLimit(psutil.virtual_memory().total / MIB, "system memory"))
        except (OSError, psutil.Error) as exc:
            _log.debug("machine memory not readable: %s", exc)
        if bases:
            base = min(bases, key=lambda limit: limit.limit_mb)
            limits.append(
                MemoryLimit(
                    base.limit_mb * memory_limit_percent / 100.0,
                    f"user ({memory_limit_percent:g}% of {base.source})",
                )
            )
    return tuple(limits)
