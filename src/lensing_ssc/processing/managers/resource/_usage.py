"""Value objects of the ResourceManager and the arithmetic of limits and warnings.

Covers :class:`ResourceUsage` (one sample), :class:`LimitReport` (what a sample means
against the limits), :class:`Thresholds` (the limits themselves), the evaluation of a
sample against them and the fold of samples into per-figure peaks. It does not measure
anything (see :mod:`.sampling`) nor find the limits the system imposes (see :mod:`.limits`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LimitReport", "ResourceUsage", "Thresholds", "evaluate", "fold_peak"]

# Figures where a lower value is the worse one; the peak keeps their minimum.
_LOWER_IS_WORSE = frozenset({"system_available_mb", "disk_free_gb"})


@dataclass(frozen=True)
class ResourceUsage:
    """One sample of what the job uses. A figure that could not be read is ``None``.

    Memory is counted in MiB (2**20 bytes) and disk in GiB (2**30 bytes).

    Attributes:
        timestamp: Wall-clock time of the sample (``time.time()``).
        memory_mb: Resident memory of this job: this process and all its descendants.
        memory_limit_mb: The effective memory limit when the sample was taken, if any.
        process_count: Number of processes counted in ``memory_mb``.
        cpu_percent: CPU used by the job since the previous sample, in percent of one
            core (200 means two busy cores).
        system_memory_percent: Memory used on the whole machine, in percent.
        system_available_mb: Memory still available on the machine.
        swap_percent: Swap used on the machine, in percent.
        disk_percent: Space used on the run directory's filesystem, in percent.
        disk_free_gb: Free space on that filesystem.
    """

    timestamp: float
    memory_mb: float | None = None
    memory_limit_mb: float | None = None
    process_count: int | None = None
    cpu_percent: float | None = None
    system_memory_percent: float | None = None
    system_available_mb: float | None = None
    swap_percent: float | None = None
    disk_percent: float | None = None
    disk_free_gb: float | None = None

    @property
    def memory_fraction(self) -> float | None:
        """``memory_mb`` as a fraction of ``memory_limit_mb`` (``None`` without a limit)."""
        if self.memory_mb is None or not self.memory_limit_mb:
            return None
        return self.memory_mb / self.memory_limit_mb

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of every figure, ``memory_fraction`` included."""
        view = dataclasses.asdict(self)
        view["memory_fraction"] = self.memory_fraction
        return view


@dataclass(frozen=True)
class Thresholds:
    """The limits a sample is checked against; ``None`` disables one.

    ``memory_limit_mb`` is the effective limit (the lowest of the user's and the system's)
    and ``memory_source`` where it came from.
    """

    memory_limit_mb: float | None = None
    memory_source: str | None = None
    cpu_percent: float | None = None
    disk_percent: float | None = None
    disk_min_free_gb: float | None = None
    swap_percent: float | None = None
    warning_fraction: float = 0.8

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the thresholds."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LimitReport:
    """A sample judged against the limits.

    Attributes:
        usage: The sample judged.
        warnings: Resource name → message, for figures past the warning fraction of their
            limit, those past the limit included (a spike that jumps over the limit within
            one sample still warns).
        exceeded: Resource name → message, for figures past their limit.

    Resource names are ``"memory"``, ``"cpu"``, ``"disk"``, ``"disk_free"`` and ``"swap"``.

    A report is true when a limit is exceeded, so ``if rm.check_limits(raise_on_exceed=False):``
    reads "if a limit is exceeded"; warnings alone leave it false. ``ok`` is its negation.
    """

    usage: ResourceUsage
    warnings: dict[str, str] = field(default_factory=dict)
    exceeded: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` when no limit is exceeded (warnings allowed)."""
        return not self.exceeded

    def __bool__(self) -> bool:
        """``True`` when a limit is exceeded; the opposite of :attr:`ok`."""
        return bool(self.exceeded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: the usage, warnings and exceeded limits."""
        return {
            "usage": self.usage.to_dict(),
            "warnings": dict(self.warnings),
            "exceeded": dict(self.exceeded),
        }


def evaluate(usage: ResourceUsage, limits: Thresholds) -> LimitReport:
    """Judge ``usage`` against ``limits``: which figures warn and which exceed."""
    warnings: dict[str, str] = {}
    exceeded: dict[str, str] = {}
    fraction = limits.warning_fraction

    def upper(name: str, value: float | None, limit: float | None, text: str) -> None:
        if value is None or limit is None:
            return
        if value > limit:
            exceeded[name] = warnings[name] = text + ": limit exceeded"
        elif value >= fraction * limit:
            warnings[name] = text + f": warning at {fraction:.0%}"

    memory_source = f" ({limits.memory_source})" if limits.memory_source else ""
    if usage.memory_mb is not None and limits.memory_limit_mb is not None:
        upper(
            "memory",
            usage.memory_mb,
            limits.memory_limit_mb,
            f"job memory {usage.memory_mb:.1f} MB is "
            f"{usage.memory_mb / limits.memory_limit_mb:.0%} of the "
            f"{limits.memory_limit_mb:.1f} MB limit{memory_source}",
        )
    if usage.cpu_percent is not None:
        upper(
            "cpu",
            usage.cpu_percent,
            limits.cpu_percent,
            f"job CPU {usage.cpu_percent:.0f}% against the {limits.cpu_percent}% limit",
        )
    if usage.disk_percent is not None:
        upper(
            "disk",
            usage.disk_percent,
            limits.disk_percent,
            f"disk {usage.disk_percent:.1f}% used against the {limits.disk_percent}% limit",
        )
    if usage.swap_percent is not None:
        upper(
            "swap",
            usage.swap_percent,
            limits.swap_percent,
            f"swap {usage.swap_percent:.1f}% used against the {limits.swap_percent}% limit",
        )
    floor = limits.disk_min_free_gb
    free = usage.disk_free_gb
    if floor is not None and free is not None:
        text = f"disk has {free:.2f} GB free, the minimum is {floor} GB"
        if free < floor:
            exceeded["disk_free"] = warnings["disk_free"] = text + ": limit exceeded"
        elif free * fraction <= floor:
            warnings["disk_free"] = text + f": warning at {fraction:.0%}"
    return LimitReport(usage, warnings, exceeded)


def fold_peak(peak: ResourceUsage | None, sample: ResourceUsage) -> ResourceUsage:
    """The worst value of each figure over ``peak`` and ``sample``.

    Worst is the maximum, except for free or available amounts, where it is the minimum.
    The timestamp is the latest sample's.
    """
    if peak is None:
        return sample
    values: dict[str, Any] = {"timestamp": sample.timestamp}
    for name in _FIGURES:
        old, new = getattr(peak, name), getattr(sample, name)
        if old is None or new is None:
            values[name] = new if old is None else old
        elif name in _LOWER_IS_WORSE:
            values[name] = min(old, new)
        else:
            values[name] = max(old, new)
    return ResourceUsage(**values)


_FIGURES = tuple(f.name for f in dataclasses.fields(ResourceUsage) if f.name != "timestamp")
