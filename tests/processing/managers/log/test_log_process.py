"""Records survive process events (exit, SIGTERM) and reach one writer from many processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from lensing_ssc.core.base.exceptions import LoggingError
from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._manager import LogWorkerConfig, list_backups

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


CHILD_PRELUDE = """
import signal, sys, time
from lensing_ssc.processing.managers import LogManager
path = sys.argv[1]
"""

LOG_3000 = """
log = log_mgr.get_logger("child")
for i in range(3000):
    log.info("record", extra={"i": i})
"""


def _run_child(path: Path, *parts: str) -> subprocess.Popen[str]:
    code = "".join(textwrap.dedent(part) for part in (CHILD_PRELUDE, *parts))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _numbers(path: Path) -> list[int]:
    return [json.loads(line)["i"] for line in path.read_text().splitlines()]


@posix_only
def test_sigterm_handler_writes_every_record(tmp_path: Path) -> None:
    """With handle_sigterm=True, SIGTERM writes every queued record and still kills the process."""
    path = tmp_path / "run.log"
    with _run_child(
        path,
        """
        log_mgr = LogManager(file_path=path, format_type="json", console=False,
                             flush_interval=60, handle_sigterm=True)
        """,
        LOG_3000,
        """
        print("ready", flush=True)
        time.sleep(60)
        """,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == -signal.SIGTERM
    assert _numbers(path) == list(range(3000))


@posix_only
def test_sigterm_default_action_keeps_older_records(tmp_path: Path) -> None:
    """Without a handler, SIGTERM kills at once; records older than flush_interval are written."""
    path = tmp_path / "run.log"
    with _run_child(
        path,
        """
        log_mgr = LogManager(file_path=path, format_type="json", console=False,
                             flush_interval=0.05)
        """,
        LOG_3000,
        """
        time.sleep(0.5)
        print("ready", flush=True)
        time.sleep(60)
        """,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == -signal.SIGTERM
    assert _numbers(path) == list(range(3000))


@posix_only
def test_sigterm_chains_to_the_previous_handler(tmp_path: Path) -> None:
    """The previous Python handler still runs after the records are written."""
    path = tmp_path / "run.log"
    with _run_child(
        path,
        """
        def previous(signum, frame):
            print("previous handler ran", flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, previous)
        log_mgr = LogManager(file_path=path, format_type="json", console=False,
                             flush_interval=60, handle_sigterm=True)
        """,
        LOG_3000,
        """
        print("ready", flush=True)
        time.sleep(60)
        """,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 3
        assert child.stdout.read() == "previous handler ran\n"
    assert _numbers(path) == list(range(3000))


@posix_only
def test_ignored_sigterm_stays_ignored_after_flushing(tmp_path: Path) -> None:
    """If SIGTERM was ignored, the handler writes the records and the process carries on."""
    path = tmp_path / "run.log"
    with _run_child(
        path,
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log_mgr = LogManager(file_path=path, format_type="json", console=False,
                             flush_interval=60, handle_sigterm=True)
        """,
        LOG_3000,
        """
        print("ready", flush=True)
        sys.stdin.readline()
        print(len(open(path).read().splitlines()), flush=True)
        """,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "3000\n"
        assert child.wait(30) == 0


@posix_only
def test_close_restores_the_previous_sigterm_handler() -> None:
    """Closing a manager that handled SIGTERM puts the earlier handler back."""

    def mine(signum: int, frame: object) -> None:
        """Stand-in for an application's handler."""

    original = signal.signal(signal.SIGTERM, mine)
    try:
        log_mgr = LogManager(console=False, handle_sigterm=True)
        assert signal.getsignal(signal.SIGTERM) is not mine
        log_mgr.close()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, original)


@pytest.mark.parametrize("ending", ["", "raise RuntimeError('boom')"])
def test_interpreter_exit_writes_every_record(tmp_path: Path, ending: str) -> None:
    """A program that never calls close() (ending normally or by an exception) loses nothing."""
    path = tmp_path / "run.log"
    with _run_child(
        path,
        """
        log_mgr = LogManager(file_path=path, format_type="json", console=False,
                             flush_interval=60)
        """,
        LOG_3000,
        ending + "\n",
    ) as child:
        _, err = child.communicate(timeout=60)
        assert child.returncode == (1 if ending else 0), err
    assert _numbers(path) == list(range(3000))


def _count(paths: list[Path], key: str) -> Counter[tuple[int, int]]:
    import gzip

    seen: Counter[tuple[int, int]] = Counter()
    for path in paths:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for line in data.splitlines():
            record = json.loads(line)
            if key in record:
                seen[(record[key], record["i"])] += 1
    return seen


def _fork_child(n: int, tag: int) -> None:
    log = logging.getLogger("lensing_ssc.forked")
    for i in range(n):
        log.info("from a forked child", extra={"tag": tag, "i": i})


