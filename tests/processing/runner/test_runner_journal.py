"""The completion journal: round trips, torn and damaged records, locking, durability, cost,
and resuming many items from an index with results read back lazily."""

from __future__ import annotations

import errno
import json
import os
import pickle
import statistics
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import CheckpointError, ConfigError
from lensing_ssc.core.io import hash_bytes
from lensing_ssc.processing.runner import _appender as appender_module
from lensing_ssc.processing.runner import _journal as journal_module
from lensing_ssc.processing.runner import _keys as keys_module
from lensing_ssc.processing.runner import _records as records_module
from lensing_ssc.processing.runner import run_map
from lensing_ssc.processing.runner._journal import Journal, read_journal
from lensing_ssc.processing.runner._keys import item_keys
from lensing_ssc.processing.runner._records import READ_BLOCK

values = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=5),
)
entries = st.lists(st.tuples(st.text(min_size=1, max_size=20), values), max_size=30)


def _write(path: Path, pairs: list[tuple[str, Any]], **options: Any) -> None:
    journal, _ = Journal.open(path, function="f", resume=False, **options)
    with journal:
        for key, value in pairs:
            journal.append_done(key, value)


def test_round_trip_of_results_failures_and_function(tmp_path: Path) -> None:
    """What a run appends comes back on reopening: results, failures and the function."""
    path = tmp_path / "j"
    journal, contents = Journal.open(path, function="mod:f")
    assert contents.done == {}
    assert contents.function is None
    with journal:
        journal.append_done("a", {"x": [1, 2]})
        journal.append_failed(
            "b", {"error_type": "E", "message": "m", "traceback": "t", "attempts": 2}
        )
        journal.append_done("c", 3.5)
    journal, contents = Journal.open(path, function="mod:f")
    journal.close()
    assert contents.result("a") == {"x": [1, 2]}
    assert contents.result("c") == 3.5
    assert contents.failed == {
        "b": {"error_type": "E", "message": "m", "traceback": "t", "attempts": 2}
    }
    assert contents.function == "mod:f"
    assert (contents.damaged_bytes, contents.torn_bytes) == (0, 0)


def test_later_success_supersedes_a_failure(tmp_path: Path) -> None:
    """A key that failed in one run and succeeded in the next counts as done."""
    path = tmp_path / "j"
    with Journal.open(path, function="f")[0] as journal:
        journal.append_failed(
            "k", {"error_type": "E", "message": "", "traceback": "", "attempts": 1}
        )
    with Journal.open(path, function="f")[0] as journal:
        journal.append_done("k", 1)
    contents, _ = read_journal(path)
    assert "k" in contents.done
    assert contents.failed == {}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pairs=entries, cut=st.floats(min_value=0, max_value=1))
def test_a_torn_tail_loses_only_the_torn_record(
    tmp_path: Path, pairs: list[tuple[str, Any]], cut: float
) -> None:
    """Cutting the file anywhere keeps every record before the cut and never raises."""
    path = tmp_path / "torn"
    _write(path, pairs, fsync=False)
    data = path.read_bytes()
    ends = [end for _, end, *_ in journal_module._records(data)]
    size = int(cut * len(data))
    path.write_bytes(data[:size])
    contents, good_end = read_journal(path)
    intact = sum(1 for end in ends if end <= size)
    assert contents.records == intact
    assert good_end == max([end for end in ends if end <= size], default=0)
    expected: dict[str, Any] = {}
    for (key, value), end in zip(pairs, ends[1:], strict=True):
        if end <= size:
            expected[key] = value
    assert {key: contents.result(key) for key in contents.done} == expected


def test_reopening_cuts_a_torn_record_and_appends_cleanly(tmp_path: Path) -> None:
    """After a crash mid-write, reopening trims the torn bytes; new records read back fine."""
    path = tmp_path / "j"
    _write(path, [("a", 1), ("b", 2)])
    path.write_bytes(path.read_bytes()[:-3])
    journal, contents = Journal.open(path, function="f")
    assert contents.torn_bytes > 0
    assert set(contents.done) == {"a"}
    with journal:
        journal.append_done("c", 3)
    contents, _ = read_journal(path)
    assert {k: contents.result(k) for k in contents.done} == {"a": 1, "c": 3}
    assert contents.torn_bytes == contents.damaged_bytes == 0


