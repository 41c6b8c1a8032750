"""On-disk formats of a checkpoint directory: blob headers, manifest files and their names.

A checkpoint directory holds::

    manifests/ckpt-00000007-20250101T120000.123456Z-node042-81234-0001.json   one each
    blobs/xxh3_128-3f9c...                                  content-addressed data
    .lock                                                   saves and loads share it
    .commit.lock                                            one commit at a time

Blobs share one flat directory, so a save syncs that directory once for all its blobs.

A checkpoint's **id** starts with its sequence number in the directory (one more than the
highest present when it was committed, under ``.commit.lock``), then its UTC time, host,
process and the process's own count. The sequence number, not the time, orders
checkpoints: a writer whose clock runs ahead cannot make later saves look older. Ids of
the first format (``ckpt-<time>-...``, no sequence number) still read, as older than any
numbered one.

A **blob** is a 128-byte header followed by the stored bytes. The header names the codec,
the raw and stored lengths and, for compressed blobs, the digest of the compressed bytes
(checked before they reach a decompressor), and ends with a CRC-32 of itself. The file
name is the digest of the raw (uncompressed) content, so a blob is verified by reading it
back and hashing. Data starts at byte 128, so raw arrays can be memory-mapped aligned.

A **manifest** is UTF-8 JSON followed by one trailer line ``checksum <digest>\\n`` holding
the digest of every byte before it: any changed byte anywhere in the file is detected.
The manifest names every blob the checkpoint needs, so it is written last and renamed into
place: that rename is the one moment a checkpoint comes into existence.

The ``read_*`` helpers read a blob's payload back and check it chunk by chunk, and inflate
compressed payloads no further than the size the header declares. What goes into a
manifest is decided by :mod:`._writing`, what it may contain is checked by :mod:`._schema`;
the state tree is :mod:`._encode`'s.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import Hasher, decompress, hash_bytes, parse_digest, verify_digest
from lensing_ssc.processing.managers.checkpoint._encode import MAX_DEPTH

__all__ = [
    "BLOB_HEADER_SIZE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_SUFFIX",
    "MAX_SEQUENCE",
    "BlobHeader",
    "DamagedError",
    "UnsupportedVersionError",
    "blob_relpath",
    "is_checkpoint_id",
    "is_manifest_name",
    "make_checkpoint_id",
    "pack_blob_header",
    "pack_manifest",
    "read_and_hash",
    "read_decompressed",
    "read_exactly",
    "sequence_of",
    "unpack_blob_header",
    "unpack_manifest",
]

FORMAT_NAME = "lensing_ssc.checkpoint"
FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".json"
BLOB_HEADER_SIZE = 128

_READ_CHUNK = 64 << 20
_fadvise = getattr(os, "posix_fadvise", None)
_SEQUENTIAL = getattr(os, "POSIX_FADV_SEQUENTIAL", 0)
_HASH_CHUNK = 4 << 20  # read and hash raw blobs in steps that stay in the CPU cache
_MAGIC = b"LSSCBLOB"
_BLOB_VERSION = 1
# magic, version, codec, raw size, stored size, digest of the stored bytes, zero padding
_HEADER = struct.Struct("<8sB16sQQ64s19s")
_CRC = struct.Struct("<I")
_CODEC_NAMES = frozenset({"none", "gzip", "zstd", "lz4"})
_TRAILER = b"checksum "
_ID = re.compile(r"ckpt-(?:(?P<seq>\d{8,18})-)?\d{8}T\d{6}\.\d{6}Z-[A-Za-z0-9_]{1,24}-\d+-\d+")
MAX_SEQUENCE = 10**18 - 1  # 18 digits; no directory of honest saves comes near
_HOST_CHARS = re.compile(r"[^A-Za-z0-9_]")
# The deepest manifest this package writes nests its JSON about 3 levels per level of the
# state (a dict with other than string keys: {"$dict": [[key, value]]}), plus an array's
# nested values (64 dimensions at most) and the manifest's own levels. Python's json parser
# spends a frame of the recursion limit on each level.
_JSON_FRAMES = 3 * MAX_DEPTH + 100


class DamagedError(ValueError):
    """A stored file does not match what was written: ``what`` names it, ``reason`` says how."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class UnsupportedVersionError(DamagedError):
    """An intact manifest written by a newer format version: never deleted by collection."""


