"""How many CPUs this process may use: the one answer every part of the package asks for.

The affinity mask (what ``taskset``, SLURM's ``--cpus-per-task`` and cgroup cpusets leave
this process) where the operating system has one, else the machine's count. Executor sizing
(:mod:`lensing_ssc.processing.runner`), codec threads (:mod:`lensing_ssc.core.io`) and the
pipeline's memory plan all use it, so they agree on what "all cores" means.
"""

from __future__ import annotations

import os

__all__ = ["usable_cpus"]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1.

    Example:
        >>> usable_cpus() >= 1
        True
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return max(1, len(getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - macOS and Windows
