"""Tests of the compression codecs: round trips, auto-raw, selection by name, errors."""

from __future__ import annotations

import gzip
import random
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import (
    CODEC_NAMES,
    _codecs,
    available_codecs,
    compress,
    decompress,
    get_codec,
    resolve_codec,
)

zstandard = pytest.importorskip("zstandard")
lz4_frame = pytest.importorskip("lz4.frame")

INSTALLED = available_codecs()
COMPRESSING = [name for name in INSTALLED if name != "none"]

# Bytes of every kind: random, runs of a repeated chunk, and mixtures of the two.
compressible = st.builds(
    lambda chunk, repeats: chunk * repeats,
    st.binary(min_size=1, max_size=64),
    st.integers(min_value=1, max_value=4000),
)
any_bytes = st.one_of(st.binary(max_size=4096), compressible, st.lists(compressible).map(b"".join))


def random_bytes(size: int, seed: int) -> bytes:
    """Incompressible bytes from a seeded generator."""
    return np.random.default_rng(seed).bytes(size)


def masked_field(n: int = 256) -> np.ndarray:
    """A smooth float32 map, zero outside a circular footprint, as survey maps are."""
    x = np.linspace(0, 4 * np.pi, n, dtype=np.float32)
    field = (np.sin(x)[:, None] * np.cos(x)[None, :]).astype(np.float32)
    radius = np.hypot(*np.meshgrid(x - x.mean(), x - x.mean()))
    field[radius > x.mean()] = 0.0
    return field


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", INSTALLED)
@given(data=any_bytes, level=st.sampled_from([None, "min", "max"]))
@settings(max_examples=60, deadline=None)
def test_every_codec_round_trips_any_bytes(name: str, data: bytes, level: str | None) -> None:
    """Each codec's decompress inverts its compress, at its default, lowest and highest levels."""
    codec = get_codec(name)
    low, high = _codecs._CODECS[name].levels
    chosen = {"min": max(low, -50), "max": min(high, 9), None: None}[level]
    assert codec.decompress(codec.compress(data, level=chosen)) == data


@pytest.mark.parametrize("name", INSTALLED)
@given(data=any_bytes)
@settings(max_examples=60, deadline=None)
def test_compress_round_trips_and_never_grows(name: str, data: bytes) -> None:
    """compress() returns the codec it used; decompress with that name gives the data back,
    and the payload is never larger than the input."""
    used, payload = compress(data, name)
    assert used in (name, "none")
    assert len(payload) <= len(data)
    assert decompress(used, payload) == data


@pytest.mark.parametrize("name", COMPRESSING)
@given(size=st.integers(min_value=0, max_value=3 << 20), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=12, deadline=None)
def test_incompressible_data_is_stored_raw(name: str, size: int, seed: int) -> None:
    """Random bytes, small or above the sampling threshold, come back raw under "none"."""
    data = random_bytes(size, seed)
    assert compress(data, name) == ("none", data)


@pytest.mark.parametrize("name", COMPRESSING)
def test_compressible_data_is_compressed(name: str) -> None:
    """A masked float32 map and repetitive bytes are compressed by the codec asked for."""
    for data in (masked_field().tobytes(), b"abcdefgh" * 200_000):
        used, payload = compress(data, name)
        assert used == name
        assert len(payload) < 0.9 * len(data)
        assert decompress(used, payload) == data


def test_incompressible_big_input_is_judged_on_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """For 8 MB of random bytes the codec sees only a small sample before giving up."""
    fed: list[int] = []
    codec = get_codec("gzip")
    real = codec.compress

    def spy(data: bytes, *, level: int | None = None) -> bytes:
        fed.append(len(memoryview(data)))
        return real(data, level=level)

    monkeypatch.setattr(codec, "compress", spy)
    data = random_bytes(8 << 20, 1)
    assert compress(data, "gzip") == ("none", data)
    assert sum(fed) <= 256 << 10


