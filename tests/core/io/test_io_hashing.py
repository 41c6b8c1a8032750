"""Tests of self-describing digests: determinism, verification across algorithms, arrays."""

from __future__ import annotations

import hashlib
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import (
    HASH_ALGORITHMS,
    Hasher,
    _hashing,
    default_hash_algorithm,
    hash_array,
    hash_bytes,
    parse_digest,
    verify_digest,
)

xxhash = pytest.importorskip("xxhash")

algorithms = st.sampled_from(HASH_ALGORITHMS)


@pytest.fixture
def without_xxhash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as if the fast extra were not installed."""
    monkeypatch.setattr(_hashing, "xxhash", None)


# --- digests --------------------------------------------------------------------------------


def test_default_algorithm_is_xxh3_when_installed() -> None:
    """With xxhash installed the default is xxh3_128, and digests say so."""
    assert default_hash_algorithm() == "xxh3_128"
    assert re.fullmatch(r"xxh3_128:[0-9a-f]{32}", hash_bytes(b"abc"))


def test_default_algorithm_falls_back_to_blake2b(without_xxhash: None) -> None:
    """Without xxhash the default is blake2b and digests say so."""
    assert default_hash_algorithm() == "blake2b"
    assert re.fullmatch(r"blake2b:[0-9a-f]{32}", hash_bytes(b"abc"))
    assert Hasher().algorithm == "blake2b"


def test_digests_match_the_reference_implementations() -> None:
    """The hex part is plain xxh3-128 / 16-byte BLAKE2b, so other tools can check it."""
    data = b"weak lensing"
    assert hash_bytes(data, algorithm="xxh3_128") == f"xxh3_128:{xxhash.xxh3_128_hexdigest(data)}"
    expected = hashlib.blake2b(data, digest_size=16).hexdigest()
    assert hash_bytes(data, algorithm="blake2b") == f"blake2b:{expected}"


@given(data=st.binary(max_size=10_000), algorithm=algorithms)
@settings(max_examples=100, deadline=None)
def test_hashing_is_deterministic_and_verifies(data: bytes, algorithm: str) -> None:
    """The same bytes give the same digest, in any buffer form, and that digest verifies."""
    digest = hash_bytes(data, algorithm=algorithm)
    assert digest.startswith(f"{algorithm}:")
    assert hash_bytes(bytearray(data), algorithm=algorithm) == digest
    assert hash_bytes(memoryview(data), algorithm=algorithm) == digest
    assert verify_digest(data, digest)


@given(data=st.binary(min_size=1, max_size=2000), position=st.integers(0), algorithm=algorithms)
@settings(max_examples=100, deadline=None)
def test_any_changed_bit_fails_verification(data: bytes, position: int, algorithm: str) -> None:
    """Flipping one bit anywhere, or dropping the last byte, makes verification fail."""
    digest = hash_bytes(data, algorithm=algorithm)
    flipped = bytearray(data)
    flipped[position % len(data)] ^= 1 << (position % 8)
    assert not verify_digest(bytes(flipped), digest)
    assert not verify_digest(data[:-1], digest)


@given(
    chunks=st.lists(st.binary(max_size=500), max_size=20),
    algorithm=algorithms,
)
@settings(max_examples=100, deadline=None)
def test_incremental_hasher_equals_one_shot(chunks: list[bytes], algorithm: str) -> None:
    """Feeding chunks one by one gives the digest of their concatenation."""
    hasher = Hasher(algorithm)
    for chunk in chunks:
        hasher.update(chunk)
    assert hasher.hexdigest() == hash_bytes(b"".join(chunks), algorithm=algorithm)


def test_hasher_copy_is_independent() -> None:
    """A copied hasher continues separately from the original."""
    hasher = Hasher("blake2b")
    hasher.update(b"common ")
    branch = hasher.copy()
    branch.update(b"branch")
    hasher.update(b"trunk")
    assert branch.hexdigest() == hash_bytes(b"common branch", algorithm="blake2b")
    assert hasher.hexdigest() == hash_bytes(b"common trunk", algorithm="blake2b")


def test_blake2b_digest_verifies_without_xxhash(without_xxhash: None) -> None:
    """A blake2b digest, of 16 or of hashlib's default 64 bytes, verifies without the extra."""
    data = b"shear catalogue"
    assert verify_digest(data, f"blake2b:{hashlib.blake2b(data, digest_size=16).hexdigest()}")
    assert verify_digest(data, f"blake2b:{hashlib.blake2b(data).hexdigest()}")
    assert not verify_digest(b"other", f"blake2b:{hashlib.blake2b(data).hexdigest()}")


def test_xxh3_digest_without_xxhash_names_the_extra(without_xxhash: None) -> None:
    """Checking an xxh3 digest without xxhash says which package and extra to install."""
    digest = "xxh3_128:" + "0" * 32
    with pytest.raises(ModuleNotFoundError) as info:
        verify_digest(b"data", digest)
    assert str(info.value) == (
        f"verifying the xxh3_128 digest {digest!r} needs the xxhash package: "
        'pip install "lensing-ssc[fast]"'
    )
    assert info.value.name == "xxhash"
    with pytest.raises(ModuleNotFoundError, match=r"lensing-ssc\[fast\]"):
        hash_bytes(b"data", algorithm="xxh3_128")