def test_a_damaged_record_is_skipped_and_later_ones_kept(tmp_path: Path) -> None:
    """A flipped byte inside one record loses that record only (its checksum fails)."""
    path = tmp_path / "j"
    _write(path, [("a", "x" * 50), ("b", "y" * 50), ("c", "z" * 50)])
    data = bytearray(path.read_bytes())
    data[data.index(b"y" * 50) + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    contents, _ = read_journal(path)
    assert set(contents.done) == {"a", "c"}
    assert contents.damaged_bytes > 50
    assert contents.torn_bytes == 0


def test_large_results_are_compressed_and_restored(tmp_path: Path) -> None:
    """A compressible 8 MB array takes far less room in the journal and comes back equal."""
    path = tmp_path / "j"
    array = np.zeros(1_000_000)
    array[::1000] = 1.0
    _write(path, [("map", array)])
    assert path.stat().st_size < 500_000
    contents, _ = read_journal(path)
    np.testing.assert_array_equal(contents.result("map"), array)


def test_a_second_run_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    """Two runs cannot append to one journal at once; the second gets CheckpointError."""
    path = tmp_path / "j"
    first, _ = Journal.open(path, function="f")
    with pytest.raises(CheckpointError, match="is in use by another run") as info:
        Journal.open(path, function="f")
    assert info.value.value == str(path)
    first.close()
    Journal.open(path, function="f")[0].close()


def test_unwritable_location_raises_checkpoint_error(tmp_path: Path) -> None:
    """A journal under a regular file cannot be created: CheckpointError names the path."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="could not create the task journal"):
        Journal.open(blocker / "j", function="f")


def test_group_commit_makes_records_durable_within_the_interval(tmp_path: Path) -> None:
    """With fsync on, durable_seq reaches each appended record within a commit interval or so."""
    advanced = threading.Event()
    journal, _ = Journal.open(tmp_path / "j", function="f", commit_interval=0.02)
    with journal:
        journal.set_listener(advanced.set)
        seq = journal.append_done("a", 1)
        assert advanced.wait(2.0)
        deadline = time.monotonic() + 2.0
        while journal.durable_seq < seq and time.monotonic() < deadline:
            time.sleep(0.005)
        assert journal.durable_seq >= seq


def test_without_fsync_records_count_as_durable_at_once(tmp_path: Path) -> None:
    """fsync=False trusts the page cache: durable_seq follows each append immediately."""
    journal, _ = Journal.open(tmp_path / "j", function="f", fsync=False)
    with journal:
        seq = journal.append_done("a", 1)
        assert journal.durable_seq == seq


def test_a_failing_fsync_surfaces_as_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error while syncing is not swallowed: the next call raises CheckpointError."""

    def broken_sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    journal, _ = Journal.open(tmp_path / "j", function="f")
    monkeypatch.setattr(journal_module, "_sync", broken_sync)
    journal.append_done("a", 1)
    with pytest.raises(CheckpointError, match=r"could not sync .*Input/output error"):
        journal.sync()
    with pytest.raises(CheckpointError):
        journal.close()


def _median_append_seconds(journal: Journal, count: int) -> float:
    times = []
    for index in range(count):
        started = time.perf_counter()
        journal.append_done(f"probe-{index}", index)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_append_cost_does_not_grow_with_records_already_done(tmp_path: Path) -> None:
    """Appending to a journal of 100 000 records costs about what appending to a new one does."""
    big = tmp_path / "big"
    _write(big, [(f"{i}-key", i) for i in range(100_000)], fsync=False)
    small_journal, _ = Journal.open(tmp_path / "small", function="f", resume=False)
    big_journal, contents = Journal.open(big, function="f")
    assert len(contents.done) == 100_000
    with small_journal, big_journal:
        small = _median_append_seconds(small_journal, 2000)
        large = _median_append_seconds(big_journal, 2000)
    assert large < 3 * small + 5e-6
    assert os.path.getsize(big) > 100_000 * 16


@pytest.mark.parametrize("mapped", [True, False])
def test_both_appenders_round_trip_small_large_and_many_records(
    tmp_path: Path, mapped: bool
) -> None:
    """Mapped and written journals read back the same: small, window-sized and many records."""
    path = tmp_path / "j"
    big = bytes(range(256)) * 8192  # 2 MiB: larger than a mapped window
    pairs = [(f"k{i}", i) for i in range(20_000)] + [("big", big), ("after", "x" * 5000)]
    journal, _ = Journal.open(path, function="f", resume=False, mapped=mapped)
    with journal:
        for key, value in pairs:
            journal.append_done(key, value)
    contents, good_end = read_journal(path)
    assert {key: contents.result(key) for key in contents.done} == dict(pairs)
    assert good_end == path.stat().st_size
    assert (contents.damaged_bytes, contents.torn_bytes) == (0, 0)


def test_an_open_mapped_journal_holds_its_records_and_reserved_zeros(tmp_path: Path) -> None:
    """While open, the file runs on past its records with zeros; they are not counted as torn."""
    path = tmp_path / "j"
    journal, _ = Journal.open(path, function="f", mapped=True)
    with journal:
        journal.append_done("a", 1)
        journal.append_done("b", 2)
        assert path.stat().st_size >= appender_module.WINDOW_BYTES
        contents, good_end = read_journal(path)
        assert {key: contents.result(key) for key in contents.done} == {"a": 1, "b": 2}
        assert contents.torn_bytes == 0
        assert path.read_bytes()[good_end:].count(0) == path.stat().st_size - good_end
    assert path.stat().st_size == good_end


def test_a_torn_record_before_the_reserved_zeros_counts_as_torn(tmp_path: Path) -> None:
    """A record cut short by a kill, followed by reserved zeros, is cut off and counted."""
    path = tmp_path / "j"
    _write(path, [("a", 1), ("b", "y" * 40)], fsync=False)
    data = path.read_bytes()
    path.write_bytes(data[:-10] + bytes(4096))
    contents, good_end = read_journal(path)
    assert set(contents.done) == {"a"}
    assert contents.torn_bytes == len(data) - 10 - good_end


def test_a_sigkilled_writer_leaves_every_appended_record_readable(
    tmp_path: Path, children: Any
) -> None:
    """Records copied into the mapping survive a SIGKILL of the process at once, unsynced."""
    path = tmp_path / "j"
    script = (
        "import sys, time\n"
        "from lensing_ssc.processing.runner._journal import Journal\n"
        f"journal, _ = Journal.open({str(path)!r}, function='f', fsync=False, mapped=True)\n"
        "for i in range(5000):\n"
        "    journal.append_done(f'k{i}', i * i)\n"
        "print('appended', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = children.start([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "appended"
    children.sigkill(proc)
    journal, contents = Journal.open(path, function="f")
    journal.close()
    assert {key: contents.result(key) for key in contents.done} == {
        f"k{i}": i * i for i in range(5000)
    }
    assert contents.torn_bytes == 0
    assert path.stat().st_size < appender_module.WINDOW_BYTES


def test_a_filesystem_that_cannot_reserve_space_gets_plain_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where posix_fallocate is unsupported, records are written instead, and read back."""

    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(appender_module.os, "posix_fallocate", unsupported)
    path = tmp_path / "j"
    _write(path, [("a", 1), ("b", 2)], mapped=True)
    contents, good_end = read_journal(path)
    assert {key: contents.result(key) for key in contents.done} == {"a": 1, "b": 2}
    assert good_end == path.stat().st_size


def test_a_full_disk_fails_the_append_with_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room to reserve the next window is a CheckpointError naming the journal, not a crash."""

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    journal, _ = Journal.open(tmp_path / "j", function="f", mapped=True)
    with journal:
        for index in range(10):  # fills the first window partly
            journal.append_done(f"k{index}", index)
        monkeypatch.setattr(appender_module.os, "posix_fallocate", full)
        with pytest.raises(
            CheckpointError, match=r"could not append to the task journal .*No space left"
        ):
            journal.append_done("big", os.urandom(appender_module.WINDOW_BYTES - 100))


# ---- resuming many items: an index, results read back lazily --------------------------------


def triple(index: int) -> float:
    return index * 3 + 0.5


def payload(index: int) -> bytes:
    return index.to_bytes(4, "little") * 1024  # 4 KiB, distinct per item


def _old_format_record(kind: int, key: str, body: bytes) -> bytes:
    """One record laid out by hand as the format documents it (header, kind, key, codec)."""
    head = struct.pack("<BBH", kind, 4, len(key)) + key.encode() + b"none" + body
    return struct.pack("<4sQI", b"LSJ\x01", len(head), zlib.crc32(head)) + head


def test_a_journal_written_in_the_current_format_resumes(tmp_path: Path) -> None:
    """A journal laid out byte by byte in today's record format restores its results."""
    path = tmp_path / "j"
    keys = item_keys([10, 20, 30], None)
    function = keys_module.function_identity(triple)
    records = [_old_format_record(1, "", json.dumps({"function": function}).encode())]
    for key, value in zip(keys, [1, 2, 3], strict=True):
        records.append(_old_format_record(2, key, pickle.dumps(value)))
    path.write_bytes(b"".join(records))
    result = run_map(triple, [10, 20, 30], journal=path)
    assert (result.skipped, result.completed) == (3, 0)
    assert list(result.results) == [1, 2, 3]


def test_resume_of_many_items_restores_every_result_in_order(tmp_path: Path) -> None:
    """100 000 items resumed from the journal come back exact, in input order, none rerun."""
    path = tmp_path / "j"
    count = 100_000
    run_map(triple, range(count), journal=path, fsync=False)
    result = run_map(triple, range(count), journal=path, fsync=False)
    assert (result.skipped, result.completed, len(result.results)) == (count, 0, count)
    assert result.results.restored == count  # type: ignore[attr-defined]
    assert all(value == index * 3 + 0.5 for index, value in enumerate(result.results))
    assert result.results[-1] == (count - 1) * 3 + 0.5
    assert result.results[5:8] == [15.5, 18.5, 21.5]


@pytest.mark.slow
def test_resume_of_a_million_items_takes_under_five_seconds(tmp_path: Path) -> None:
    """A run of 10**6 completed items resumes (keys, index, restore) within 5 s."""
    path = tmp_path / "j"
    count = 1_000_000
    run_map(triple, range(count), journal=path, fsync=False)
    started = time.perf_counter()
    result = run_map(triple, range(count), journal=path, fsync=False)
    assert time.perf_counter() - started < 5.0
    assert result.skipped == count
    assert sum(1 for _ in result.results) == count


def test_resume_memory_is_an_index_not_the_results(tmp_path: Path) -> None:
    """Resuming 10 000 items of 4 KiB grows memory by under 1 KB per item, not by the results."""
    path = tmp_path / "j"
    count = 10_000
    items = list(range(count))
    run_map(payload, items, journal=path, fsync=False)
    assert path.stat().st_size > count * 4096
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = run_map(payload, items, journal=path, fsync=False)
        resume_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        matched = sum(value == payload(index) for index, value in enumerate(result.results))
        iterate_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert matched == result.skipped == count
    # The run's own keys (~90 B each, also in MapResult.keys) and an 8-byte offset per item
    # come to ~130 B per item; a dict of the journal's keys besides would add ~140 B, and
    # holding the results more than 4 KiB.
    assert resume_peak < 200 * count
    assert iterate_peak < 2 * READ_BLOCK + 64 * 4096  # a block and a few results at a time


def test_an_index_read_with_the_run_keys_is_an_offset_per_item(tmp_path: Path) -> None:
    """Indexing for a run's keys holds 8 bytes per item, whatever the results' size; keys of
    a journal in another order than the items cost a key-to-item dict, freed afterwards."""
    path = tmp_path / "j"
    count = 20_000
    run_map(payload, range(count), journal=path, fsync=False)
    keys = item_keys(list(range(count)), None)
    peaks = []
    tracemalloc.start()
    try:
        for order in (keys, keys[::-1]):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            contents, _ = read_journal(path, order)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            kept = tracemalloc.get_traced_memory()[0] - base
            assert contents.offsets is not None
            assert contents.offsets.count(0) == 0
            assert contents.done == {}
            del contents
    finally:
        tracemalloc.stop()
    in_order, reversed_order = peaks
    assert in_order < 10 * count  # the offsets array (8 B an item), no per-key objects
    assert reversed_order < 100 * count  # plus the dict of the run's keys (~56 B an item)
    assert kept < 10 * count


def _reference_index(data: bytes) -> dict[str, Any]:
    """What the record-by-record generator finds: the definition the scan must meet."""
    done: dict[str, int] = {}
    failed: dict[str, Any] = {}
    function = None
    records = covered = good_end = 0
    for start, end, kind, key, _, body in journal_module._records(data):
        records += 1
        covered += end - start
        good_end = end
        if kind == 2:
            done[key] = start
            failed.pop(key, None)
        elif kind == 3:
            failed[key] = json.loads(bytes(body))
        else:
            function = json.loads(bytes(body))["function"]
    return {
        "done": done,
        "failed": failed,
        "function": function,
        "records": records,
        "damaged_bytes": good_end - covered,
        "good_end": good_end,
    }


damage = st.lists(
    st.tuples(st.floats(min_value=0, max_value=1), st.sampled_from(["flip", "magic", "zeros"])),
    max_size=4,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    runs=st.lists(
        st.lists(st.tuples(st.text(min_size=1, max_size=8), values, st.booleans()), max_size=12),
        min_size=1,
        max_size=3,
    ),
    hits=damage,
    reverse=st.booleans(),
)
def test_the_scan_indexes_exactly_what_the_record_generator_finds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runs: list[list[tuple[str, Any, bool]]],
    hits: list[tuple[float, str]],
    reverse: bool,
) -> None:
    """Over damaged, torn and resynchronised journals, the index matches :func:`_records`:
    done offsets (per key, and per item of a run's keys in either order), failures, the
    function, the record count, damaged bytes and where valid data ends."""
    monkeypatch.setattr(records_module, "_DROP_EVERY", 64)  # many windows, pages dropped
    path = tmp_path / "j"
    path.unlink(missing_ok=True)
    for run in runs:
        with Journal.open(path, function="m:f", fsync=False)[0] as journal:
            for key, value, failed in run:
                if failed:
                    journal.append_failed(key, {"error_type": "E", "message": key})
                else:
                    journal.append_done(key, value)
    data = bytearray(path.read_bytes())
    for where, kind in hits:
        at = int(where * len(data))
        if kind == "flip" and at < len(data):
            data[at] ^= 0x5A
        elif kind == "magic":
            data[at:at] = b"LSJ\x01"
        else:
            data[at : at + 12] = bytes(12)
    path.write_bytes(bytes(data))
    expected = _reference_index(bytes(data))
    contents, good_end = read_journal(path)
    assert {
        "done": contents.done,
        "failed": contents.failed,
        "function": contents.function,
        "records": contents.records,
        "damaged_bytes": contents.damaged_bytes,
        "good_end": good_end,
    } == expected
    keys = list(dict.fromkeys([key for run in runs for key, _, _ in run] + ["not recorded"]))
    if reverse:
        keys.reverse()
    for_run, _ = read_journal(path, keys)
    assert for_run.offsets is not None
    assert list(for_run.offsets) == [expected["done"].get(key, -1) + 1 for key in keys]
    assert (for_run.failed, for_run.records) == (expected["failed"], expected["records"])


def test_a_journal_in_another_order_than_the_items_restores_every_item(tmp_path: Path) -> None:
    """Items given in another order than their records were written are all restored."""
    path = tmp_path / "j"
    run_map(triple, range(500), journal=path, key=str)
    shuffled = [*range(250, 500), *range(250)]
    result = run_map(triple, shuffled, journal=path, key=str)
    assert (result.skipped, result.completed) == (500, 0)
    assert list(result.results) == [triple(index) for index in shuffled]


@pytest.mark.parametrize("algorithm", ["xxh3_128", "blake2b"])
def test_default_keys_are_position_and_content_hash_of_each_pickle(
    monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """Default keys are ``<position>-<hash_bytes of the item's pickle>``, with either
    algorithm, so journals written before keys were computed in bulk still resume."""
    if algorithm == "xxh3_128":
        pytest.importorskip("xxhash", reason="xxh3 comes with the fast extra")
    monkeypatch.setattr(keys_module, "default_hash_algorithm", lambda: algorithm)
    items = [10, "text", (1, 2.5), {"a": [1, 2]}, None]
    blobs = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
    digests = [hash_bytes(blob, algorithm=algorithm).partition(":")[2] for blob in blobs]
    assert item_keys(items, None) == [f"{i}-{digest}" for i, digest in enumerate(digests)]


def test_an_unpicklable_item_among_many_is_named_by_its_position() -> None:
    """Without ``key=``, the first item that cannot be pickled is named by its position."""
    with pytest.raises(ConfigError, match="item 2 cannot be pickled") as info:
        item_keys([1, 2, threading.Lock(), 4], None)
    assert info.value.field == "key"


def test_a_damaged_record_among_many_is_recomputed_on_resume(tmp_path: Path) -> None:
    """A flipped byte in one record mid-journal costs that item only: it is computed again."""
    path = tmp_path / "j"
    count = 2000
    run_map(payload, range(count), journal=path, fsync=False)
    data = bytearray(path.read_bytes())
    data[data.index(payload(1000)) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run_map(payload, range(count), journal=path, fsync=False)
    assert (result.skipped, result.completed) == (count - 1, 1)
    assert list(result.results) == [payload(index) for index in range(count)]


def test_restored_results_act_as_a_list(tmp_path: Path) -> None:
    """The lazy view of restored results indexes, slices, compares, zips and pickles as a list."""
    path = tmp_path / "j"
    run_map(triple, range(10), journal=path)
    result = run_map(triple, range(12), journal=path)  # 10 restored, 2 computed now
    expected = [triple(index) for index in range(12)]
    view = result.results
    assert (result.skipped, result.completed) == (10, 2)
    assert view == expected
    assert expected == view
    assert view[-1] == expected[-1]
    assert view[3:11:2] == expected[3:11:2]
    assert [a for a, _ in zip(view, range(12), strict=True)] == expected
    assert pickle.loads(pickle.dumps(view)) == expected
    assert repr(view) == repr(expected)
    with pytest.raises(IndexError, match="out of range for 12 results"):
        view[12]


def test_reading_results_from_a_journal_emptied_since_raises(tmp_path: Path) -> None:
    """Restored results whose journal was emptied since raise CheckpointError with a hint."""
    path = tmp_path / "j"
    run_map(triple, range(5), journal=path)
    restored = run_map(triple, range(5), journal=path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="changed after it was read") as info:
        list(restored.results)
    assert info.value.value == str(path)
    assert "resume=False" in (info.value.hint or "")


# -- locks and the owner lease --------------------------------------------------------

_HOLDER = """
import sys
from pathlib import Path
from lensing_ssc.processing.runner._journal import Journal
journal, _ = Journal.open(Path(sys.argv[1]), function="f")
print("ready", flush=True)
sys.stdin.readline()
journal.close()
"""


def _no_flock(code: int) -> Any:
    def flock(fd: int, operation: int) -> None:
        raise OSError(code, os.strerror(code))

    return flock


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_filesystem_without_flock_still_opens_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """flock raising ENOSYS/ENOLCK/EOPNOTSUPP: the journal opens, records and reopens."""
    monkeypatch.setattr(journal_module.fcntl, "flock", _no_flock(code))
    path = tmp_path / "j"
    journal, _ = Journal.open(path, function="f")
    assert path.with_name("j.owner").exists()  # guarded by the lease instead
    journal.append_done("a", 1)
    journal.close()
    assert not path.with_name("j.owner").exists()
    again, contents = Journal.open(path, function="f")
    again.close()
    assert contents.result("a") == 1


def test_another_error_from_flock_names_the_cause_not_a_missing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock failing otherwise (EIO) raises CheckpointError without the 'exists' hint."""
    monkeypatch.setattr(journal_module.fcntl, "flock", _no_flock(errno.EIO))
    with pytest.raises(CheckpointError, match="could not lock the task journal") as info:
        Journal.open(tmp_path / "j", function="f")
    assert "exists" not in info.value.hint


@pytest.mark.parametrize("flock", [True, False])
def test_a_second_driver_process_is_refused_with_the_others_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flock: bool
) -> None:
    """A journal held by another process is refused, naming its pid, with or without flock."""
    if not flock:
        monkeypatch.setattr(journal_module.fcntl, "flock", _no_flock(errno.ENOSYS))
    path = tmp_path / "j"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(CheckpointError, match=f"in use by another run: pid {holder.pid} on"):
            Journal.open(path, function="f")
    finally:
        holder.communicate("\n", timeout=30)
    Journal.open(path, function="f")[0].close()  # free once the holder closed


def _fake_lease(path: Path, *, heartbeat: float, beat: float = 10.0) -> None:
    record = {
        "host": "node-b",
        "pid": 4242,
        "pid_started": 0.0,
        "token": "feedfacefeedface",
        "started": heartbeat - 100,
        "heartbeat": heartbeat,
        "beat": beat,
    }
    path.with_name(path.name + ".owner").write_text(json.dumps(record))


def test_a_stale_lease_of_another_host_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease from node-b with a heartbeat four beats old is taken over, and logged."""
    path = tmp_path / "j"
    _fake_lease(path, heartbeat=time.time() - 40.0)
    journal, _ = Journal.open(path, function="f")
    journal.close()
    assert "taking it over from the driver pid 4242 on node-b" in caplog.text


def test_a_fresh_lease_of_another_host_is_refused(tmp_path: Path) -> None:
    """A lease from node-b renewed just now refuses this driver, naming node-b and its pid."""
    path = tmp_path / "j"
    _fake_lease(path, heartbeat=time.time())
    with pytest.raises(CheckpointError, match="pid 4242 on node-b") as info:
        Journal.open(path, function="f")
    assert "heartbeat is 30 s old" in info.value.hint


def test_the_commit_thread_renews_the_lease_and_a_taken_lease_fails_the_run(
    tmp_path: Path,
) -> None:
    """Heartbeats advance while open; a driver whose lease was taken over gets EBUSY."""
    path = tmp_path / "j"
    owner = path.with_name("j.owner")
    journal, _ = Journal.open(path, function="f", fsync=False, owner_beat=0.02, host="node-a")
    first = json.loads(owner.read_text())["heartbeat"]
    deadline = time.monotonic() + 10
    pause = threading.Event()  # never set: a bounded pause between looks
    while json.loads(owner.read_text())["heartbeat"] == first:
        assert time.monotonic() < deadline, "the heartbeat never advanced"
        pause.wait(0.01)
    _fake_lease(path, heartbeat=time.time())  # another driver took it over meanwhile

    def keep_appending() -> None:
        while time.monotonic() < deadline:
            journal.append_done("a", 1)
            pause.wait(0.01)

    with pytest.raises(CheckpointError, match="another driver took this journal over"):
        keep_appending()
    with pytest.raises(CheckpointError):
        journal.close()
    assert json.loads(owner.read_text())["host"] == "node-b"  # the new owner's lease stays
