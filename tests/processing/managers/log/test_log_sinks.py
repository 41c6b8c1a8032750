"""The log file under a full disk and a deleted file or directory: valid lines, honest counts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._manager import list_backups
from lensing_ssc.processing.managers.log._sinks import Archiver

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE and SIGXFSZ")


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


def _records(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` parsed; fails on a half or glued line."""
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


#: A process whose files may not pass 4000 bytes (a real EFBIG, as a full disk gives ENOSPC):
#: 100 records of ~120 bytes in batches of 7, then the limit is lifted ("space freed") and
#: 10 more are logged. ``argv[2] == "no-truncate"`` makes truncation fail as well.
FULL_DISK_RUN = """
import json, os, resource, signal, sys
from lensing_ssc.processing.managers import LogManager

path = sys.argv[1]
if sys.argv[2] == "no-truncate":
    def refuse(fd, length):
        raise OSError(5, "Input/output error")
    os.ftruncate = refuse
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
with LogManager(
    file_path=path, format_type="json", console=False, max_bytes=None, flush_interval=60
) as log_mgr:
    log = log_mgr.get_logger("disk")
    resource.setrlimit(resource.RLIMIT_FSIZE, (4000, hard))
    for i in range(100):
        log.info("record", extra={"i": i, "pad": "x" * 50})
        if i % 7 == 6:
            log_mgr.flush()
    log_mgr.flush()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    for i in range(100, 110):
        log.info("record", extra={"i": i, "pad": "x" * 50})
    log_mgr.flush()
    stats = log_mgr.get_stats()
print(json.dumps({"written": stats.written, "dropped": stats.dropped}))
"""


def _fill_the_disk(path: Path, mode: str) -> tuple[dict[str, int], str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FULL_DISK_RUN), str(path), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@posix_only
def test_full_disk_leaves_whole_lines_and_counts_what_was_lost(tmp_path: Path) -> None:
    """A write cut short by the file-size limit is truncated back: every line parses, the
    records after the space comes back are on their own lines, and written + dropped are
    exactly the records in the file and the records not in it."""
    path = tmp_path / "run.log"
    counts, err = _fill_the_disk(path, "truncate")
    numbers = [record["i"] for record in _records(path)]
    kept = len(numbers) - 10
    assert 0 < kept < 100
    assert numbers == [*range(kept), *range(100, 110)]
    assert path.stat().st_size <= 4000 + 10 * 200
    assert counts == {"written": len(numbers), "dropped": 110 - len(numbers)}
    assert err.count("File too large") == 1


@posix_only
def test_full_disk_without_truncation_starts_the_next_record_on_a_new_line(
    tmp_path: Path,
) -> None:
    """When the torn record cannot be cut off, it stays alone on its line: the next record
    starts a new line, and only that one line of the file does not parse."""
    path = tmp_path / "run.log"
    counts, _ = _fill_the_disk(path, "no-truncate")
    lines = [line for line in path.read_bytes().split(b"\n") if line]
    torn = []
    numbers = []
    for line in lines:
        try:
            numbers.append(json.loads(line)["i"])
        except json.JSONDecodeError:
            torn.append(line)
    assert len(torn) == 1
    assert torn[0].startswith(b"{")
    kept = len(numbers) - 10
    assert 0 < kept < 100
    assert numbers == [*range(kept), *range(100, 110)]
    assert counts == {"written": len(numbers), "dropped": 110 - len(numbers)}