def test_unknown_algorithm_is_a_config_error() -> None:
    """Asking for an unknown algorithm is a ConfigError listing the valid ones."""
    with pytest.raises(ConfigError) as info:
        hash_bytes(b"x", algorithm="md5")
    assert str(info.value) == (
        "unknown hash algorithm 'md5' (choose one of: xxh3_128, blake2b (or None for the default))"
    )
    assert info.value.value == "md5"


@pytest.mark.parametrize(
    "digest",
    [
        "0123456789abcdef0123456789abcdef",
        "md5:0123456789abcdef0123456789abcdef",
        "xxh3_128:0123",
        "xxh3_128:0123456789abcdef0123456789abcdeg",
        "blake2b:ABCD",
        "blake2b:abc",
        "blake2b:",
        "",
        None,
    ],
)
def test_malformed_digest_is_a_value_error(digest: object) -> None:
    """A digest string this module could not have made is rejected with its text quoted."""
    expected = f"malformed digest {digest!r}: expected '<algorithm>:<hex>'"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):
        verify_digest(b"x", digest)  # type: ignore[arg-type]


def test_parse_digest_splits_algorithm_and_hex() -> None:
    """parse_digest returns the algorithm name and the hex digits."""
    digest = hash_bytes(b"x", algorithm="blake2b")
    assert parse_digest(digest) == ("blake2b", digest.split(":")[1])


def test_str_is_not_hashed_silently() -> None:
    """Text must be encoded first: hashing a str is a TypeError saying so."""
    with pytest.raises(TypeError, match="got str; encode it first"):
        hash_bytes("text")  # type: ignore[arg-type]


# --- arrays ---------------------------------------------------------------------------------


def test_array_hash_ignores_memory_layout() -> None:
    """C-ordered, Fortran-ordered and strided arrays with equal values hash equal."""
    base = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    digest = hash_array(base)
    assert hash_array(np.asfortranarray(base)) == digest
    assert hash_array(base.T.copy().T) == digest
    strided = np.arange(240, dtype=np.float64).reshape(6, 8, 5)[::2, ::2]
    assert hash_array(strided) == hash_array(strided.copy())


def test_array_hash_covers_dtype_shape_and_values() -> None:
    """Same bytes with another dtype, byte order or shape, or one changed value, hash apart."""
    arr = np.arange(12, dtype="<f8").reshape(3, 4)
    digests = {
        hash_array(arr),
        hash_array(arr.view("<i8")),
        hash_array(arr.astype(">f8")),
        hash_array(arr.reshape(4, 3)),
        hash_array(arr.reshape(-1)),
        hash_array(np.where(arr == 5, 5.5, arr)),
    }
    assert len(digests) == 6


def test_array_hash_of_edge_shapes() -> None:
    """0-d, empty and structured arrays and numpy scalars hash; shapes of empties differ."""
    assert hash_array(np.float64(3.0)) == hash_array(np.array(3.0))
    assert hash_array(np.zeros((0, 3))) != hash_array(np.zeros((3, 0)))
    records = np.zeros(4, dtype=[("kappa", "f4"), ("npix", "i8")])
    assert hash_array(records) == hash_array(records.copy())
    assert hash_array(records) != hash_array(np.zeros(4, dtype=[("kappa", "f4"), ("n", "i8")]))
    stamps = np.array(["2024-01-01"], dtype="M8[D]")
    assert hash_array(stamps) != hash_array(stamps.view("i8"))


def test_array_hash_uses_the_chosen_algorithm() -> None:
    """hash_array digests name their algorithm and fall back with it."""
    arr = np.arange(10)
    assert hash_array(arr, algorithm="blake2b").startswith("blake2b:")
    assert hash_array(arr).startswith("xxh3_128:")


def test_large_strided_array_is_hashed_without_a_full_copy() -> None:
    """Hashing a 32 MB strided view copies it in blocks, never whole, and equals the copy's hash."""
    base = np.arange(8 << 20, dtype=np.float64).reshape(2, -1)  # 2 rows of 32 MB
    view = base[:, ::2]
    tracemalloc.start()
    try:
        digest = hash_array(view)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < view.nbytes / 2
    assert digest == hash_array(np.ascontiguousarray(view))
    tall = np.arange(6 << 20, dtype=np.float32).reshape(-1, 6)[:, ::2]  # many short rows
    assert hash_array(tall) == hash_array(tall.copy())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([1, "a"], dtype=object), "cannot hash an array of dtype object by content"),
        ([1.0, 2.0], "hash_array needs a numpy array, got list"),
    ],
)
def test_arrays_that_cannot_be_hashed_by_content(value: object, message: str) -> None:
    """Object arrays (pointers) and non-arrays are TypeErrors saying what to do."""
    with pytest.raises(TypeError) as info:
        hash_array(value)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
