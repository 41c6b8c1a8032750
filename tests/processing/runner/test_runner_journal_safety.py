"""What a journal path may hold: another function's journal, a file that is no journal, and
damaged or crafted records, none of which may end in anything but the package's errors."""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ConfigError, LensingSSCError
from lensing_ssc.processing.runner import TaskRunner, read_journal_summary, run_map

_MAGIC = b"LSJ\x01"
_KEYS = ["1", "2", "3"]


def square(x: int) -> int:
    return x * x


def cube(x: int) -> int:
    return x * x * x


def test_a_journal_of_another_function_is_refused_naming_both(tmp_path: Path) -> None:
    """Reusing a journal with another function raises, naming both; resume=False starts over."""
    journal = tmp_path / "j"
    run_map(square, [1, 2], journal=journal)
    with pytest.raises(ConfigError) as info:
        run_map(cube, [1, 2], journal=journal)
    message = str(info.value)
    assert "test_runner_journal_safety:square" in message
    assert "test_runner_journal_safety:cube" in message
    assert info.value.field == "journal"
    with TaskRunner() as runner:
        fresh = runner.map(cube, [1, 2], journal=journal, resume=False)
    assert (fresh.results, fresh.skipped) == ([1, 8], 0)


def test_a_journal_of_two_lambdas_is_refused(tmp_path: Path) -> None:
    """Two lambdas share a qualified name; their code tells them apart."""
    journal = tmp_path / "j"
    run_map(lambda x: x + 1, [1, 2], journal=journal)
    with pytest.raises(ConfigError, match="<lambda>"):
        run_map(lambda x: x - 1, [1, 2], journal=journal)


@pytest.mark.parametrize("resume", [True, False])
def test_a_file_that_is_no_journal_is_refused_and_kept(tmp_path: Path, resume: bool) -> None:
    """journal='results.csv' naming a CSV raises and leaves the CSV as it was."""
    csv = tmp_path / "results.csv"
    csv.write_text("key,value\n1,1\n2,4\n")
    with TaskRunner() as runner, pytest.raises(ConfigError, match="not a task journal") as info:
        runner.map(square, [1, 2], journal=csv, resume=resume)
    assert info.value.field == "journal"
    assert csv.read_text() == "key,value\n1,1\n2,4\n"


def test_an_empty_file_and_a_journal_with_a_damaged_start_are_journals(tmp_path: Path) -> None:
    """An empty file is taken as a new journal; a journal whose first byte flipped resumes."""
    empty = tmp_path / "empty.journal"
    empty.touch()
    assert run_map(square, [1, 2], journal=empty).results == [1, 4]
    damaged = tmp_path / "damaged.journal"
    run_map(square, [1, 2, 3], journal=damaged, key=str)
    data = bytearray(damaged.read_bytes())
    data[0] ^= 0xFF
    damaged.write_bytes(bytes(data))
    again = run_map(square, [1, 2, 3], journal=damaged, key=str)
    assert (again.results, again.skipped) == ([1, 4, 9], 3)


def _record(kind: int, key: bytes, codec: bytes, body: bytes) -> bytes:
    """One journal record with a valid checksum around whatever it holds."""
    head = struct.pack("<BBH", kind, len(codec), len(key)) + key + codec
    payload = head + body
    return struct.pack("<4sQI", _MAGIC, len(payload), zlib.crc32(payload)) + payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
failure_fields = st.fixed_dictionaries(
    {},
    optional={
        "error_type": json_values,
        "message": json_values,
        "traceback": json_values,
        "attempts": json_values,
        "other": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=40),
    json_values.map(lambda value: json.dumps(value).encode()),
    failure_fields.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"function": json_values}).map(lambda v: json.dumps(v).encode()),
)
crafted_records = st.builds(
    _record,
    st.integers(0, 255).filter(lambda kind: kind in (0, 1, 2, 3, 4) or kind > 200),
    st.one_of(st.sampled_from([k.encode() for k in _KEYS]), st.binary(max_size=6)),
    st.sampled_from([b"none", b"zstd", b"gzip", b"lz4", b"\xff", b""]),
    bodies,
)


def _check_reading(path: Path) -> None:
    """Index, summarise and resume from ``path``: only the package's errors may escape."""
    with contextlib.suppress(LensingSSCError):
        read_journal_summary(path)
    try:
        result = run_map(square, [1, 2, 3], journal=path, key=str, fsync=False)
        list(result.results)
        with TaskRunner(fsync=False) as runner:
            again = runner.map(square, [1, 2, 3], journal=path, key=str, rerun_failed=False)
        list(again.results)
        [failure.describe() for failure in again.failures]
    except LensingSSCError:
        pass


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(crafted_records, max_size=5), tail=st.binary(max_size=20))
def test_crafted_records_with_valid_checksums_raise_only_package_errors(
    tmp_path: Path, records: list[bytes], tail: bytes
) -> None:
    """Records whose checksum holds but whose fields are nonsense never escape as a crash."""
    path = tmp_path / "crafted.journal"
    path.write_bytes(b"".join(records) + tail)
    _check_reading(path)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=8),
    cut=st.integers(0, 10**6),
)
def test_bit_flips_and_cuts_of_a_real_journal_raise_only_package_errors(
    tmp_path: Path, flips: list[tuple[int, int]], cut: int
) -> None:
    """A real journal with flipped bits and a cut end is read, resumed or refused: no crash."""
    path = tmp_path / "flipped.journal"
    path.unlink(missing_ok=True)
    run_map(square, [1, 2, 3], journal=path, key=str, fsync=False)
    data = bytearray(path.read_bytes())
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    path.write_bytes(bytes(data[: max(1, cut % (len(data) + 1))]))
    _check_reading(path)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200))
def test_random_bytes_as_a_journal_raise_only_package_errors(tmp_path: Path, data: bytes) -> None:
    """Any bytes at all in a journal's place: read or refused, never a crash."""
    path = tmp_path / "random.journal"
    path.write_bytes(_MAGIC + data)
    _check_reading(path)


def test_a_journal_planted_as_a_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    """A link at the journal's path (a shared run directory) is never followed into its target."""
    target = tmp_path / "someone_elses_file"
    target.write_bytes(b"")  # empty: nothing marks it as data to keep
    (tmp_path / "tasks").mkdir()
    journal = tmp_path / "tasks" / "abs.journal"
    journal.symlink_to(target)
    with pytest.raises(LensingSSCError):
        run_map(abs, [1, -2, 3], journal=journal)
    assert target.read_bytes() == b""
    assert journal.is_symlink()
