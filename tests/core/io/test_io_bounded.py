"""Bounded decompression: a small payload that inflates far beyond its declared size is
refused before the memory is spent, whatever the codec and whatever its frame declares."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.io import available_codecs, compress, decompress, get_codec

zstandard = pytest.importorskip("zstandard")
lz4_frame = pytest.importorskip("lz4.frame")

BOMB_BYTES = 64 << 20  # what each bomb inflates to
PEAK_LIMIT = 8 << 20  # what bounded decompression of it may allocate at most

# Each codec's bombs: the standard frame, and frames that declare no size (streaming tools).
BOMBS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "gzip, two members": lambda data: gzip.compress(data[:16]) + gzip.compress(data),
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "zstd, no size": lambda data: zstandard.ZstdCompressor(write_content_size=False).compress(data),
    "lz4": lambda data: lz4_frame.compress(data, store_size=True),
    "lz4, no size": lambda data: lz4_frame.compress(data, store_size=False),
}


def peak_bytes(call: Callable[[], object]) -> int:
    """Bytes of Python memory allocated at the peak of ``call`` (raised errors ignored)."""
    tracemalloc.start()
    try:
        call()
    except ValueError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def zeros() -> bytes:
    return bytes(BOMB_BYTES)


@pytest.mark.parametrize("kind", list(BOMBS))
def test_a_bomb_is_refused_at_the_declared_size_without_inflating_it(
    kind: str, zeros: bytes
) -> None:
    """decompress(max_size=16) of a payload inflating to 64 MiB raises ValueError saying so,
    and allocates well under the inflated size."""
    name = kind.split(",")[0]
    bomb = BOMBS[kind](zeros)
    assert len(bomb) < BOMB_BYTES // 100
    with pytest.raises(ValueError, match=rf"as {name}: .*more than 16 bytes"):
        decompress(name, bomb, max_size=16)
    assert peak_bytes(lambda: decompress(name, bomb, max_size=16)) < PEAK_LIMIT
    assert peak_bytes(lambda: get_codec(name).decompress(bomb, max_size=1 << 20)) < PEAK_LIMIT


@pytest.mark.parametrize("name", [name for name in available_codecs() if name != "none"])
@given(data=st.binary(max_size=3000), slack=st.integers(min_value=0, max_value=3))
@settings(max_examples=40, deadline=None)
def test_a_bound_at_or_above_the_size_changes_nothing(name: str, data: bytes, slack: int) -> None:
    """With max_size at least the true size, bounded decompression returns the data exactly."""
    used, payload = compress(data * 4, name, min_ratio=1.0)
    assert decompress(used, payload, max_size=len(data) * 4 + slack) == data * 4


@pytest.mark.parametrize("name", ["gzip", "zstd", "lz4"])
def test_one_byte_over_the_bound_is_refused(name: str) -> None:
    """max_size one byte short of the true size is refused: the bound is exact, not rounded."""
    payload = get_codec(name).compress(b"kappa" * 1000)
    with pytest.raises(ValueError, match="more than 4999 bytes"):
        decompress(name, payload, max_size=4999)
    assert decompress(name, payload, max_size=5000) == b"kappa" * 1000


@pytest.mark.parametrize("name", ["gzip", "zstd", "lz4"])
def test_bounded_decompression_still_reports_corrupt_data(name: str) -> None:
    """Garbage and truncated frames stay a ValueError naming the codec under a bound too."""
    payload = get_codec(name).compress(b"patch statistics " * 1000)
    for bad in (b"not compressed at all", payload[: len(payload) // 2]):
        with pytest.raises(ValueError, match=rf"cannot decompress {len(bad)} bytes as {name}"):
            decompress(name, bad, max_size=1 << 20)


def test_none_codec_respects_the_bound() -> None:
    """The ``none`` codec refuses data longer than max_size like the others."""
    assert decompress("none", b"abc", max_size=3) == b"abc"
    with pytest.raises(ValueError, match="more than 2 bytes"):
        decompress("none", b"abc", max_size=2)


@pytest.mark.parametrize("bound", [-1, 1.5, True])
def test_a_bad_bound_is_a_value_error(bound: object) -> None:
    """max_size must be a non-negative integer."""
    with pytest.raises(ValueError, match="max_size must be a non-negative integer"):
        decompress("gzip", gzip.compress(b"x"), max_size=bound)  # type: ignore[arg-type]
