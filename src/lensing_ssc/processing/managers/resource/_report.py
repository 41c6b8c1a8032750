"""The human-readable usage report of a ResourceManager, rendered from its status dict.

Only formatting: the figures come from ``ResourceManager.get_status()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_report"]

_ROWS = (
    ("job memory MB", "memory_mb"),
    ("memory frac.", "memory_fraction"),
    ("processes", "process_count"),
    ("job CPU %", "cpu_percent"),
    ("system mem %", "system_memory_percent"),
    ("swap %", "swap_percent"),
    ("disk used %", "disk_percent"),
    ("disk free GB", "disk_free_gb"),
)


def render_report(status: dict[str, Any]) -> str:
    """Lines of the memory limit, each figure now and at its peak, warnings and breaches.

    Example output::

        Resource usage
          memory limit : 8000.0 MB (user)
          job memory MB:      412.3   peak      598.0
          ...
    """
    limit = status["memory_limit"]
    lines = [
        "Resource usage",
        f"  memory limit : {limit['limit_mb']:.1f} MB ({limit['source']})"
        if limit
        else "  memory limit : none found",
    ]
    current, peaks = status["current"] or {}, status["peak"] or {}
    for label, key in _ROWS:
        now, peak = current.get(key), peaks.get(key)
        lines.append(f"  {label:<13}: {_fmt(now):>10}   peak {_fmt(peak):>10}")
    lines.append(f"  samples      : {status['samples']} (every {status['monitor_interval']:g} s)")
    lines.extend(f"  WARNING  {text}" for text in status["warnings"].values())
    lines.extend(f"  EXCEEDED {text}" for text in status["exceeded"].values())
    if status["stop_reason"]:
        lines.append(f"  stop requested: {status['stop_reason']}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}"