# -- ids ---------------------------------------------------------------------------------


def _host_label() -> str:
    label = _HOST_CHARS.sub("_", socket.gethostname().split(".")[0])[:24]
    return label or "localhost"


def make_checkpoint_id(sequence: int, created: float, pid: int, count: int) -> str:
    """A checkpoint id: its sequence number in the directory, then time, host, process and
    the process's own count, which keep ids distinct where the sequence cannot be locked.

    Example:
        >>> make_checkpoint_id(7, 0.0, 81234, 1)  # doctest: +SKIP
        'ckpt-00000007-19700101T000000.000000Z-node042-81234-0001'
    """
    when = _dt.datetime.fromtimestamp(created, tz=_dt.timezone.utc)
    return f"ckpt-{sequence:08d}-{when:%Y%m%dT%H%M%S.%f}Z-{_host_label()}-{pid}-{count:04d}"


def sequence_of(checkpoint_id: str) -> int:
    """The sequence number in ``checkpoint_id``; 0 for an id of the first format."""
    match = _ID.fullmatch(checkpoint_id)
    return int(match["seq"]) if match is not None and match["seq"] is not None else 0


def is_manifest_name(name: str) -> bool:
    """Whether ``name`` is the file name of a manifest (temporary files are not)."""
    return (
        name.endswith(MANIFEST_SUFFIX) and _ID.fullmatch(name[: -len(MANIFEST_SUFFIX)]) is not None
    )


def is_checkpoint_id(text: str) -> bool:
    """Whether ``text`` has the shape of a checkpoint id."""
    return _ID.fullmatch(text) is not None


# -- blobs -------------------------------------------------------------------------------


def blob_relpath(digest: str) -> Path:
    """Path of the blob with ``digest``, relative to the checkpoint directory.

    Raises:
        DamagedError: ``digest`` is not a digest string (a damaged or foreign manifest).
    """
    try:
        algorithm, hexdigest = parse_digest(digest)
    except ValueError as exc:
        raise DamagedError("manifest", f"invalid blob digest {digest!r}") from exc
    return Path("blobs", f"{algorithm}-{hexdigest}")


class BlobHeader:
    """The fields of a blob header."""

    __slots__ = ("codec", "raw_size", "stored_digest", "stored_size")

    def __init__(self, codec: str, raw_size: int, stored_size: int, stored_digest: str) -> None:
        self.codec = codec
        self.raw_size = raw_size
        self.stored_size = stored_size
        self.stored_digest = stored_digest


def pack_blob_header(codec: str, raw_size: int, stored_size: int, stored_digest: str = "") -> bytes:
    """The header of a blob; ``stored_digest`` is required when ``codec`` is not ``none``."""
    body = _HEADER.pack(
        _MAGIC,
        _BLOB_VERSION,
        codec.encode("ascii"),
        raw_size,
        stored_size,
        stored_digest.encode("ascii"),
        b"",
    )
    return body + _CRC.pack(zlib.crc32(body))


def unpack_blob_header(data: bytes, what: str) -> BlobHeader:
    """Parse and check a blob header.

    Raises:
        DamagedError: Wrong length, magic, version, codec or CRC.
    """
    if len(data) != BLOB_HEADER_SIZE:
        raise DamagedError(what, "truncated header")
    body, (crc,) = data[: _HEADER.size], _CRC.unpack(data[_HEADER.size :])
    if zlib.crc32(body) != crc:
        raise DamagedError(what, "header checksum mismatch")
    magic, version, codec, raw_size, stored_size, digest, padding = _HEADER.unpack(body)
    name = codec.rstrip(b"\0").decode("ascii", "replace")
    stored_digest = digest.rstrip(b"\0").decode("ascii", "replace")
    if magic != _MAGIC or version != _BLOB_VERSION or name not in _CODEC_NAMES or any(padding):
        raise DamagedError(what, "not a blob of this format version")
    try:
        if name != "none" or stored_digest:
            parse_digest(stored_digest)
    except ValueError as exc:
        raise DamagedError(what, "invalid digest of the compressed data") from exc
    return BlobHeader(name, raw_size, stored_size, stored_digest)


# -- manifests ---------------------------------------------------------------------------


def pack_manifest(body: dict[str, Any], *, indent: int | None) -> bytes:
    """Serialise a manifest: JSON, then the trailer line with the checksum of the JSON."""
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(body, indent=indent, separators=separators, allow_nan=False)
    data = text.encode("ascii")
    return data + b"\n" + _TRAILER + hash_bytes(data).encode("ascii") + b"\n"