@pytest.mark.skipif(
    not hasattr(multiprocessing, "get_all_start_methods")
    or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs the fork start method",
)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_children_write_through_the_parent(tmp_path: Path) -> None:
    """Children forked while a manager is open send their records to the parent's one file."""
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=4000, backup_count=1000
    ):
        ctx = multiprocessing.get_context("fork")
        children = [ctx.Process(target=_fork_child, args=(300, tag)) for tag in range(3)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        assert [child.exitcode for child in children] == [0, 0, 0]
    seen = _count([base, *list_backups(base)], "tag")
    assert set(seen) == {(tag, i) for tag in range(3) for i in range(300)}
    assert set(seen.values()) == {1}


def _pool_task(i: int) -> int:
    logging.getLogger("lensing_ssc.pool").info("task", extra={"i": i})
    return i


def test_spawned_pool_workers_attach(tmp_path: Path) -> None:
    """A spawn ProcessPoolExecutor with attach_worker as initializer writes every task's record."""
    base = tmp_path / "run.log"
    with LogManager(file_path=base, format_type="json", console=False) as log_mgr:
        config = log_mgr.worker_config(pool="maps")
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            2, mp_context=ctx, initializer=LogManager.attach_worker, initargs=(config,)
        ) as pool:
            assert list(pool.map(_pool_task, range(50))) == list(range(50))
    lines = [json.loads(line) for line in base.read_text().splitlines()]
    assert sorted(line["i"] for line in lines) == list(range(50))
    assert {line["pool"] for line in lines} == {"maps"}
    assert log_mgr.get_stats().from_workers == 50


def _rotating_worker(config: LogWorkerConfig, proc: int, n: int) -> None:
    log_mgr = LogManager.attach_worker(config)
    log = log_mgr.get_logger("procs")
    for i in range(n):
        log.info("record", extra={"p": proc, "i": i})
    log_mgr.close()


def _processes_exactly_once(tmp_path: Path, procs: int, per: int, max_bytes: int) -> None:
    base = tmp_path / "run.log"
    with LogManager(
        file_path=base, format_type="json", console=False, max_bytes=max_bytes, backup_count=10_000
    ) as log_mgr:
        config = log_mgr.worker_config()
        ctx = multiprocessing.get_context("spawn")
        workers = [
            ctx.Process(target=_rotating_worker, args=(config, p, per)) for p in range(procs)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(300)
    assert [worker.exitcode for worker in workers] == [0] * procs
    backups = list_backups(base)
    assert len(backups) >= 2
    seen = _count([base, *backups], "p")
    assert set(seen) == {(p, i) for p in range(procs) for i in range(per)}
    assert set(seen.values()) == {1}


def test_four_processes_rotating_file_exactly_once(tmp_path: Path) -> None:
    """4 processes x 2 000 records into a file rotating at 64 kB: each record once."""
    _processes_exactly_once(tmp_path, 4, 2_000, 64_000)


@pytest.mark.slow
def test_four_processes_25000_rotating_at_1mb(tmp_path: Path) -> None:
    """4 processes x 25 000 records into a file rotating at 1 MB: each record once."""
    _processes_exactly_once(tmp_path, 4, 25_000, 1_000_000)


def test_worker_in_the_same_process_loops_back(tmp_path: Path) -> None:
    """worker_config pickles; attach_worker is idempotent and its records reach the parent file."""
    base = tmp_path / "run.log"
    parent = LogManager(file_path=base, format_type="json", console=False)
    config = pickle.loads(pickle.dumps(parent.worker_config(worker="w1")))
    worker = LogManager.attach_worker(config)
    assert LogManager.attach_worker(config) is worker
    assert worker.get_status()["worker"] is True
    worker.get_logger("loop").info("via the socket", extra={"i": 1})
    worker.close()
    parent.close()
    (line,) = [json.loads(text) for text in base.read_text().splitlines()]
    assert (line["message"], line["worker"], line["i"]) == ("via the socket", "w1", 1)


def test_unreachable_parent_logs_to_a_node_local_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """attach_worker with a parent out of reach logs to logs/workers/<host>-<pid>.log instead."""
    with LogManager(file_path=tmp_path / "logs" / "run.log", console=False) as log_mgr:
        config = log_mgr.worker_config()
    worker = LogManager.attach_worker(config)
    worker.get_logger("node").info("kept on this node")
    worker.close()
    local = tmp_path / "logs" / "workers" / f"{socket.gethostname()}-{os.getpid()}.log"
    text = local.read_text()
    assert "cannot reach the parent's log writer" in text
    assert "kept on this node" in text
    notice = capsys.readouterr().err
    assert notice.count("cannot reach the parent's log writer") == 1
    assert str(local) in notice


def test_unreachable_parent_without_a_log_file_logs_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """attach_worker with a parent out of reach and no log file writes its records to stderr."""
    with LogManager(console=False) as log_mgr:
        config = log_mgr.worker_config()
    worker = LogManager.attach_worker(config)
    worker.get_logger("node").warning("on stderr")
    worker.close()
    err = capsys.readouterr().err
    assert "on stderr" in err
    assert err.count("cannot reach the parent's log writer") == 1


def test_closed_manager_has_no_worker_config() -> None:
    """worker_config on a closed manager raises LoggingError."""
    log_mgr = LogManager(console=False)
    log_mgr.close()
    with pytest.raises(LoggingError, match="this LogManager is closed"):
        log_mgr.worker_config()


def test_worker_without_parent_falls_back_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker whose parent closed reports it once and writes its records to stderr."""
    parent = LogManager(file_path=tmp_path / "run.log", console=False)
    worker = LogManager.attach_worker(parent.worker_config())
    parent.close()
    log = worker.get_logger("orphan")
    log.warning("first orphan record")
    worker.flush()
    log.warning("second orphan record")
    worker.close()
    err = capsys.readouterr().err
    assert err.count("lensing_ssc: logging to the parent process's log writer") == 1
    assert "first orphan record" in err
    assert "second orphan record" in err
