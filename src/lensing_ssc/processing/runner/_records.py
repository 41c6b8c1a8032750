"""The journal's record format, its index, and reading one record back.

A journal file is a sequence of records. Each is a 16-byte header (magic ``LSJ\\x01``,
payload length, CRC-32 of the payload) and a payload (kind, key, codec, body). Kinds:
``open`` (a run started; JSON with the function's identity), ``done`` (the result,
pickled, maybe compressed) and ``failed`` (JSON: error type, message, traceback, attempts).

Reading a journal when a run resumes builds an index, not a copy:
:func:`read_journal` scans the file through a read-only mapping (the pages behind the scan
are dropped as it goes, so the process's resident size does not grow with the file),
checks every record's CRC-32, and keeps the offset of each done record: per item of the
resuming run when it is given the run's keys (8 bytes an item, in an ``array``), else per
key in a ``dict``. A :class:`RecordReader` loads a result back from its offset when it is
needed, a block of the file at a time, checking its CRC-32 and key again. A torn last
record, the zeros a run reserved after its last record, and damaged records in the middle
are handled as the module :mod:`._journal` describes.

The scan is one loop over the records, under 1 µs of CPU each (10**6 small records read
for a run's keys: 0.86 s, where a ``dict`` of every key filled from the generator
:func:`_records` took 2.2 s): one ``unpack`` reads a record's header, kind and lengths
together, its CRC-32 runs on a view of the mapping, and in a journal written in input order
each key is compared with the next item's key instead of looked up in a ``dict`` (one is
built only at the first key out of order).

Writing records is in :mod:`._journal`; the lazy view of a run's results in :mod:`._results`.
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
import struct
import threading
import weakref
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import decompress

__all__ = ["JournalContents", "RecordReader", "failure_fields", "read_journal"]

MAGIC = b"LSJ\x01"
_HEADER = struct.Struct("<4sQI")  # magic, payload length, crc32(payload)
_HEAD = struct.Struct("<BBH")  # kind, codec name length, key length
_RECORD = struct.Struct("<4sQIBBH")  # _HEADER then _HEAD: one unpack a record when scanning
KIND_OPEN, KIND_DONE, KIND_FAILED = 1, 2, 3
_JOIN_BELOW = 16 * 1024

_DROP_EVERY = 8 << 20
"""Bytes scanned between drops of the mapping's pages: resident size during a scan stays
below this, whatever the journal's size, for one ``madvise`` per 8 MiB (10 for the 80 MB
journal of 10**6 small results, whose index is 8 MB)."""

READ_BLOCK = 64 * 1024
"""Bytes a :class:`RecordReader` reads at a time: about 800 small records (so reading in
journal order costs one ``pread`` per 800 results) and one 64 KiB copy for a random read."""

_pread_lock = threading.Lock()  # only where os.pread is missing (Windows): lseek + read


@dataclass
class JournalContents:
    """What a journal held when it was opened: an index of its records, not their results.

    Attributes:
        done: key → offset of the key's last ``done`` record in the file (when read without
            the run's keys; empty when read with them, which fills ``offsets`` instead).
        offsets: When read with the run's keys: per key, in their order, 1 + the offset of
            its last ``done`` record, or 0 for a key not done; else ``None``.
        failed: key → failure fields (for keys without a later ``done`` record).
        function: Identity of the function of the last run, or ``None``.
        records: Valid records read.
        damaged_bytes: Bytes skipped inside the file (damaged records).
        torn_bytes: Bytes cut off the end (a record torn by a crash; not counting the zeros
            reserved after the last record).
        path: The journal file (``None`` for a journal started afresh).
    """

    done: dict[str, int] = field(default_factory=dict)
    offsets: array[int] | None = None
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    function: str | None = None
    records: int = 0
    damaged_bytes: int = 0
    torn_bytes: int = 0
    path: Path | None = None
    _reader: RecordReader | None = field(default=None, init=False, repr=False, compare=False)

    def result(self, key: str) -> Any:
        """Read the stored result of ``key`` back from the journal file.

        Raises:
            KeyError: ``key`` has no result in the journal.
            CheckpointError: The record can no longer be read or loaded.
        """
        offset = self.done[key]
        if self._reader is None:
            if self.path is None:
                raise KeyError(key)
            self._reader = RecordReader(self.path)
        return self._reader.load(offset, key)


def _records(data: Any) -> Iterator[tuple[int, int, int, str, str, memoryview]]:
    """Yield ``(start, end, kind, key, codec, body)`` per valid record, resyncing past damage.

    ``data`` is the file's bytes, or a mapping of it.
    """
    view = memoryview(data)
    size = len(data)
    pos = 0
    while pos + _HEADER.size <= size:
        magic, length, crc = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if magic == MAGIC and end <= size and length >= _HEAD.size:
            payload = view[start:end]
            if zlib.crc32(payload) == crc:
                kind, codec_len, key_len = _HEAD.unpack_from(payload)
                body_at = _HEAD.size + key_len + codec_len
                if kind in (KIND_OPEN, KIND_DONE, KIND_FAILED) and body_at <= length:
                    try:
                        key = bytes(payload[_HEAD.size : _HEAD.size + key_len]).decode("utf-8")
                        codec = bytes(payload[_HEAD.size + key_len : body_at]).decode("ascii")
                    except UnicodeDecodeError:  # checksummed nonsense: skipped as damaged
                        pass
                    else:
                        yield pos, end, kind, key, codec, payload[body_at:]
                        pos = end
                        continue
        found = data.find(MAGIC, pos + 1)
        if found < 0:
            return
        pos = found


def read_journal(path: Path, keys: Sequence[str] | None = None) -> tuple[JournalContents, int]:
    """Index a journal file; returns the index and the offset where valid data ends.

    Args:
        path: The journal file.
        keys: The resuming run's keys: the index is then ``offsets``, an entry per key
            (done records of other keys are not kept); ``None``: ``done``, per key recorded.

    Memory: the index (8 bytes per key given, or a key and an offset per done key), whatever
    the results' size.
    """
    path = Path(path)
    contents = JournalContents(path=path)
    if keys is not None:
        contents.offsets = array("q", [0]) * len(keys)
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return contents, 0
        data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    good_end = _index(data, contents, keys or ())
    contents.torn_bytes = _tail_bytes(data, good_end)
    data.close()
    return contents, good_end


def _index(data: mmap.mmap, contents: JournalContents, keys: Sequence[str]) -> int:
    """Fill ``contents`` from every valid record of ``data``; returns where valid data ends.

    Finds the records :func:`_records` finds, in one loop written out for speed: it runs
    once per record of a resumed run.
    """
    done, failed, offsets = contents.done, contents.failed, contents.offsets
    count = len(keys)
    positions: dict[str, int] | None = None  # key -> item, built at the first key out of order
    expected = 0  # the item whose key the next done record has, in a journal in input order
    unpack, crc32 = _RECORD.unpack_from, zlib.crc32
    drop = getattr(mmap, "MADV_DONTNEED", None)
    view = memoryview(data)
    size = len(data)
    last = size - _RECORD.size  # the last offset where a valid record can start
    records = covered = good_end = dropped = 0
    pos = run_start = 0  # run_start: where the current run of back-to-back valid records began
    while 0 <= pos <= last:
        window_end = min(last, pos + _DROP_EVERY)
        while pos <= window_end:
            magic, length, crc, kind, codec_len, key_len = unpack(data, pos)
            end = pos + _HEADER.size + length
            if (
                magic == MAGIC
                and end <= size
                and _HEAD.size + key_len + codec_len <= length
                and crc32(view[pos + _HEADER.size : end]) == crc
            ):
                key_at = pos + _RECORD.size
                if kind == KIND_DONE:
                    key: str | None
                    try:
                        key = data[key_at : key_at + key_len].decode("utf-8")
                    except UnicodeDecodeError:  # a checksum over nonsense: crafted, not ours
                        key = None
                    if key is not None:
                        if offsets is None:
                            done[key] = pos
                        elif expected < count and keys[expected] == key:
                            offsets[expected] = pos + 1
                            expected += 1
                        else:
                            if positions is None:
                                positions = {k: index for index, k in enumerate(keys)}
                            index = positions.get(key)
                            if index is not None:
                                offsets[index] = pos + 1
                                expected = index + 1
                        if failed:
                            failed.pop(key, None)
                        records += 1
                        pos = end
                        continue
                elif kind in (KIND_FAILED, KIND_OPEN):
                    parsed = _parse_fields(kind, data[key_at:end], key_len, codec_len)
                    if parsed is not None:
                        if kind == KIND_OPEN:
                            contents.function = parsed[1]["function"]
                        else:
                            failed[parsed[0]] = parsed[1]
                        records += 1
                        pos = end
                        continue
            # Not a valid record: skip to the next magic (bytes skipped before a later valid
            # record are damaged; after the last one, torn or reserved).
            covered += pos - run_start
            if pos > run_start:
                good_end = pos
            pos = run_start = data.find(MAGIC, pos + 1)
            if pos < 0:
                break
        if drop is not None and 0 <= pos <= last:  # more to scan: drop the pages behind
            upto = pos - pos % mmap.PAGESIZE
            data.madvise(drop, dropped, upto - dropped)
            dropped = upto
    if pos > run_start:  # the scan ended after a run of valid records
        covered += pos - run_start
        good_end = pos
    view.release()
    contents.records = records
    contents.damaged_bytes = good_end - covered
    return good_end


def _parse_fields(
    kind: int, payload: bytes, key_len: int, codec_len: int
) -> tuple[str, dict[str, Any]] | None:
    """The key and JSON fields of an ``open`` or ``failed`` record; ``None`` when they are
    not a JSON object (an ``open`` record's naming its function by a string): the record is
    then skipped as damaged.

    A record's checksum covers only itself, so anyone can write one that passes: a failed
    record's fields are read through :func:`failure_fields` where they are used.
    """
    try:
        key = payload[:key_len].decode("utf-8")
        fields = json.loads(payload[key_len + codec_len :].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(fields, dict):
        return None
    if kind == KIND_OPEN and not isinstance(fields.get("function"), str):
        return None
    return key, fields


def failure_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``error_type``, ``message``, ``traceback`` and ``attempts`` of a failed record.

    Each has its type (``str``, ``str``, ``str``, ``int`` ≥ 0); one that is missing or of
    another type (a record this module did not write) reads as unknown: ``"?"``, ``""``,
    ``""``, 0. Other fields are left out.
    """
    texts = {
        name: value if isinstance(value := fields.get(name), str) else default
        for name, default in (("error_type", "?"), ("message", ""), ("traceback", ""))
    }
    attempts = fields.get("attempts")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        attempts = 0
    return {**texts, "attempts": attempts}


def _tail_bytes(data: mmap.mmap, good_end: int) -> int:
    """Bytes after ``good_end`` up to the last non-zero one (zeros were reserved, not torn)."""
    end = len(data)
    while end > good_end:
        low = max(good_end, end - READ_BLOCK)
        kept = data[low:end].rstrip(b"\0")
        if kept:
            return low + len(kept) - good_end
        end = low
    return 0


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    parts = []
    while size > 0:
        if hasattr(os, "pread"):
            chunk = os.pread(fd, size, offset)
        else:  # pragma: no cover - Windows
            with _pread_lock:
                os.lseek(fd, offset, os.SEEK_SET)
                chunk = os.read(fd, size)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class RecordReader:
    """Loads results back from one journal file by record offset; safe to share by threads.

    The file is opened on first use and closed when the reader is garbage-collected.
    Consecutive records come from one cached block (:data:`READ_BLOCK`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._cache: tuple[int, bytes] = (0, b"")
        self._open_lock = threading.Lock()

    def __reduce__(self) -> tuple[type[RecordReader], tuple[Path]]:
        return RecordReader, (self.path,)

    def _descriptor(self) -> int:
        with self._open_lock:
            if self._fd is None:
                fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                weakref.finalize(self, os.close, fd)
                self._fd = fd
            return self._fd

    def load(self, offset: int, key: str) -> Any:
        """Unpickle the result of ``key`` from its ``done`` record at ``offset``.

        Raises:
            CheckpointError: The file is gone or no longer holds that record (a later run
                started the journal afresh), or the result no longer unpickles.
        """
        try:
            codec, body = self._done_body(offset, key)
        except CheckpointError:  # also an OSError: raised as it is
            raise
        except OSError as exc:
            raise CheckpointError(
                f"could not read the task journal {str(self.path)!r}: {exc.strerror or exc}",
                value=str(self.path),
                hint="results restored from a journal are read from it when used: keep the "
                "file until then, or list(result.results) while it is there",
            ) from exc
        try:
            return pickle.loads(body if codec == "none" else decompress(codec, body))
        except Exception as exc:  # a result whose class changed since it was saved
            raise CheckpointError(
                f"the result of {key!r} in the task journal {str(self.path)!r} cannot be "
                f"loaded ({type(exc).__name__}: {exc})",
                value=key,
                hint="its type may have changed since it was saved: run again with "
                "resume=False to compute every result afresh",
            ) from exc

    def _done_body(self, offset: int, key: str) -> tuple[str, memoryview]:
        # Once per result read back: one unpack for the header, kind and lengths, as the scan.
        at, block = self._cache
        rel = offset - at
        if rel < 0 or rel + _RECORD.size > len(block):
            at, block, rel = offset, _pread(self._descriptor(), READ_BLOCK, offset), 0
            self._cache = (at, block)
        if len(block) - rel >= _RECORD.size:
            magic, length, crc, kind, codec_len, key_len = _RECORD.unpack_from(block, rel)
            total = _HEADER.size + length
            if magic == MAGIC and rel + total > len(block):  # the record runs past the block
                if total > READ_BLOCK:
                    block, rel = _pread(self._descriptor(), total, offset), 0
                else:
                    at, block, rel = offset, _pread(self._descriptor(), READ_BLOCK, offset), 0
                    self._cache = (at, block)
            key_at = rel + _RECORD.size
            body_at = key_at + key_len + codec_len
            end = rel + total
            if (
                magic == MAGIC
                and kind == KIND_DONE
                and body_at <= end <= len(block)
                and zlib.crc32(memoryview(block)[rel + _HEADER.size : end]) == crc
                and block[key_at : key_at + key_len] == key.encode("utf-8")
            ):
                # An unknown codec (crafted bytes, not ours) fails to decompress, as damage.
                codec = block[key_at + key_len : body_at].decode("ascii", "replace")
                return codec, memoryview(block)[body_at:end]
        raise CheckpointError(
            f"the task journal {str(self.path)!r} changed after it was read: the result of "
            f"{key!r} is no longer at byte {offset}",
            value=str(self.path),
            hint="a later run may have started it afresh (resume=False); run the map again "
            "to compute the missing results",
        )