def unpack_manifest(data: bytes, what: str) -> dict[str, Any]:
    """Check a manifest's checksum and parse it.

    Raises:
        DamagedError: Any byte differs from what was written, or the file is not a
            manifest of a format version this package reads.
    """
    cut = data.rfind(b"\n" + _TRAILER)
    if cut < 0 or not data.endswith(b"\n"):
        raise DamagedError(what, "no checksum trailer (truncated or not a manifest)")
    body, digest = data[:cut], data[cut + 1 + len(_TRAILER) : -1]
    try:
        intact = verify_digest(body, digest.decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedError(what, "malformed checksum trailer") from exc
    if not intact:
        raise DamagedError(what, "checksum mismatch")
    try:
        manifest = json.loads(body)
    except ValueError as exc:  # cannot happen with an intact checksum unless written so
        raise DamagedError(what, f"not JSON: {exc}") from exc
    except RecursionError as exc:
        if not _stack_has_room():
            raise CheckpointError(
                f"cannot read the {what}: the call stack is too deep to parse it",
                hint=f"read checkpoints from at most {sys.getrecursionlimit() - _JSON_FRAMES} "
                "frames deep, or raise sys.setrecursionlimit()",
            ) from exc
        raise DamagedError(what, "nested deeper than any manifest this package writes") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DamagedError(what, "not a lensing_ssc checkpoint manifest")
    version = manifest.get("version")
    if type(version) is not int or version < 1:
        raise DamagedError(what, f"invalid format version {version!r}")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(what, f"format version {version!r} (this package reads 1)")
    return manifest


def _stack_has_room() -> bool:
    """Whether the caller's stack leaves room to parse the deepest manifest we write: a
    recursion error with room to spare is the file's fault, not the caller's."""
    depth, frame = 0, sys._getframe()
    while frame is not None and depth <= sys.getrecursionlimit():
        depth, frame = depth + 1, frame.f_back  # type: ignore[assignment]
    return depth + _JSON_FRAMES <= sys.getrecursionlimit()


# -- reading blob payloads ---------------------------------------------------------------


def read_exactly(fh: Any, into: memoryview, what: str) -> None:
    """Fill ``into`` from ``fh``; a short file is damage."""
    done = 0
    while done < into.nbytes:
        got = fh.readinto(into[done : done + _READ_CHUNK])
        if not got:
            raise DamagedError(what, "file is truncated")
        done += got


def read_and_hash(
    fh: Any, digest: str, raw_size: int, what: str, target: memoryview | None
) -> None:
    """Read ``raw_size`` bytes (into ``target``, or a scratch buffer) and check ``digest``.

    Each chunk is hashed right after it is read, while it is still in the CPU cache.
    """
    if _fadvise is not None:  # read-ahead as if the whole file were asked for at once
        _fadvise(fh.fileno(), 0, 0, _SEQUENTIAL)
    hasher = Hasher(parse_digest(digest)[0])
    buffer = target if target is not None else memoryview(bytearray(min(raw_size, _HASH_CHUNK)))
    for start in range(0, raw_size, _HASH_CHUNK):
        size = min(_HASH_CHUNK, raw_size - start)
        chunk = buffer[start : start + size] if target is not None else buffer[:size]
        read_exactly(fh, chunk, what)
        hasher.update(chunk)
    if hasher.hexdigest() != digest:
        raise DamagedError(what, "checksum mismatch")


def read_decompressed(fh: Any, header: BlobHeader, raw_size: int, what: str) -> bytes:
    """Read a compressed payload, check its own digest, then decompress it, stopping at
    ``raw_size`` bytes: a payload that would inflate further is damage, found without
    inflating it."""
    stored = memoryview(bytearray(header.stored_size))
    read_exactly(fh, stored, what)
    if not verify_digest(stored, header.stored_digest):
        raise DamagedError(what, "checksum mismatch in the compressed data")
    try:
        data = decompress(header.codec, stored, max_size=raw_size)
    except (ValueError, ModuleNotFoundError) as exc:
        raise DamagedError(what, f"cannot decompress: {exc}") from exc
    if len(data) != raw_size:
        raise DamagedError(what, "decompressed length differs from the manifest's")
    return data
