"""How the disk tier turns values into stored bytes and back, inline or in value files.

Three kinds of value: numpy arrays of plain dtypes are stored **raw** (their buffer as it
is in memory, described by dtype, shape and order), ``bytes`` as they are, everything else
as a pickle (protocol 5). Stored bytes may be compressed with a codec of
:mod:`lensing_ssc.core.io`, which keeps data that does not shrink raw. Each payload has a
self-describing digest (:func:`lensing_ssc.core.io.hash_bytes`), checked on every read.

Small payloads live inline in the SQLite index (:mod:`._index`); large ones in a value
file written with :func:`lensing_ssc.core.io.atomic_write`, straight from the array's own
buffer (no copy). A value file is::

    b"LSSCACHE" | version (1 byte) | 3 reserved bytes | header length (uint32, little end)
    | header: repr of a dict (kind, codec, meta, size, digest) | zero padding to 64 bytes
    | payload

so a raw array starts on a 64-byte boundary and can be read straight into a fresh array
(``readinto``) or memory-mapped. A file that does not match its index row, is shorter than
its header says, or fails its digest raises :class:`CorruptEntry`; the disk tier turns that
into a miss and removes the entry. Pickles are loaded from the cache directory as trusted
input: share a cache directory only between your own jobs.
"""

from __future__ import annotations

import ast
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import Hasher, atomic_write, compress, decompress, hash_bytes
from lensing_ssc.core.io import verify_digest as _verify_digest

__all__ = [
    "KIND_ARRAY",
    "KIND_BYTES",
    "KIND_PICKLE",
    "CorruptEntry",
    "Encoded",
    "MemoryMap",
    "decode_value",
    "encode_value",
    "read_value_file",
    "write_value_file",
]

KIND_PICKLE, KIND_ARRAY, KIND_BYTES = 0, 1, 2
_MAGIC = b"LSSCACHE"
_VERSION = 1
_PREFIX = struct.Struct("<8sB3xI")
_ALIGN = 64
_READ_BLOCK = 1 << 20  # bytes read, then hashed while still in the CPU cache, at a time
_PLAIN_ARRAY_TYPES = (np.ndarray, np.memmap)

MemoryMap = Literal[False, True, "verify"]
"""How the disk tier returns raw arrays: read (``False``), mapped, or mapped and verified."""


class CorruptEntry(Exception):
    """A stored entry that cannot be read back as it was written."""


@dataclass(frozen=True)
class Encoded:
    """A value turned into stored bytes.

    Attributes:
        kind: :data:`KIND_PICKLE`, :data:`KIND_ARRAY` or :data:`KIND_BYTES`.
        codec: The codec the payload is compressed with (``"none"`` if raw).
        meta: For arrays, the repr of ``{"descr", "shape", "order"}``; else ``""``.
        chunks: Buffers that, one after the other, are the payload.
        size: Payload bytes.
        digest: Digest of the payload.
    """

    kind: int
    codec: str
    meta: str
    chunks: tuple[Any, ...]
    size: int
    digest: str

    def payload(self) -> bytes:
        """The payload as one bytes object (for inline storage)."""
        if len(self.chunks) == 1 and type(self.chunks[0]) is bytes:
            return self.chunks[0]
        return b"".join(bytes(memoryview(chunk).cast("B")) for chunk in self.chunks)


