"""What identifies an input of a run: a file's :data:`Stamp`, a recipe's plain field values.

A map's cache key and its line in the run's record (:mod:`._run_record`) are made of plain
values only, so that they are equal exactly when the patches are, in every process and on
every node: :func:`file_stamp` knows an input file by its size and, up to
``pipeline.hash_inputs_mb`` (:func:`hash_up_to`), a digest of its content; :func:`field_values`
lists a recipe's fields in order. The recipes that use them are in :mod:`._map_recipes` and
:mod:`._healpix_maps`; which files a run reads is planned in :mod:`._inputs`.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Recipe:
    ...     path: str
    ...     pixels: int
    >>> field_values(Recipe("a.npy", 64))
    ('a.npy', 64)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines._config import PipelineSection

__all__ = ["Stamp", "field_values", "file_stamp", "hash_up_to"]

Stamp = tuple[int, int | str]
"""What identifies an input file in cache keys and the run's record: its size, then a
digest of its content (``"blake2b:..."``) or, for a file too large to read for it, its
modification time in ns."""

_HASH_BLOCK = 1 << 20


def file_stamp(path: str, hash_up_to: int) -> Stamp:
    """The :data:`Stamp` of an input file: a changed file gets a new cache key.

    Files of at most ``hash_up_to`` bytes are read for a digest of their content (BLAKE2b
    from the standard library, so that every node of a cluster computes the same one,
    whichever extras it has); larger ones are known by size and modification time.

    Raises:
        ConfigError: the file cannot be read (naming it).
    """
    try:
        info = Path(path).stat()
        if info.st_size > hash_up_to:
            return info.st_size, info.st_mtime_ns
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as file:
            while block := file.read(_HASH_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(
            f"cannot read input file {path!r}: {exc.strerror or exc}",
            value=path,
            hint="check the path in the pipeline section of the config",
        ) from exc
    return info.st_size, f"blake2b:{digest.hexdigest()}"


def hash_up_to(section: PipelineSection) -> int:
    """Bytes up to which ``section``'s input files are known by their content."""
    return int(section.hash_inputs_mb * 2**20)


def field_values(recipe: Any) -> tuple[Any, ...]:
    """The values of a recipe dataclass's fields, in their order: the body of its cache key."""
    return tuple(getattr(recipe, name) for name in recipe.__dataclass_fields__)
