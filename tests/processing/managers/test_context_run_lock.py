"""One run per run directory: a second run is refused before it touches anything."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext, RunDir

JOB = Path(__file__).with_name("context_job.py")


def quiet_config(run_dir: Path) -> ProcessingConfig:
    """A config writing under ``run_dir`` with no console output."""
    return ProcessingConfig(
        run_dir=run_dir,
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
    )


def _wait_until_running(run_dir: Path, pid: int) -> dict[str, object]:
    """The status file of the run ``pid`` once it says running and its map has started."""
    status_file = RunDir(run_dir).status_file
    journal = RunDir(run_dir).journal("squares")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("pid") == pid and status.get("state") == "running" and journal.exists():
            return status
        time.sleep(0.05)
    raise AssertionError("the first run did not start")


def test_a_second_run_in_a_busy_run_directory_is_refused_and_touches_nothing(
    tmp_path: Path, children: Any
) -> None:
    """The running run's status.json, log and journals stay its own; the error names it."""
    run_dir = tmp_path / "run"
    first = children.start(
        [sys.executable, str(JOB), str(run_dir), "map", "400", "0.05"],
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    _wait_until_running(run_dir, first.pid)
    layout = RunDir(run_dir)
    log_before = layout.log_file.read_bytes()
    listing = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    with pytest.raises(CheckpointError, match="in use by another run") as info:
        ManagerContext(config=quiet_config(run_dir), stop_signals=())
    assert f"pid {first.pid}" in str(info.value)
    status = json.loads(layout.status_file.read_text())
    assert (status["pid"], status["state"]) == (first.pid, "running")
    written = layout.log_file.read_bytes()[len(log_before) :]
    assert b'"ERROR"' not in written
    assert b"in use" not in written
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) == listing
    assert first.poll() is None
    children.sigkill(first)


def test_a_run_directory_is_free_again_once_its_run_closes(tmp_path: Path) -> None:
    """Runs one after another, and contexts nested in one process, share a run directory."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config, stop_signals=()) as outer:
        with ManagerContext(config=config, stop_signals=()) as inner:
            inner.map(abs, [-1], name="inner")
        outer.map(abs, [-2], name="outer")
    with ManagerContext(config=config, stop_signals=()) as again:
        assert again.map(abs, [-1], name="inner").skipped == 1
