"""The ResourceManager: this job's memory, CPU and disk against its real limits.

Private parts: :mod:`._sampling` and :mod:`._usage` (samples of this process tree),
:mod:`._limits` (cgroup and rlimit limits), :mod:`._monitor` (the background thread),
:mod:`._alerts` and :mod:`._report` (callbacks, limit reports), :mod:`._replay` (a recorded
sampler for tests and benchmarks), :mod:`._settings`. The manager itself is in
:mod:`._manager`.
"""

from ._manager import (
    CgroupReader,
    LimitReport,
    MemoryLimit,
    ReplaySampler,
    ResourceManager,
    ResourceUsage,
    Sampler,
    Thresholds,
)

__all__ = [
    "CgroupReader",
    "LimitReport",
    "MemoryLimit",
    "ReplaySampler",
    "ResourceManager",
    "ResourceUsage",
    "Sampler",
    "Thresholds",
]
