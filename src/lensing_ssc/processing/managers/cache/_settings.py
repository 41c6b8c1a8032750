"""The CacheManager's settings: explicit arguments over a config's ``cache`` section.

Resolves and validates the constructor's arguments into one frozen :class:`Settings`
(explicit argument, else ``config.cache``, else the section's defaults), and checks the
per-call arguments ``ttl`` and ``tags``. Limits and TTLs that are not positive, and a
negative free-space reserve, raise ``ConfigError`` naming the field; bad per-call values
raise ``CacheError``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lensing_ssc.core.base.exceptions import CacheError, ConfigError
from lensing_ssc.core.config import CacheSection
from lensing_ssc.core.io import resolve_codec

from ._policies import EvictionPolicy, check_policy
from ._values import MemoryMap

if TYPE_CHECKING:
    from lensing_ssc.core.config import ProcessingConfig

__all__ = [
    "FROM_CONFIG",
    "FromConfig",
    "Settings",
    "check_tags",
    "check_ttl",
    "gil_enabled",
    "rejection_message",
    "shrink_target",
]

MB = 1024 * 1024


class FromConfig(enum.Enum):
    """Marks an argument left to the config, where ``None`` is a meaningful value."""

    FROM_CONFIG = "from config"


FROM_CONFIG = FromConfig.FROM_CONFIG


def gil_enabled() -> bool:
    """Whether this interpreter runs with the GIL (always, before Python 3.13)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def _positive(name: str, value: Any, *, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ConfigError(
            f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}",
            value=value,
            field=f"cache.{name}",
            hint="e.g. max_size_mb=512, max_entries=1000, default_ttl=3600",
        )
    return value


def _check_reserve(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ConfigError(
            f"disk_min_free_mb must be a finite number of MiB (0 or more) or None, got {value!r}",
            value=value,
            field="cache.disk_min_free_mb",
            hint="e.g. disk_min_free_mb=2048 keeps 2 GiB free, 0 keeps nothing free, None "
            "keeps the smaller of 1 GiB and 10 % of the filesystem",
        )
    return float(value)


def _check_memory_map(value: Any) -> MemoryMap:
    if isinstance(value, bool):
        return value
    if value == "verify":
        return "verify"
    raise ConfigError(
        f"memory_map must be True, False or 'verify', got {value!r}",
        value=value,
        field="cache.memory_map",
        hint="memory_map='verify' maps large arrays and checks their digest",
    )


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
    checked = tuple(dict.fromkeys(tags))
    for tag in checked:
        if not isinstance(tag, str):
            raise CacheError(
                f"tags must be strings, got {tag!r} ({type(tag).__name__})",
                value=tag,
                hint="convert it, e.g. tags=[str(tag)]",
            )
    return checked


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


@dataclass(frozen=True)
class Settings:
    """Every setting of a CacheManager, resolved and validated."""

    max_size_mb: float
    max_entries: int
    eviction_policy: EvictionPolicy
    cache_dir: Path | None
    compression: str
    default_ttl: float | None
    disk_max_size_mb: float
    disk_min_free_mb: float | None
    memory_map: MemoryMap
    lease_ttl: float

    @classmethod
    def resolve(
        cls,
        *,
        max_size_mb: float | None,
        max_entries: int | None,
        eviction_policy: str | None,
        cache_dir: str | os.PathLike[str] | FromConfig | None,
        compression: str | bool | None,
        default_ttl: float | FromConfig | None,
        disk_max_size_mb: float | None,
        disk_min_free_mb: float | FromConfig | None,
        memory_map: bool | str,
        lease_ttl: float,
        config: ProcessingConfig | None,
    ) -> Settings:
        """Explicit arguments first, then ``config.cache``, then the section's defaults."""
        section = config.cache if config is not None else CacheSection()
        if cache_dir is FROM_CONFIG:
            cache_dir = config.cache_dir if config is not None else None
        if default_ttl is FROM_CONFIG:
            default_ttl = section.default_ttl
        if disk_min_free_mb is FROM_CONFIG:
            disk_min_free_mb = section.disk_min_free_mb
        size = section.max_size_mb if max_size_mb is None else max_size_mb
        entries = section.max_entries if max_entries is None else max_entries
        disk = section.disk_max_size_mb if disk_max_size_mb is None else disk_max_size_mb
        codec = section.compression if compression is None else compression
        return cls(
            max_size_mb=float(_positive("max_size_mb", size)),
            max_entries=_positive("max_entries", entries, integer=True),
            eviction_policy=check_policy(eviction_policy or section.eviction_policy),
            cache_dir=None if cache_dir is None else Path(cache_dir),
            compression=resolve_codec(codec).name,
            default_ttl=None
            if default_ttl is None
            else float(_positive("default_ttl", default_ttl)),
            disk_max_size_mb=float(_positive("disk_max_size_mb", disk)),
            disk_min_free_mb=_check_reserve(disk_min_free_mb),
            memory_map=_check_memory_map(memory_map),
            lease_ttl=float(_positive("lease_ttl", lease_ttl)),
        )

    @property
    def max_bytes(self) -> int:
        """The memory tier's byte limit."""
        return int(self.max_size_mb * MB)

    @property
    def disk_max_bytes(self) -> int:
        """The disk tier's byte limit."""
        return int(self.disk_max_size_mb * MB)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready ``dict`` (the directory as a string)."""
        data = dataclasses.asdict(self)
        data["cache_dir"] = None if self.cache_dir is None else str(self.cache_dir)
        return data

    def arguments(self) -> dict[str, Any]:
        """Constructor arguments that rebuild a manager with these settings."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