def test_compress_accepts_numpy_arrays_and_memoryviews() -> None:
    """Arrays and memoryviews compress to the same payload as their bytes."""
    field = masked_field()
    as_bytes = compress(field.tobytes(), "gzip")
    assert compress(field, "gzip") == as_bytes
    assert compress(memoryview(field), "gzip") == as_bytes
    assert compress(field.T, "gzip") == compress(field.T.tobytes(), "gzip")


def test_raw_payload_of_bytes_input_is_not_copied() -> None:
    """With "none" (asked for or chosen), bytes input comes back as the same object."""
    data = random_bytes(1000, 3)
    assert compress(data, "none")[1] is data
    assert compress(data, "zstd")[1] is data
    assert compress(b"", "zstd") == ("none", b"")


@pytest.mark.parametrize("name", COMPRESSING)
def test_payloads_are_standard_frames(name: str) -> None:
    """Payloads are plain gzip/zstd/lz4 frames, readable by the reference decoders."""
    data = b"convergence map " * 5000
    used, payload = compress(data, name)
    assert used == name
    reference = {
        "gzip": gzip.decompress,
        "zstd": lambda blob: zstandard.ZstdDecompressor().decompress(blob),
        "lz4": lz4_frame.decompress,
    }[name]
    assert reference(payload) == data


def test_gzip_output_depends_only_on_input() -> None:
    """gzip payloads carry no timestamp: the same input compresses to the same bytes."""
    data = b"kappa" * 10_000
    assert get_codec("gzip").compress(data) == get_codec("gzip").compress(data)
    assert get_codec("gzip").compress(data)[4:8] == b"\0\0\0\0"


def test_big_zstd_buffers_use_threads_and_round_trip() -> None:
    """A 40 MB buffer goes through the multi-threaded zstd path and decompresses exactly,
    with its size recorded in the frame."""
    rng = np.random.default_rng(5)
    data = np.repeat(rng.integers(0, 50, size=10 << 20, dtype=np.uint8), 4).tobytes()
    used, payload = compress(data, "zstd")
    assert used == "zstd"
    assert zstandard.frame_content_size(payload) == len(data)
    assert decompress("zstd", payload) == data


def test_zstd_frame_without_recorded_size_decompresses() -> None:
    """A zstd frame written by a streaming tool (no content size) is still readable."""
    data = b"streamed " * 10_000
    blob = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert zstandard.frame_content_size(blob) == -1
    assert decompress("zstd", blob) == data


@pytest.mark.parametrize("name", COMPRESSING)
def test_codecs_are_safe_to_share_between_threads(name: str) -> None:
    """Eight threads compressing and decompressing at once all get their own data back."""
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            data = bytes([rng.randrange(4)]) * rng.randrange(1, 50_000) + rng.randbytes(100)
            used, payload = compress(data, name, min_ratio=1.0)
            if decompress(used, payload) != data:
                errors.append(f"thread {seed} got wrong data back")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --- choosing a codec -----------------------------------------------------------------------


def test_codec_names_and_availability() -> None:
    """All four codecs are known; with the fast extra installed all four are available."""
    assert CODEC_NAMES == ("none", "gzip", "zstd", "lz4")
    assert available_codecs() == CODEC_NAMES
    assert [get_codec(name).name for name in CODEC_NAMES] == list(CODEC_NAMES)
    assert get_codec("ZSTD").name == "zstd"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("auto", "zstd"),
        ("AUTO", "zstd"),
        (True, "zstd"),
        (False, "none"),
        (None, "none"),
        ("none", "none"),
        ("gzip", "gzip"),
        ("lz4", "lz4"),
    ],
)
def test_resolve_codec_understands_config_values(spec: object, expected: str) -> None:
    """Names, "auto"/True (the best installed) and False/None/"none" all resolve."""
    assert resolve_codec(spec).name == expected  # type: ignore[arg-type]


def test_resolve_codec_passes_codecs_through() -> None:
    """A codec object resolves to itself."""
    codec = get_codec("lz4")
    assert resolve_codec(codec) is codec


