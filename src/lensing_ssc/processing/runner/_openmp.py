"""Which threads of this process GNU OpenMP runs: the threads a fork of it would strand.

GNU OpenMP (``libgomp``: healpy's spherical-harmonic transforms, numba's ``omp`` threading
layer, OpenMP builds of FFTW or of a BLAS) keeps its pool of worker threads alive after its
first parallel region. A child forked from such a process inherits the pool's bookkeeping
but not its threads, and hangs at its own first parallel region (GCC bug 60035; numba
aborts such a child instead). Measured here: after ``healpy.map2alm`` in the parent, every
forked pool worker that ran ``map2alm`` again hung (15 of 15 runs, nside 64 to 256), while
workers started by ``forkserver`` or ``spawn`` finished. The other threads a numerical
process carries are safe to fork: OpenBLAS stops its threads before a fork, and numba's
``workqueue`` layer starts its own again in the child (a fork after each ran its next
parallel call in the child).

:func:`thread_census` counts this process's threads (``/proc/self/task``), those Python
started (their ``native_id``), and, among the others, those of GNU OpenMP: a thread is
OpenMP's when, parked in a system call, its program counter or a word near the top of its
stack lies in libgomp's code (libgomp parks its idle workers in the kernel; on x86-64 from
its own code). A thread caught running is looked at again a few times; one that never
parks (an ``OMP_WAIT_POLICY=active`` pool spins for ever) or whose state cannot be read
counts as OpenMP's, as forking is only safe when none is. Linux only: elsewhere, and where
no libgomp is loaded, the census counts no OpenMP thread.

Not here: what the runner does about them (:mod:`._fork_guard`).
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["ThreadCensus", "thread_census"]

_GNU_OPENMP = re.compile(r"^libgomp[-.]")  # libgomp.so.1, and wheels' libgomp-6a29c32d.so.1.0.0

# How much of a parked thread's stack is read, from its stack pointer up. A libgomp worker
# waits five calls deep in its own code (thread start, barrier, wait, futex); those frames
# take well under 1 KiB, so the first libgomp return address is far inside this.
_STACK_BYTES = 16384

# A thread that has just finished work spins before it parks: libgomp for ~300,000
# iterations (a few ms), OpenBLAS for 2**28 clock cycles (measured: parked 0.11-0.12 s after
# a matrix product, on a machine with a load of 25 on 2 cores). The waits between looks
# double from 10 ms, to 0.63 s in all: spent only while a thread outside Python runs.
_LOOK_WAITS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)

_WORD = struct.calcsize("P")  # bytes of an address


@dataclass(frozen=True)
class ThreadCensus:
    """This process's threads, as a fork of it would find them.

    Attributes:
        total: Threads of this process.
        python: Those Python started (``threading``), this one included.
        openmp: Of the others, those GNU OpenMP runs (or that could not be told apart
            from its threads).
        runtime: The file name of the GNU OpenMP library loaded here, or ``None``.

    Example:
        >>> census = thread_census()
        >>> census.total >= census.python >= 1 or census.total == 0
        True
    """

    total: int
    python: int
    openmp: int
    runtime: str | None

    @property
    def others(self) -> int:
        """Threads Python did not start (OpenMP's, a BLAS's, a library's own)."""
        return max(0, self.total - self.python)

    def to_dict(self) -> dict[str, Any]:
        """The census as a JSON-ready dict."""
        return asdict(self)


def thread_census() -> ThreadCensus:
    """Count this process's threads, and among those Python did not start, GNU OpenMP's.

    Returns ``ThreadCensus(0, 0, 0, None)`` where there is no ``/proc/self/task`` (not
    Linux). Takes about a millisecond without libgomp loaded, and up to ~0.7 s while
    a thread outside Python keeps running (see the module's docstring).
    """
    proc = Path("/proc/self")
    try:
        tids = {int(name) for name in os.listdir(proc / "task")}
        maps = _mappings((proc / "maps").read_text(errors="replace").splitlines())
    except OSError:  # no procfs: not Linux
        return ThreadCensus(0, 0, 0, None)
    known = {t.native_id for t in threading.enumerate()} & tids
    code = [(start, end) for start, end, perms, path in maps if _is_openmp(path, perms)]
    runtime = next((Path(p).name for _, _, perms, p in maps if _is_openmp(p, perms)), None)
    if not code:
        return ThreadCensus(len(tids), len(known), 0, None)
    undecided = tids - known
    openmp = 0
    for wait in (0.0, *_LOOK_WAITS):
        time.sleep(wait)
        running = set()
        for tid in undecided:
            verdict = _runs_openmp(proc, tid, code, maps)
            if verdict is None:
                running.add(tid)
            elif verdict:
                openmp += 1
        undecided = running
        if not undecided:
            break
    return ThreadCensus(len(tids), len(known), openmp + len(undecided), runtime)


def _is_openmp(path: str, perms: str) -> bool:
    return "x" in perms and bool(_GNU_OPENMP.match(Path(path).name))


def _mappings(lines: Iterable[str]) -> list[tuple[int, int, str, str]]:
    """``(start, end, permissions, path)`` of each line of ``/proc/self/maps``."""
    found = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            continue
        low, _, high = fields[0].partition("-")
        path = fields[5].strip() if len(fields) == 6 else ""
        found.append((int(low, 16), int(high, 16), fields[1], path))
    return found


def _runs_openmp(
    proc: Path, tid: int, code: list[tuple[int, int]], maps: list[tuple[int, int, str, str]]
) -> bool | None:
    """Whether thread ``tid`` is GNU OpenMP's; ``None`` while it runs (look again).

    A thread that ended since it was listed is not (it has nothing left to strand); one
    whose state cannot be read is counted as OpenMP's.
    """
    try:
        fields = (proc / "task" / str(tid) / "syscall").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    if not fields or fields[0] == "running":
        return None
    try:
        sp, pc = int(fields[-2], 16), int(fields[-1], 16)
    except (IndexError, ValueError):
        return True

    def in_code(address: int) -> bool:
        return any(start <= address < end for start, end in code)

    if in_code(pc):
        return True
    top = next((end for start, end, _, _ in maps if start <= sp < end), None)
    if top is None:
        return True
    try:
        fd = os.open(proc / "mem", os.O_RDONLY)
        try:
            stack = os.pread(fd, min(_STACK_BYTES, top - sp), sp)
        finally:
            os.close(fd)
    except OSError:
        return True
    usable = len(stack) - len(stack) % _WORD
    return any(in_code(word) for word in memoryview(stack[:usable]).cast("P"))
