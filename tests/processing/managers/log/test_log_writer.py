"""The asynchronous path: callers never format or wait, every record is written exactly once."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


class SlowHandler(logging.Handler):
    """A stdlib handler that takes ``delay`` seconds per record (a slow disk, a network)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(self.delay)
        self.messages.append(record.getMessage())


class FailingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise OSError(28, "No space left on device")


def test_formatting_happens_on_the_writer_thread(tmp_path: Path) -> None:
    """Extras are rendered by the lensing_ssc-log-writer thread, not by the caller."""
    rendered_on: list[str] = []

    class Probe:
        def __str__(self) -> str:
            rendered_on.append(threading.current_thread().name)
            return "probe"

    with LogManager(
        file_path=tmp_path / "run.log", format_type="json", console=False, flush_interval=60
    ) as log_mgr:
        log_mgr.get_logger("w").info("with probe", extra={"probe": Probe()})
        assert rendered_on == []
        log_mgr.flush()
    assert rendered_on == [threading.current_thread().name]  # flush drains on the caller
    rendered_on.clear()
    with LogManager(
        file_path=tmp_path / "run2.log", format_type="json", console=False, flush_interval=0.01
    ) as log_mgr:
        log_mgr.get_logger("w").info("with probe", extra={"probe": Probe()})
        deadline = time.monotonic() + 5
        while not rendered_on and time.monotonic() < deadline:
            time.sleep(0.01)
    assert rendered_on == ["lensing_ssc-log-writer"]


def test_caller_never_waits_for_a_slow_sink(tmp_path: Path) -> None:
    """With a sink taking 20 ms per record, 50 calls return at once and all are written."""
    slow = SlowHandler(0.02)
    with LogManager(console=False) as log_mgr:
        log_mgr.add_handler(slow)
        log = log_mgr.get_logger("w")
        start = time.perf_counter()
        for i in range(50):
            log.info("record %d", i)
        elapsed = time.perf_counter() - start
    assert elapsed < 0.25  # the sink alone needs 1 s
    assert slow.messages == [f"record {i}" for i in range(50)]


def test_flush_writes_everything_logged_before(tmp_path: Path) -> None:
    """After flush() returns, every earlier record is in the file, even with a lazy writer."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False, flush_interval=60) as log_mgr:
        log = log_mgr.get_logger("w")
        for i in range(1000):
            log.info("record %d", i)
        log_mgr.flush()
        assert len(path.read_text().splitlines()) == 1000


def test_full_queue_makes_callers_wait_instead_of_dropping(tmp_path: Path) -> None:
    """A queue of 8 in front of a slow sink loses nothing: callers wait for room."""
    slow = SlowHandler(0.002)
    with LogManager(console=False, queue_size=8) as log_mgr:
        log_mgr.add_handler(slow)
        log = log_mgr.get_logger("w")
        for i in range(200):
            log.info("record %d", i)
            assert log_mgr.get_stats().queued <= 9  # the record just added, at most
    assert slow.messages == [f"record {i}" for i in range(200)]
    assert log_mgr.get_stats().dropped == 0


def test_failing_handler_reported_once_never_raises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler that always fails is reported once on stderr, counted, and the file is fine."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False) as log_mgr:
        log_mgr.add_handler(FailingHandler())
        log = log_mgr.get_logger("w")
        for i in range(3):
            log.warning("record %d", i)
            log_mgr.flush()
        errors = log_mgr.get_stats().errors
    err = capsys.readouterr().err
    assert err.count("lensing_ssc: logging to handler <FailingHandler") == 1
    assert "No space left on device" in err
    assert errors == 3
    assert len(path.read_text().splitlines()) == 3


def test_raising_handler_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A handler whose handle() itself raises is reported once and the writer keeps going."""

    class Broken(logging.Handler):
        def handle(self, record: logging.LogRecord) -> bool:
            raise RuntimeError("broken handler")

    with LogManager(console=False) as log_mgr:
        log_mgr.add_handler(Broken())
        for i in range(3):
            log_mgr.get_logger("w").info("r%d", i)
            log_mgr.flush()
        assert log_mgr.get_stats().errors == 3
    assert capsys.readouterr().err.count("broken handler") == 1


def test_stdlib_handler_errors_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A stdlib handler failing inside emit() says so once, not one traceback per record."""
    import io

    stream = io.StringIO()
    stream.close()
    with LogManager(console=False) as log_mgr:
        log_mgr.add_handler(logging.StreamHandler(stream))
        for i in range(3):
            log_mgr.get_logger("w").info("r%d", i)
            log_mgr.flush()
        assert log_mgr.get_stats().errors == 3
    err = capsys.readouterr().err
    assert err.count("I/O operation on closed file") == 1
    assert "Traceback" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_disk_full_is_reported_once_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """Writing to a full disk never raises into the caller; stderr says so once."""
    with LogManager(file_path="/dev/full", console=False, max_bytes=None) as log_mgr:
        log = log_mgr.get_logger("w")
        for i in range(5):
            log.info("record %d", i)
            log_mgr.flush()
        stats = log_mgr.get_stats()
    err = capsys.readouterr().err
    assert err.count("No space left on device") == 1
    assert "the log file '/dev/full'" in err
    assert (stats.dropped, stats.written, stats.errors) == (5, 0, 5)


def test_console_goes_to_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """console=True writes formatted lines to sys.stderr as it is when writing."""
    with LogManager(console=True) as log_mgr:
        log_mgr.get_logger("w").info("to the console")
    captured = capsys.readouterr()
    assert "INFO     lensing_ssc.w: to the console" in captured.err
    assert captured.out == ""


def _count_thread_records(path: Path) -> Counter[tuple[int, int]]:
    seen: Counter[tuple[int, int]] = Counter()
    for line in path.read_text().splitlines():
        record = json.loads(line)
        seen[(record["t"], record["i"])] += 1
    return seen


def _threads_exactly_once(tmp_path: Path, threads: int, per: int) -> None:
    path = tmp_path / "threads.log"
    with LogManager(file_path=path, format_type="json", console=False, max_bytes=None) as log_mgr:
        log = log_mgr.get_logger("threads")

        def work(t: int) -> None:
            for i in range(per):
                log.info("record", extra={"t": t, "i": i})

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    seen = _count_thread_records(path)
    assert len(path.read_text().splitlines()) == threads * per
    assert set(seen) == {(t, i) for t in range(threads) for i in range(per)}
    assert set(seen.values()) == {1}


def test_four_threads_each_record_exactly_once(tmp_path: Path) -> None:
    """4 threads x 5 000 records give exactly 20 000 lines, each record once."""
    _threads_exactly_once(tmp_path, 4, 5_000)


@pytest.mark.slow
def test_four_threads_hundred_thousand_each(tmp_path: Path) -> None:
    """4 threads x 100 000 records give exactly 400 000 lines, each record once."""
    _threads_exactly_once(tmp_path, 4, 100_000)