def _array_payload(arr: np.ndarray[Any, Any]) -> tuple[str, np.ndarray[Any, Any]]:
    if arr.flags.c_contiguous:
        return "C", arr.reshape(-1).view(np.uint8)
    if arr.flags.f_contiguous:
        return "F", arr.T.reshape(-1).view(np.uint8)
    return "C", np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def encode_value(value: Any, *, key: Any, codec: Any) -> Encoded:
    """Turn ``value`` into stored bytes.

    Args:
        value: Any picklable value; plain numpy arrays and bytes are stored raw.
        key: The cache key, named in errors.
        codec: A codec spec for :func:`lensing_ssc.core.io.compress`.

    Raises:
        CacheError: ``value`` cannot be pickled, whatever pickling raised (naming the key
            and the value's type, chained to that error).
    """
    meta = ""
    payload: Any
    if type(value) in _PLAIN_ARRAY_TYPES and not value.dtype.hasobject:
        kind = KIND_ARRAY
        order, payload = _array_payload(value)
        descr = np.lib.format.dtype_to_descr(value.dtype)
        meta = repr({"descr": descr, "shape": tuple(value.shape), "order": order})
    elif type(value) is bytes:
        kind, payload = KIND_BYTES, value
    else:
        kind = KIND_PICKLE
        try:
            payload = pickle.dumps(value, protocol=5)
        except Exception as exc:  # the value's own __reduce__ may raise anything
            raise CacheError(
                f"cannot store the value of key {key!r} on disk: a {type(value).__name__} "
                f"cannot be pickled ({exc})",
                value=key,
                hint="cache it in memory only (a CacheManager without cache_dir), or store a "
                "picklable form of it",
            ) from exc
    size = payload.nbytes if isinstance(payload, np.ndarray) else len(payload)
    codec_name = "none"
    if size and codec != "none":
        codec_name, packed = compress(payload, codec)
        if codec_name != "none":
            payload, size = packed, len(packed)
    return Encoded(kind, codec_name, meta, (payload,), size, hash_bytes(payload))