def test_deleted_log_file_is_made_again(tmp_path: Path) -> None:
    """Records logged after the file is deleted go to a new file at the same path."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log = log_mgr.get_logger("gone")
        for i in range(5):
            log.info("before", extra={"i": i})
        log_mgr.flush()
        path.unlink()
        for i in range(5, 12):
            log.info("after", extra={"i": i})
        log_mgr.flush()
        stats = log_mgr.get_stats()
    assert [record["i"] for record in _records(path)] == list(range(5, 12))
    assert (stats.written, stats.dropped) == (12, 0)


def test_log_file_moved_away_is_followed_by_a_new_one(tmp_path: Path) -> None:
    """A file renamed away (as logrotate does) keeps its records; later ones start a new file."""
    path = tmp_path / "run.log"
    moved = tmp_path / "run.log.1"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log = log_mgr.get_logger("moved")
        for i in range(3):
            log.info("before", extra={"i": i})
        log_mgr.flush()
        path.rename(moved)
        for i in range(3, 6):
            log.info("after", extra={"i": i})
    assert [record["i"] for record in _records(moved)] == [0, 1, 2]
    assert [record["i"] for record in _records(path)] == [3, 4, 5]


def test_deleted_log_directory_is_made_again(tmp_path: Path) -> None:
    """Deleting the whole logs/ directory: it is created again and later records reach it."""
    path = tmp_path / "logs" / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log = log_mgr.get_logger("gone")
        log.info("before", extra={"i": 0})
        log_mgr.flush()
        shutil.rmtree(path.parent)
        for i in range(1, 4):
            log.info("after", extra={"i": i})
        log_mgr.flush()
        assert log_mgr.get_stats().dropped == 0
    assert [record["i"] for record in _records(path)] == [1, 2, 3]


def test_log_directory_that_cannot_be_made_again_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With logs/ replaced by a file, stderr says once that records are lost, they are counted
    as dropped, and logging resumes once the directory can be made again."""
    path = tmp_path / "logs" / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log = log_mgr.get_logger("gone")
        log.info("before", extra={"i": 0})
        log_mgr.flush()
        shutil.rmtree(path.parent)
        path.parent.write_text("not a directory")
        for i in range(1, 4):
            log.info("lost", extra={"i": i})
            log_mgr.flush()
        stats = log_mgr.get_stats()
        path.parent.unlink()
        log.info("back", extra={"i": 4})
    err = capsys.readouterr().err
    assert err.count("lensing_ssc: logging to the log file") == 1
    assert str(path) in err
    assert (stats.written, stats.dropped) == (1, 3)
    assert [record["i"] for record in _records(path)] == [4]


#: A rotating log whose first file holds 1000 bytes: the batch's first record fits there,
#: the rotation starts a new file, and the file-size limit (1200) stops that one part-way.
ROTATING_FULL_DISK_RUN = """
import json, resource, signal, sys
from pathlib import Path
from lensing_ssc.processing.managers import LogManager

path = Path(sys.argv[1])
path.write_bytes(b"x" * 999 + b"\\n")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
with LogManager(
    file_path=path, format_type="json", console=False, max_bytes=1250, backup_count=10,
    compress_rotated=False, flush_interval=60,
) as log_mgr:
    log = log_mgr.get_logger("disk")
    resource.setrlimit(resource.RLIMIT_FSIZE, (1200, hard))
    for i in range(20):
        log.info("record", extra={"i": i, "pad": "x" * 40})
    log_mgr.flush()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    stats = log_mgr.get_stats()
print(json.dumps({"written": stats.written, "dropped": stats.dropped}))
"""


@posix_only
def test_records_before_a_rotation_count_as_written_when_the_next_file_fills(
    tmp_path: Path,
) -> None:
    """A batch that rotates and then meets a full disk counts the records that reached
    either file as written, and only the rest as dropped."""
    path = tmp_path / "run.log"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ROTATING_FULL_DISK_RUN), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (backup,) = list_backups(path)
    first = backup.read_bytes().split(b"\n")[1:-1]
    numbers = [record["i"] for record in _records(path)]
    assert [json.loads(line)["i"] for line in first] == [0]
    assert numbers == list(range(1, len(numbers) + 1))
    assert json.loads(done.stdout) == {"written": 1 + len(numbers), "dropped": 19 - len(numbers)}


def test_archiver_round_survives_its_directory_replaced_by_a_file(tmp_path: Path) -> None:
    """The archiver's round over a logs/ directory that became a file finds no rotated files
    and reports nothing, instead of ending its thread with NotADirectoryError."""
    reports: list[str] = []
    base = tmp_path / "logs" / "run.log"
    base.parent.mkdir()
    archiver = Archiver(
        base,
        compress=True,
        backup_count=1,
        retention_days=1,
        report=lambda what, exc: reports.append(what),
    )
    base.parent.rmdir()
    base.parent.write_text("not a directory")
    archiver.process()
    assert list_backups(base) == []
    assert reports == []


def test_a_log_file_planted_as_a_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    """A link at the log file's path (a shared run directory) is never followed."""
    from lensing_ssc.core.base.exceptions import LoggingError

    target = tmp_path / "someone_elses_file"
    target.write_text("precious\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").symlink_to(target)
    with (
        pytest.raises(LoggingError, match="symbolic link"),
        LogManager(file_path=tmp_path / "logs" / "run.log", console=False) as logs,
    ):
        logs.get_logger("planted").warning("must not reach the target")
    assert target.read_text() == "precious\n"
