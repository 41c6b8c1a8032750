"""Checksums and content addresses that name the algorithm that made them.

Every digest is a string ``"<algorithm>:<hex>"``: ``"xxh3_128:…"`` (32 hex digits, from
``xxhash``, about 20x faster than blake2b) when the ``fast`` extra is installed, else
``"blake2b:…"`` (hashlib's BLAKE2b with a 16-byte digest). A file records the digest string
it was written with, so :func:`verify_digest` checks it with the right algorithm whichever
is the default today: blake2b digests verify everywhere, xxh3 digests wherever ``xxhash``
is installed.

These are integrity and identity checks against accidents (torn files, bit rot, equal
inputs), not a defence against someone forging data. Compression is in :mod:`._codecs`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import ConfigError

from ._buffers import byte_view

try:
    import xxhash
except ImportError:  # pragma: no cover - the fast extra is installed in development
    xxhash = None  # type: ignore[assignment]

__all__ = [
    "HASH_ALGORITHMS",
    "Hasher",
    "default_hash_algorithm",
    "hash_array",
    "hash_bytes",
    "parse_digest",
    "verify_digest",
]

HASH_ALGORITHMS: tuple[str, ...] = ("xxh3_128", "blake2b")
"""Algorithms a digest may name, fastest first."""

_BLAKE2B_BYTES = 16
_FAST_EXTRA = 'pip install "lensing-ssc[fast]"'
_HEX = re.compile(r"[0-9a-f]+")
_ARRAY_BLOCK = 8 << 20  # bytes of a strided array copied to C order at a time


def default_hash_algorithm() -> str:
    """``"xxh3_128"`` when ``xxhash`` is installed, else ``"blake2b"``."""
    return "xxh3_128" if xxhash is not None else "blake2b"


def _checked_algorithm(algorithm: str | None) -> str:
    if algorithm is None:
        return default_hash_algorithm()
    if algorithm not in HASH_ALGORITHMS:
        raise ConfigError(
            f"unknown hash algorithm {algorithm!r}",
            value=algorithm,
            field="algorithm",
            hint=f"choose one of: {', '.join(HASH_ALGORITHMS)} (or None for the default)",
        )
    if algorithm == "xxh3_128" and xxhash is None:
        raise ModuleNotFoundError(
            f"hash algorithm 'xxh3_128' needs the xxhash package: {_FAST_EXTRA}", name="xxhash"
        )
    return algorithm


def _new_state(algorithm: str, digest_bytes: int = _BLAKE2B_BYTES) -> Any:
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128()
    return hashlib.blake2b(digest_size=digest_bytes)


class Hasher:
    """Incremental hashing whose :meth:`hexdigest` names its algorithm.

    Args:
        algorithm: One of :data:`HASH_ALGORITHMS`; ``None`` for :func:`default_hash_algorithm`.

    Example:
        >>> h = Hasher("blake2b")
        >>> h.update(b"header")
        >>> h.update(memoryview(b"payload"))
        >>> h.hexdigest() == hash_bytes(b"headerpayload", algorithm="blake2b")
        True
    """

    __slots__ = ("_algorithm", "_state")

    def __init__(self, algorithm: str | None = None) -> None:
        self._algorithm = _checked_algorithm(algorithm)
        self._state = _new_state(self._algorithm)

    @property
    def algorithm(self) -> str:
        """The algorithm name written before the colon of :meth:`hexdigest`."""
        return self._algorithm

    def update(self, data: Any) -> None:
        """Feed more bytes (any bytes-like object or numpy array, as its raw bytes)."""
        self._state.update(byte_view(data))

    def hexdigest(self) -> str:
        """Return ``"<algorithm>:<hex>"`` for everything fed so far; feeding may continue."""
        return f"{self._algorithm}:{self._state.hexdigest()}"

    def copy(self) -> Hasher:
        """Return an independent hasher with the same state."""
        clone = Hasher.__new__(Hasher)
        clone._algorithm = self._algorithm
        clone._state = self._state.copy()
        return clone

    def __repr__(self) -> str:
        return f"Hasher({self._algorithm!r})"


def hash_bytes(data: Any, *, algorithm: str | None = None) -> str:
    """Hash a bytes-like object; returns ``"<algorithm>:<hex>"``.

    Example:
        >>> hash_bytes(b"", algorithm="blake2b")
        'blake2b:cae66941d9efbd404e4d88758ea67670'
    """
    algorithm = _checked_algorithm(algorithm)
    view = byte_view(data)
    if algorithm == "xxh3_128":
        return f"xxh3_128:{xxhash.xxh3_128_hexdigest(view)}"
    return f"blake2b:{hashlib.blake2b(view, digest_size=_BLAKE2B_BYTES).hexdigest()}"


def parse_digest(digest: str) -> tuple[str, str]:
    """Split ``"<algorithm>:<hex>"`` into its parts, checking both.

    Raises:
        ValueError: ``digest`` is not a digest string this module could have made.
    """
    algorithm, sep, hexdigest = digest.partition(":") if isinstance(digest, str) else ("", "", "")
    expected = "32" if algorithm == "xxh3_128" else "2 to 128"
    length_ok = (
        len(hexdigest) == 32
        if algorithm == "xxh3_128"
        else 2 <= len(hexdigest) <= 128 and len(hexdigest) % 2 == 0
    )
    if (
        not sep
        or algorithm not in HASH_ALGORITHMS
        or not _HEX.fullmatch(hexdigest)
        or not length_ok
    ):
        raise ValueError(
            f"malformed digest {digest!r}: expected '<algorithm>:<hex>' with algorithm one of "
            f"{', '.join(HASH_ALGORITHMS)} and {expected} lowercase hex digits"
        )
    return algorithm, hexdigest


def verify_digest(data: Any, digest: str) -> bool:
    """Tell whether ``data`` hashes to ``digest``, using the algorithm the digest names.

    Raises:
        ValueError: ``digest`` is malformed.
        ModuleNotFoundError: ``digest`` is an xxh3 digest and ``xxhash`` is not installed.

    Example:
        >>> verify_digest(b"abc", hash_bytes(b"abc"))
        True
    """
    algorithm, expected = parse_digest(digest)
    view = byte_view(data)
    if algorithm == "xxh3_128":
        if xxhash is None:
            raise ModuleNotFoundError(
                f"verifying the xxh3_128 digest {digest!r} needs the xxhash package: {_FAST_EXTRA}",
                name="xxhash",
            )
        return bool(xxhash.xxh3_128_hexdigest(view) == expected)
    actual = hashlib.blake2b(view, digest_size=len(expected) // 2).hexdigest()
    return actual == expected


def _dtype_label(dtype: np.dtype[Any]) -> str:
    return str(np.lib.format.dtype_to_descr(dtype))


def _feed_c_order(hasher: Hasher, arr: np.ndarray[Any, Any]) -> None:
    if arr.flags.c_contiguous:
        hasher.update(arr.reshape(-1).view(np.uint8))
    elif arr.nbytes <= _ARRAY_BLOCK or arr.ndim == 0:
        hasher.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    else:
        rows = _ARRAY_BLOCK // arr[0].nbytes
        if rows < 2:  # one row is a block or more: go down an axis
            for index in range(arr.shape[0]):
                _feed_c_order(hasher, arr[index])
        else:
            for start in range(0, arr.shape[0], rows):
                _feed_c_order(hasher, arr[start : start + rows])


def hash_array(arr: np.ndarray[Any, Any] | np.generic, *, algorithm: str | None = None) -> str:
    """Content hash of a numpy array: its dtype, its shape and its values in C order.

    Equal arrays hash equal whatever their memory layout (a strided view, a Fortran-ordered
    copy); a different dtype (including byte order) or shape hashes differently. Strided
    arrays are copied to C order 8 MiB at a time, never whole.

    A numpy scalar hashes as the 0-d array holding it.

    Raises:
        TypeError: ``arr`` is not a numpy array or scalar, or holds Python objects (whose bytes are
            pointers, not content).

    Example:
        >>> a = np.arange(6.0).reshape(2, 3)
        >>> hash_array(a) == hash_array(np.asfortranarray(a))
        True
    """
    if isinstance(arr, np.generic):
        arr = np.asarray(arr)
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"hash_array needs a numpy array, got {type(arr).__name__}")
    if arr.dtype.hasobject:
        raise TypeError(
            f"cannot hash an array of dtype {arr.dtype} by content: it holds object pointers "
            "(convert it to a numeric, string or bytes dtype first)"
        )
    hasher = Hasher(algorithm)
    hasher.update(f"ndarray\0{_dtype_label(arr.dtype)}\0{arr.shape}\0".encode())
    _feed_c_order(hasher, arr)
    return hasher.hexdigest()
