"""The runner under real faults: SIGKILL and SIGTERM of the runner process, then a rerun.

Each test starts ``runner_job.py`` in a subprocess, waits until it has finished some items
(counted by marker files), sends a real signal, and reruns the job to completion.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from lensing_ssc.processing.runner._journal import read_journal

JOB = Path(__file__).with_name("runner_job.py")
STOPPED_EXIT_CODE = 3
ITEMS = 40
SECONDS = "0.03"  # per item: long enough to interrupt mid-run, short enough to rerun fast


def _job_args(tmp_path: Path, executor: str, name: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(JOB),
        "--executor",
        executor,
        "--journal",
        str(tmp_path / f"{name}.journal"),
        "--markers",
        str(tmp_path / f"{name}-markers"),
        "--output",
        str(tmp_path / f"{name}.json"),
        "--items",
        str(ITEMS),
        "--seconds",
        SECONDS,
        *extra,
    ]


def _markers(tmp_path: Path, name: str, kind: str) -> Counter[int]:
    folder = tmp_path / f"{name}-markers"
    if not folder.exists():
        return Counter()
    return Counter(
        int(p.name.split("-")[1]) for p in folder.iterdir() if p.name.startswith(kind + "-")
    )


def _wait_for_finished(
    tmp_path: Path, name: str, count: int, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while sum(_markers(tmp_path, name, "finish").values()) < count:
        assert proc.poll() is None, "the job ended before it could be interrupted"
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.02)


def _run_to_end(args: list[str]) -> dict[str, object]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    output = Path(args[args.index("--output") + 1])
    return json.loads(output.read_text())


def _reference(tmp_path: Path) -> list[object]:
    """Results of the same job run once, uninterrupted (serially: results do not depend on
    the executor, and a second cluster start-up would only slow the test)."""
    summary = _run_to_end(_job_args(tmp_path, "serial", "reference", "--seconds", "0"))
    results = summary["results"]
    assert isinstance(results, list)
    return results


def _kill_leftovers(pids: list[int], grace: float) -> list[int]:
    """Wait up to ``grace`` seconds for these processes to end; kill and return survivors."""
    survivors = []
    for proc in psutil.wait_procs([p for p in map(_process, pids) if p], timeout=grace)[1]:
        survivors.append(proc.pid)
        proc.kill()
    return survivors


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _sigkill_and_rerun(tmp_path: Path, children: Any, executor: str, in_flight_bound: int) -> None:
    args = _job_args(tmp_path, executor, "job")
    proc = children.start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_finished(tmp_path, "job", 12, proc)
    workers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    children.sigkill(proc)
    # Workers notice their runner died and end by themselves; none keeps computing.
    assert _kill_leftovers(workers, grace=10.0) == []
    before = _markers(tmp_path, "job", "start")
    assert 0 < sum(before.values()) < ITEMS

    summary = _run_to_end(args)

    assert summary["results"] == _reference(tmp_path)
    assert summary["failed"] == 0
    starts = _markers(tmp_path, "job", "start")
    assert set(starts) == set(range(ITEMS))
    redone = sorted(index for index, count in starts.items() if count > 1)
    assert len(redone) <= in_flight_bound, f"redone {redone}"
    assert summary["skipped"] == ITEMS - summary["completed"]
    assert summary["skipped"] >= sum(before.values()) - in_flight_bound


def test_sigkill_serial_rerun_matches_uninterrupted_run(tmp_path: Path, children: Any) -> None:
    """A SIGKILLed serial run reruns to the uninterrupted results, redoing ≤ 1 item."""
    _sigkill_and_rerun(tmp_path, children, "serial", in_flight_bound=1)


def test_sigkill_processes_rerun_matches_uninterrupted_run(tmp_path: Path, children: Any) -> None:
    """A SIGKILLed process run leaves no worker behind and reruns, redoing ≤ 4 items."""
    _sigkill_and_rerun(tmp_path, children, "processes", in_flight_bound=4)


@pytest.mark.slow  # two cluster start-ups; test_runner_dask.py has a lighter default version
def test_sigkill_dask_rerun_matches_uninterrupted_run(tmp_path: Path, children: Any) -> None:
    """A SIGKILLed Dask run takes its cluster down and reruns, redoing ≤ 4 items."""
    _sigkill_and_rerun(tmp_path, children, "dask", in_flight_bound=4)


@pytest.mark.parametrize(
    "executor", ["serial", "processes", pytest.param("dask", marks=pytest.mark.slow)]
)
def test_sigterm_saves_every_finished_item_and_rerun_completes(
    tmp_path: Path, executor: str
) -> None:
    """SIGTERM ends the job within seconds, every finished item saved; the rerun does the rest."""
    args = _job_args(tmp_path, executor, "job", "--sigterm")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_finished(tmp_path, "job", 10, proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == STOPPED_EXIT_CODE, err
    assert "stopped (SIGTERM)" in out
    assert took < 5.0
    contents, _ = read_journal(tmp_path / "job.journal")
    saved = {int(key.split("-")[0]) for key in contents.done}
    finished = set(_markers(tmp_path, "job", "finish"))
    assert finished <= saved, f"finished but not saved: {sorted(finished - saved)}"
    assert 10 <= len(saved) < ITEMS

    summary = _run_to_end(args)

    assert summary["results"] == [index * index + 0.5 for index in range(ITEMS)]
    assert summary["skipped"] == len(saved)
    assert summary["completed"] == ITEMS - len(saved)
    assert max(_markers(tmp_path, "job", "finish").values()) == 1  # nothing computed twice
