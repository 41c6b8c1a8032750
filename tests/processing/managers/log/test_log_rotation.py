"""Size rotation, gzip archives off the writer's path, pruning by count and by age."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log import _sinks as _log_sinks
from lensing_ssc.processing.managers.log._manager import list_backups


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


def _read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def _numbers(paths: list[Path]) -> list[int]:
    return [json.loads(line)["i"] for p in paths for line in _read(p).splitlines()]


def _log_numbers(log_mgr: LogManager, n: int) -> None:
    log = log_mgr.get_logger("rot")
    for i in range(n):
        log.info("record", extra={"i": i})


def test_rotation_keeps_every_record_once_in_order(tmp_path: Path) -> None:
    """Rotating at 2 kB: no file passes the limit, and the files hold 0..n-1 once, in order."""
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base,
        format_type="json",
        console=False,
        max_bytes=2000,
        backup_count=1000,
        flush_interval=0.01,
    ) as log_mgr:
        _log_numbers(log_mgr, 600)
    backups = list_backups(base)
    assert len(backups) >= 10
    assert all(p.suffix == ".gz" for p in backups)
    assert all(len(_read(p)) <= 2000 for p in [*backups, base])
    assert _numbers([*backups, base]) == list(range(600))
    assert log_mgr.get_stats().rotations == len(backups)


def test_backup_names_are_timestamps(tmp_path: Path) -> None:
    """Rotated files are named <name>.<UTC time>[-n].gz and sort oldest first."""
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=300, backup_count=1000
    ) as log_mgr:
        _log_numbers(log_mgr, 40)
    names = [p.name for p in list_backups(base)]
    assert names
    assert all(re.fullmatch(r"run\.log\.\d{8}T\d{6}\.\d{6}Z(-\d+)?\.gz", n) for n in names)
    assert _numbers([*list_backups(base), base]) == list(range(40))


def test_backup_count_keeps_the_newest(tmp_path: Path) -> None:
    """With backup_count=3, the three newest rotated files survive and the oldest go."""
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=1000, backup_count=3
    ) as log_mgr:
        _log_numbers(log_mgr, 400)
    backups = list_backups(base)
    assert len(backups) == 3
    numbers = _numbers([*backups, base])
    assert numbers == list(range(numbers[0], 400))
    assert numbers[0] > 0


def test_compression_runs_on_the_archiver_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotated files are gzipped by lensing_ssc-log-archiver, not by the writer or caller."""
    threads: list[str] = []
    real_open = gzip.open

    def spy_open(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return real_open(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(_log_sinks.gzip, "open", spy_open)
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=500, backup_count=100
    ) as log_mgr:
        _log_numbers(log_mgr, 30)
        log_mgr.flush()
        deadline = time.monotonic() + 10
        while any(p.suffix != ".gz" for p in list_backups(base)) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert threads
    assert set(threads) == {"lensing_ssc-log-archiver"}


def test_uncompressed_backups_when_asked(tmp_path: Path) -> None:
    """compress_rotated=False keeps plain rotated files."""
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base,
        format_type="json",
        console=False,
        max_bytes=500,
        backup_count=100,
        compress_rotated=False,
    ) as log_mgr:
        _log_numbers(log_mgr, 30)
    backups = list_backups(base)
    assert backups
    assert not any(p.suffix == ".gz" for p in backups)
    assert _numbers([*backups, base]) == list(range(30))


def test_backup_count_zero_never_rotates(tmp_path: Path) -> None:
    """backup_count=0 turns rotation off, as in the stdlib: one growing file."""
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=500, backup_count=0
    ) as log_mgr:
        _log_numbers(log_mgr, 30)
    assert list_backups(base) == []
    assert base.stat().st_size > 500


def _fake_backup(base: Path, stamp: str, age_days: float, *, gz: bool = True) -> Path:
    path = base.with_name(f"{base.name}.{stamp}" + (".gz" if gz else ""))
    data = b'{"i":-1}\n'
    path.write_bytes(gzip.compress(data) if gz else data)
    old = time.time() - age_days * 86_400
    os.utime(path, (old, old))
    return path


def test_retention_deletes_old_backups(tmp_path: Path) -> None:
    """retention_days=1 deletes rotated files older than a day, keeps newer ones and the rest."""
    base = tmp_path / "run.log"
    old = _fake_backup(base, "20200101T000000.000000Z", age_days=30)
    recent = _fake_backup(base, "20200102T000000.000000Z", age_days=0.1)
    unrelated = tmp_path / "run.old.log"
    unrelated.write_text("keep me")
    os.utime(unrelated, (0, 0))
    with LogManager(file_path=base, console=False, retention_days=1):
        pass
    assert not old.exists()
    assert recent.exists()
    assert unrelated.exists()


def test_leftovers_of_a_crash_are_finished(tmp_path: Path) -> None:
    """A raw rotated file and a half-written archive from a killed run are tidied at start."""
    base = tmp_path / "run.log"
    raw = _fake_backup(base, "20200101T000000.000000Z", age_days=0, gz=False)
    stale = raw.with_name(raw.name + ".gz.tmp")
    stale.write_bytes(b"partial")
    with LogManager(file_path=base, console=False):
        pass
    assert not raw.exists()
    assert not stale.exists()
    assert gzip.decompress(raw.with_name(raw.name + ".gz").read_bytes()) == b'{"i":-1}\n'


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    """A second run appends to the log file and counts its size for rotation."""
    base = tmp_path / "run.log"
    base.write_bytes(b"x" * 900 + b"\n")
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=1000, backup_count=10
    ) as log_mgr:
        _log_numbers(log_mgr, 5)
    (backup,) = list_backups(base)
    assert _read(backup) == b"x" * 900 + b"\n"
    assert _numbers([base]) == list(range(5))