def _array_from_meta(meta: str) -> tuple[np.dtype[Any], tuple[int, ...], str]:
    try:
        fields = ast.literal_eval(meta)
        dtype = np.lib.format.descr_to_dtype(fields["descr"])
        return dtype, tuple(int(n) for n in fields["shape"]), str(fields["order"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise CorruptEntry(f"unreadable array description {meta!r}") from exc


def _empty_array(meta: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A fresh array for ``meta`` and the flat byte view to read its payload into."""
    dtype, shape, order = _array_from_meta(meta)
    if order == "F":
        arr = np.empty(shape[::-1], dtype).T
        return arr, arr.T.reshape(-1).view(np.uint8)
    arr = np.empty(shape, dtype)
    return arr, arr.reshape(-1).view(np.uint8)


def decode_value(kind: int, codec: str, meta: str, payload: Any) -> Any:
    """Invert :func:`encode_value` on a payload already checked against its digest."""
    try:
        if kind == KIND_ARRAY:
            arr, flat = _empty_array(meta)
            # inflate no further than the array the entry declares (a crafted file's bomb)
            data = decompress(codec, payload, max_size=flat.nbytes) if codec != "none" else payload
            if flat.nbytes != len(data):
                raise CorruptEntry(f"array payload of {len(data)} bytes, expected {flat.nbytes}")
            flat[...] = np.frombuffer(data, np.uint8)
            return arr
        data = decompress(codec, payload) if codec != "none" else payload
        if kind == KIND_BYTES:
            return bytes(data)
        return pickle.loads(data)  # a pickle runs code anyway: trusted as the cache is
    except CorruptEntry:
        raise
    except Exception as exc:  # a payload that passed its digest yet fails to load
        raise CorruptEntry(f"cannot decode a stored value: {exc}") from exc


def write_value_file(path: Path, encoded: Encoded, *, durable: bool = True) -> None:
    """Write ``encoded`` to ``path`` atomically, payload chunks uncopied.

    ``durable`` also flushes it to disk (``fsync``) before it is renamed into place; without,
    a power cut may leave the file empty or torn, which its digest check then reports.
    """
    header = repr(
        {
            "kind": encoded.kind,
            "codec": encoded.codec,
            "meta": encoded.meta,
            "size": encoded.size,
            "digest": encoded.digest,
        }
    ).encode("ascii")
    head = _PREFIX.pack(_MAGIC, _VERSION, len(header)) + header
    head += b"\0" * (-len(head) % _ALIGN)
    atomic_write(path, [head, *encoded.chunks], fsync=durable)


def _read_exact(handle: Any, view: memoryview, hasher: Hasher | None) -> None:
    done, total = 0, len(view)
    while done < total:
        block = view[done : min(done + _READ_BLOCK, total)]
        got = handle.readinto(block)
        if not got:
            raise CorruptEntry(f"value file ends {total - done} bytes early")
        if hasher is not None:
            hasher.update(block[:got])
        done += got


def read_value_file(
    path: Path,
    *,
    kind: int,
    codec: str,
    meta: str,
    size: int,
    digest: str,
    memory_map: MemoryMap,
) -> Any:
    """Read the value stored in ``path``, checking it against its index row.

    Args:
        path: The value file.
        kind, codec, meta, size, digest: The index row's description of the value.
        memory_map: ``True`` returns a raw array as a read-only ``np.memmap`` without
            checking its digest (that would read the whole file); ``"verify"`` maps it and
            checks the digest through the map (the file is read once, but into no new
            memory); ``False`` reads it into a fresh array.

    Raises:
        FileNotFoundError: ``path`` is gone (replaced by a newer write, or removed).
        CorruptEntry: The file is truncated, does not match the row, or fails its digest.
    """
    with open(path, "rb", buffering=0) as handle:
        prefix = handle.read(_PREFIX.size)
        if len(prefix) != _PREFIX.size:
            raise CorruptEntry("value file shorter than its prefix")
        magic, version, header_len = _PREFIX.unpack(prefix)
        if magic != _MAGIC or version != _VERSION:
            raise CorruptEntry("not a cache value file")
        header_bytes = handle.read(header_len)
        try:
            header = ast.literal_eval(header_bytes.decode("ascii"))
        except (ValueError, SyntaxError, UnicodeDecodeError) as exc:
            raise CorruptEntry("unreadable value file header") from exc
        expected = {"kind": kind, "codec": codec, "meta": meta, "size": size, "digest": digest}
        if header != expected:
            raise CorruptEntry("value file does not match its index entry")
        offset = _PREFIX.size + header_len
        offset += -offset % _ALIGN
        if os.fstat(handle.fileno()).st_size != offset + size:
            raise CorruptEntry("value file has the wrong length (truncated or overwritten)")
        handle.seek(offset)
        if kind == KIND_ARRAY and codec == "none":
            if memory_map:
                return _map_array(path, offset, meta, digest if memory_map == "verify" else None)
            arr, flat = _empty_array(meta)
            hasher = Hasher(digest.partition(":")[0])
            _read_exact(handle, flat.data, hasher)
            if hasher.hexdigest() != digest:
                raise CorruptEntry("value file fails its digest")
            return arr
        payload = bytearray(size)
        _read_exact(handle, memoryview(payload), None)
    if not verify_digest(payload, digest):
        raise CorruptEntry("value file fails its digest")
    return decode_value(kind, codec, meta, payload)


def _map_array(path: Path, offset: int, meta: str, digest: str | None) -> np.ndarray[Any, Any]:
    """The raw array stored at ``offset`` of ``path``, as a read-only memory map.

    With ``digest``, the mapped bytes are hashed first: the pages come from the page cache,
    so unlike reading into a fresh array no new memory has to be zeroed and copied into.
    """
    dtype, shape, order = _array_from_meta(meta)
    layout: Literal["C", "F"] = "F" if order == "F" else "C"
    arr = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=layout)
    if digest is not None:
        hasher = Hasher(digest.partition(":")[0])
        hasher.update(arr.reshape(-1, order="A").view(np.uint8))
        if hasher.hexdigest() != digest:
            raise CorruptEntry("value file fails its digest")
    return arr


def verify_digest(payload: Any, digest: str) -> bool:
    """Whether ``payload`` matches ``digest``; a malformed digest is a mismatch."""
    try:
        return _verify_digest(payload, digest)
    except ValueError:
        return False
