"""The CacheManager's per-call checks and the values it derives from its settings.

The settings themselves are the config's ``cache`` section, resolved by
:func:`lensing_ssc.core.config.resolve_settings` (explicit argument, else ``config.cache``,
else the section's defaults), which also states their bounds: a bad one raises
``ConfigError`` naming the field. Here: the checks of per-call arguments (``ttl``, ``tags``,
``shrink``'s target), which raise ``CacheError``; byte limits from MiB; the arguments that
rebuild a manager in a worker; the settings part of ``get_status()``; the rejection warning.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.config import CacheSection

__all__ = [
    "byte_limit",
    "check_tags",
    "check_ttl",
    "gil_enabled",
    "rebuild_arguments",
    "rejection_message",
    "settings_status",
    "shrink_target",
]

MB = 1024 * 1024


def gil_enabled() -> bool:
    """Whether this interpreter runs with the GIL (always, before Python 3.13)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def check_ttl(ttl: Any) -> float:
    """``ttl`` as a float if it is a positive number of seconds, else ``CacheError``."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise CacheError(
            f"ttl must be a positive number of seconds, got {ttl!r}",
            value=ttl,
            hint="e.g. ttl=3600 for an hour, or leave ttl=None for no expiry",
        )
    return float(ttl)


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` as a tuple of distinct strings, else ``CacheError``."""
    if isinstance(tags, str):
        raise CacheError(
            f"tags must be a collection of strings, got the string {tags!r}",
            value=tags,
            hint=f"write tags=[{tags!r}]",
        )
    if not isinstance(tags, Iterable):
        raise CacheError(
            f"tags must be a collection of strings, got {tags!r} ({type(tags).__name__})",
            value=tags,
            hint="give a list of tag names, e.g. tags=['maps'], or tags=[] for none",
        )
    given = tuple(tags)
    for tag in given:
        if not isinstance(tag, str):
            raise CacheError(
                f"tags must be strings, got {tag!r} ({type(tag).__name__})",
                value=tag,
                hint="convert it, e.g. tags=[str(tag)]",
            )
    return tuple(dict.fromkeys(given))


def shrink_target(held: int, target_bytes: Any, fraction: Any) -> int:
    """The bytes ``shrink(target_bytes, fraction=...)`` lets a tier holding ``held`` keep."""
    if target_bytes is not None and fraction is not None:
        raise CacheError(
            "give shrink() target_bytes or fraction, not both",
            value=(target_bytes, fraction),
            hint="e.g. shrink(fraction=0.5) keeps half",
        )
    if target_bytes is None:
        keep = 0.5 if fraction is None else fraction
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 <= keep <= 1:
            raise CacheError(
                f"fraction must be between 0 and 1, got {fraction!r}",
                value=fraction,
                hint="e.g. shrink(fraction=0.5) keeps half of the memory tier",
            )
        return int(held * keep)
    if isinstance(target_bytes, bool) or not isinstance(target_bytes, int) or target_bytes < 0:
        raise CacheError(
            f"target_bytes must be a non-negative integer, got {target_bytes!r}",
            value=target_bytes,
            hint="e.g. shrink(256 * 1024**2) keeps at most 256 MiB",
        )
    return target_bytes


def rejection_message(
    tier: str, key: Any, value: Any, *, size: int | None, limit: int, kept: bool
) -> str:
    """The one warning a manager gives when a tier first rejects a value as too large."""
    amount = "" if size is None else f" ({size / MB:.1f} MiB)"
    fate = "it is kept on disk only" if kept else "it is not cached there"
    return (
        f"a {type(value).__name__}{amount} for key {key!r} exceeds the {tier} tier's limit "
        f"of {limit / MB:.1f} MiB; {fate} (further rejections are counted in get_stats() "
        "without warning)"
    )


def byte_limit(mib: float) -> int:
    """A tier's byte limit from its setting in MiB (``max_size_mb``, ``disk_max_size_mb``)."""
    return int(mib * MB)


def rebuild_arguments(settings: CacheSection) -> dict[str, Any]:
    """Constructor arguments that rebuild a manager with ``settings`` (in a worker process)."""
    return {"cache_dir": settings.dir, **settings.model_dump(exclude={"dir", "disk"})}


def settings_status(settings: CacheSection, codec: str) -> dict[str, Any]:
    """The settings in ``get_status()``: JSON-ready, with the codec ``compression`` chose."""
    data = settings.model_dump(mode="json", exclude={"dir", "disk"})
    directory = None if settings.dir is None else str(settings.dir)
    return {**data, "cache_dir": directory, "compression": codec}
