"""``lensing-ssc status``: the state of a run as its user should read it, killed runs included."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from lensing_ssc.cli import main

ConfigFile = Callable[..., Path]  # the config_file fixture of conftest.py


def _start_run(
    tmp_path: Path, children: Any, config_file: ConfigFile
) -> tuple[subprocess.Popen[str], Path]:
    """Start `python -m lensing_ssc run` and wait until it is measuring patches."""
    run_dir = tmp_path / "kill"
    config = config_file(run_dir, "interruptible")
    proc = children.start(
        [sys.executable, "-m", "lensing_ssc", "run", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = run_dir / "logs" / "lensing_ssc.log"
    deadline = time.monotonic() + 90
    while (log.read_bytes() if log.exists() else b"").count(b'"step":"statistics"') < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    return proc, run_dir


def _status(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["status", str(run_dir)]) == 0
    return capsys.readouterr().out.splitlines()[0]


def _rewrite(run_dir: Path, **fields: Any) -> None:
    path = run_dir / "status.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_a_sigkilled_run_is_reported_stopped_not_running(
    tmp_path: Path, children: Any, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """While the job lives status says running; once SIGKILLed, that its pid is gone."""
    proc, run_dir = _start_run(tmp_path, children, config_file)
    assert _status(run_dir, capsys).startswith(
        f"{run_dir}: running (pid {proc.pid} on {socket.gethostname()}, updated "
    )
    proc.send_signal(signal.SIGKILL)
    # Not reaped yet: the killed job is a zombie, which is no more running than a gone one.
    deadline = time.monotonic() + 10
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    expected = (
        f"{run_dir}: stopped unexpectedly (pid {proc.pid} is gone; killed or crashed) "
        "— rerun to resume (last updated "
    )
    assert _status(run_dir, capsys).startswith(expected)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert _status(run_dir, capsys).startswith(expected)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"


def test_a_pid_now_used_by_another_process_is_not_taken_for_the_run(
    tmp_path: Path, children: Any, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A killed run's pid, given to a process started later, still reads as stopped."""
    proc, run_dir = _start_run(tmp_path, children, config_file)
    children.sigkill(proc)
    time.sleep(1.5)  # the newcomer must start measurably later than the run did
    newcomer = children.start([sys.executable, "-c", "import time; time.sleep(60)"])
    _rewrite(run_dir, pid=newcomer.pid)
    assert _status(run_dir, capsys).startswith(
        f"{run_dir}: stopped unexpectedly (pid {newcomer.pid} is now another process; "
        "the run was killed or crashed) — rerun to resume"
    )


def test_a_run_on_another_host_is_shown_as_last_seen(
    tmp_path: Path, children: Any, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """On another host the pid cannot be checked: status says so, and when it looks stale."""
    proc, run_dir = _start_run(tmp_path, children, config_file)
    children.sigkill(proc)
    _rewrite(run_dir, host="node-7.cluster", updated=time.time() - 120)
    line = _status(run_dir, capsys)
    assert line.startswith(f"{run_dir}: running on node-7.cluster as of 12")
    assert line.endswith(
        f" s ago (pid {proc.pid}; whether it still runs cannot be checked from "
        f"{socket.gethostname()}); it refreshes this file every 10 s, so it may have stopped"
    )
    _rewrite(run_dir, updated=time.time())  # fresh: no doubt cast
    assert _status(run_dir, capsys).endswith(f"cannot be checked from {socket.gethostname()})")


def test_cache_line_shows_the_directory_and_the_workers_lookups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """After a process-pool run, status shows what `cache stats` shows: entries, size, lookups."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir)
    done = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "run", str(config), "--executor", "processes"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert main(["cache", "stats", str(run_dir), "--json"]) == 0
    disk = json.loads(capsys.readouterr().out)
    lookups = disk["hits"] + disk["misses"]
    assert disk["entries"] > 0
    assert disk["hits"] > 0  # the workers found maps other workers had made
    assert main(["status", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        f"  cache: {disk['entries']} entries, {disk['bytes'] / 2**20:.1f} MiB on disk "
        f"in {run_dir / 'cache'}",
        f"    this run: {lookups} lookups, hit rate {disk['hit_rate']:.1%} "
        "(disk: all processes; memory: main process only)",
    ]


def test_cache_line_counts_only_this_runs_lookups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A rerun that finds everything done reports no lookups, not the earlier run's."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir)
    assert main(["run", str(config)]) == 0
    assert main(["run", str(config)]) == 0
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "    this run: no lookups (disk: all processes; memory: main process only)"
    )