def test_auto_falls_back_when_fast_codecs_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without zstandard "auto" picks lz4; without lz4 too, gzip."""
    monkeypatch.setattr(_codecs, "zstandard", None)
    assert resolve_codec("auto").name == "lz4"
    assert available_codecs() == ("none", "gzip", "lz4")
    monkeypatch.setattr(_codecs, "lz4_frame", None)
    assert resolve_codec(True).name == "gzip"
    assert available_codecs() == ("none", "gzip")


@pytest.mark.parametrize(("name", "package"), [("zstd", "zstandard"), ("lz4", "lz4")])
def test_missing_codec_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str
) -> None:
    """Asking for an uninstalled codec raises ModuleNotFoundError naming the package and extra."""
    monkeypatch.setattr(_codecs, {"zstd": "zstandard", "lz4": "lz4_frame"}[name], None)
    expected = (
        f"compression '{name}' needs the {package} package: pip install \"lensing-ssc[fast]\""
    )
    for call in (
        lambda: get_codec(name),
        lambda: compress(b"x", name),
        lambda: decompress(name, b""),
    ):
        with pytest.raises(ModuleNotFoundError) as info:
            call()
        assert str(info.value) == expected
        assert info.value.name == package


def test_unknown_codec_lists_the_valid_names() -> None:
    """An unknown name is a ConfigError carrying the name and listing every valid one."""
    with pytest.raises(ConfigError) as info:
        get_codec("brotli")
    assert str(info.value) == (
        "unknown compression 'brotli' "
        "(choose one of: none, gzip, zstd, lz4 (or 'auto' for the best installed))"
    )
    assert info.value.value == "brotli"
    assert info.value.field == "compression"
    with pytest.raises(ConfigError, match="unknown compression 'snappy'"):
        decompress("snappy", b"")


def test_non_name_spec_is_a_config_error() -> None:
    """A number where a codec name belongs is a ConfigError naming its type."""
    with pytest.raises(ConfigError) as info:
        resolve_codec(3)  # type: ignore[arg-type]
    assert str(info.value).startswith(
        "compression must be a codec name, 'auto', True/False or None, got int"
    )
    assert info.value.value == 3


@pytest.mark.parametrize(
    ("name", "level", "message"),
    [
        ("gzip", 10, "gzip compression level must be an integer from 0 to 9"),
        ("gzip", -1, "gzip compression level must be an integer from 0 to 9"),
        ("zstd", 23, "zstd compression level must be an integer from -131072 to 22"),
        ("lz4", 17, "lz4 compression level must be an integer from 0 to 16"),
        ("zstd", 2.5, "zstd compression level must be an integer from -131072 to 22"),
    ],
)
def test_level_out_of_range_is_a_config_error(name: str, level: object, message: str) -> None:
    """A level outside the codec's range is rejected before any work, naming range and value."""
    for data in (b"", b"abc" * 1000):
        with pytest.raises(ConfigError) as info:
            compress(data, name, level=level)  # type: ignore[arg-type]
        assert str(info.value).startswith(message)
        assert info.value.value == level


@pytest.mark.parametrize("ratio", [0, -0.5, 1.5, "0.9", True])
def test_bad_min_ratio_is_a_config_error(ratio: object) -> None:
    """min_ratio must be a number in (0, 1]."""
    with pytest.raises(ConfigError, match=r"min_ratio must be"):
        compress(b"abc", "gzip", min_ratio=ratio)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", COMPRESSING)
def test_corrupt_payload_is_a_value_error(name: str) -> None:
    """Garbage or a truncated frame raises ValueError saying which codec failed, not a
    library-specific exception."""
    _, payload = compress(b"patch statistics " * 1000, name)
    for bad in (b"not compressed at all", payload[: len(payload) // 2]):
        with pytest.raises(ValueError, match=rf"cannot decompress {len(bad)} bytes as {name}"):
            decompress(name, bad)
