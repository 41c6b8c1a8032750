"""The cache's API at its edges: a bad input is a ``CacheError`` or ``ConfigError`` saying why.

An adversarial review (#22, point 19) found raw ``ValueError``/``RuntimeError`` from pickling,
``TypeError`` from ``invalidate_by_tags(None)``, and ``/proc/self`` reported as a full disk.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.core.base.exceptions import CacheError, ConfigError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import CacheManager


class _Unpicklable:
    """A value whose pickling raises ``error``, as objects holding live resources do."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error", [ValueError("no state"), RuntimeError("not while running"), KeyError("handle")]
)
def test_a_value_whose_pickling_raises_is_a_cache_error(
    tmp_path: Path, error: BaseException
) -> None:
    """Whatever pickling raises becomes a CacheError naming the key and the value's type."""
    with CacheManager(cache_dir=tmp_path, disk_min_free_mb=0) as cache:
        with pytest.raises(CacheError, match="cannot store the value of key 'k'") as info:
            cache.put("k", _Unpicklable(error))
        assert "_Unpicklable cannot be pickled" in str(info.value)
        assert info.value.__cause__ is error
        cache.put("k", 1)  # the cache works on
        assert cache.get("k") == 1


def test_a_memory_only_cache_keeps_a_value_it_could_not_pickle() -> None:
    """Without a disk tier nothing is pickled: the value is held as it is."""
    value = _Unpicklable(RuntimeError("not while running"))
    with CacheManager() as cache:
        cache.put("k", value)
        assert cache.get("k") is value


@pytest.mark.parametrize("field", ["max_size_mb", "disk_max_size_mb", "disk_min_free_mb"])
def test_an_infinite_size_is_a_config_error_naming_the_field(field: str) -> None:
    """``inf`` for a size is refused as a ConfigError naming the setting, not an OverflowError."""
    with pytest.raises(ConfigError, match=rf"cache\.{field}") as info:
        CacheManager(**{field: math.inf})
    assert info.value.value == math.inf


def test_an_infinite_size_from_the_environment_is_a_config_error() -> None:
    """``LENSING_SSC_CACHE__MAX_SIZE_MB=inf`` is refused the same way."""
    with pytest.raises(ConfigError, match=r"cache\.max_size_mb"):
        ProcessingConfig.from_env({"LENSING_SSC_CACHE__MAX_SIZE_MB": "inf"})


@pytest.mark.parametrize("tags", [None, 5, object()])
def test_tags_that_are_not_a_collection_are_a_cache_error(tags: Any) -> None:
    """``invalidate_by_tags(None)`` (or a number) says tags must be a collection of strings."""
    with CacheManager() as cache:
        with pytest.raises(CacheError, match="tags must be a collection of strings") as info:
            cache.invalidate_by_tags(tags)
        assert info.value.value is tags
        with pytest.raises(CacheError, match="tags must be a collection of strings"):
            cache.put("k", 1, tags=tags)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("where", ["/proc/self", "/proc/self/cache"])
def test_a_directory_that_cannot_hold_a_cache_is_not_called_full(where: str) -> None:
    """``cache_dir="/proc/self"`` is not usable; it is not reported as a full disk."""
    with pytest.raises(CacheError, match="is not usable") as info:
        CacheManager(cache_dir=where)
    assert "full" not in str(info.value)
    assert info.value.value == where


def test_a_compressed_array_that_inflates_past_its_declared_size_is_corrupt() -> None:
    """A crafted value file (a gzip bomb behind a small array header) is refused, not inflated."""
    import gzip
    import tracemalloc

    import numpy as np

    from lensing_ssc.processing.managers.cache._values import (
        KIND_ARRAY,
        CorruptEntry,
        decode_value,
        encode_value,
    )

    small = encode_value(np.zeros(4, np.float32), key="k", codec="none")  # 16 bytes declared
    assert small.kind == KIND_ARRAY
    bomb = gzip.compress(bytes(64 * 2**20))  # 64 MiB of zeros in ~64 KB
    tracemalloc.start()
    try:
        with pytest.raises(CorruptEntry):
            decode_value(KIND_ARRAY, "gzip", small.meta, bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # stopped near the declared size, never inflated whole
