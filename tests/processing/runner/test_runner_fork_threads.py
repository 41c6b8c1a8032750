"""A process pool never forks a process where GNU OpenMP threads live, unless asked to.

Each test runs ``fork_threads_job.py`` as a real process: it starts (or not) GNU OpenMP's
threads with healpy or numba, then maps over ``ManagerContext``'s process pool. A forked
worker that then runs OpenMP code hangs for ever, so each job runs under a timeout that
kills its whole process group and fails the test. ``OMP_NUM_THREADS=2`` makes OpenMP start
a thread even on a machine with one CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.processing.runner._fork_guard import fresh_start_problem

JOB = Path(__file__).with_name("fork_threads_job.py")
NO_OPENMP_EXIT_CODE = 4  # the job's: numba has no GNU OpenMP layer here
HANG_TIMEOUT = 150.0  # a run takes 5-20 s on 2 busy cores; a hung one never ends

needs_healpy = pytest.mark.skipif(
    importlib.util.find_spec("healpy") is None, reason="needs healpy (the healpix extra)"
)
needs_numba = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="needs numba (the shells extra)"
)
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="forks of OpenMP processes: a Linux default"
)


def run_job(tmp_path: Path, threads: str, task: str, *more: str) -> dict[str, Any]:
    """Run the job; its output, or a failed test if it hangs or fails.

    Skips where ``threads`` should have started GNU OpenMP threads and did not (a healpy
    or numba built without GNU OpenMP).
    """
    args = ("--threads", threads, "--task", task, *more)
    output = tmp_path / "out.json"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "NUMBA_NUM_THREADS": "2",
        "NUMBA_THREADING_LAYER": "omp",
    }
    command = [sys.executable, str(JOB), *args, "--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(
        [*command, "--output", str(output)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers and fork server share its process group
    )
    try:
        _, stderr = proc.communicate(timeout=HANG_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the job {' '.join(args)} hung for {HANG_TIMEOUT:.0f} s")
    if proc.returncode == NO_OPENMP_EXIT_CODE:
        pytest.skip("numba has no GNU OpenMP threading layer here")
    assert proc.returncode == 0, stderr
    job: dict[str, Any] = json.loads(output.read_text())
    if threads in ("sht", "numba") and not job["census"]["openmp"]:
        pytest.skip(f"{threads} starts no GNU OpenMP thread here")
    return job


def forked(job: dict[str, Any]) -> list[bool]:
    """Per item, whether its worker was a fork of the job (it saw the job's run-time MARK)."""
    return [mark == "set at run time" for _, _, mark in job["results"]]


@needs_healpy
@pytest.mark.parametrize(
    ("threads", "task"),
    [
        pytest.param("sht", "transform", id="healpy"),
        pytest.param("numba", "loop", id="numba", marks=[needs_numba, pytest.mark.slow]),
    ],
)
def test_a_pool_started_after_openmp_threads_starts_its_workers_afresh(
    tmp_path: Path, threads: str, task: str
) -> None:
    """After OpenMP ran here, the pool's workers are not forks, finish, and one record says why."""
    job = run_job(tmp_path, threads, task)
    assert job["failures"] == []
    assert [value for value, _, _ in job["results"]] == job["expected"]
    assert not any(forked(job))
    assert job["forks_workers"] is False
    [record] = job["warnings"]
    assert f"{job['census']['openmp']} of this process's" in record
    assert "threads are GNU OpenMP's" in record
    assert "starts its workers with 'forkserver' instead of Python's default 'fork'" in record
    assert "mp_context='forkserver'" in record
    assert "mp_context='fork'" in record
    assert record in job["log"]  # the run's log file has it too
    # Workers forked by a fork server are its children, not the job's.
    assert all(parent != job["pid"] for _, parent, _ in job["results"])


@needs_healpy
def test_an_explicit_fork_is_honoured_even_with_openmp_threads(tmp_path: Path) -> None:
    """mp_context="fork" forks the job's OpenMP process as asked, and logs nothing about it."""
    job = run_job(tmp_path, "sht", "plain", "--mp-context", "fork")
    assert job["failures"] == []
    assert [value for value, _, _ in job["results"]] == job["expected"]
    assert all(forked(job))
    assert all(parent == job["pid"] for _, parent, _ in job["results"])
    assert job["forks_workers"] is True
    assert job["warnings"] == []


@needs_healpy
def test_a_process_without_openmp_threads_still_forks(tmp_path: Path) -> None:
    """With healpy's OpenMP loaded but never run (BLAS threads live), workers fork as before."""
    job = run_job(tmp_path, "imported", "transform")
    assert job["census"]["openmp"] == 0
    assert job["failures"] == []
    assert [value for value, _, _ in job["results"]] == job["expected"]
    assert all(forked(job))
    assert job["forks_workers"] is True
    assert job["warnings"] == []


@needs_healpy
def test_a_task_fresh_workers_cannot_load_keeps_the_fork_and_names_the_risk(
    tmp_path: Path,
) -> None:
    """A task only the script's main block defines still runs on forks; the record says why."""
    job = run_job(tmp_path, "sht", "guarded")
    assert job["failures"] == []
    assert [value for value, _, _ in job["results"]] == job["expected"]
    assert all(forked(job))
    assert job["forks_workers"] is True
    [record] = job["warnings"]
    assert "the process pool forks nonetheless" in record
    assert 'refers to guarded, defined only under the `if __name__ == "__main__":`' in record
    assert "would hang" in record
    assert "OMP_NUM_THREADS=1" in record


@needs_healpy
def test_a_pool_started_again_after_openmp_threads_began_does_not_fork(tmp_path: Path) -> None:
    """A pool that forked before OpenMP ran is started afresh, not forked, after a worker dies."""
    job = run_job(tmp_path, "sht", "transform", "--rebuild")
    assert job["failures"] == []
    assert [value for value, _, _ in job["results"]] == job["expected"]
    assert forked(job)[0] is False  # item 0 killed its worker, then ran in the new pool
    assert job["forks_workers"] is False
    [record] = job["warnings"]
    assert "starts its workers with 'forkserver'" in record


def test_a_task_from_a_module_no_fresh_process_finds_is_named() -> None:
    """A function whose module exists only in this process's memory is named as the problem."""
    module = types.ModuleType("made_in_memory")
    exec("def square(x):\n    return x * x\n", module.__dict__)
    sys.modules["made_in_memory"] = module
    try:
        problem = fresh_start_problem(module.square)
    finally:
        del sys.modules["made_in_memory"]
    assert problem == (
        "the task refers to made_in_memory.square, and a fresh process finds no module "
        "'made_in_memory'"
    )
    assert fresh_start_problem(json.dumps) is None
