"""Worker logs and progress travel through Dask, never the driver's local socket.

A real ``dask scheduler`` and two workers run as processes on 127.0.0.1. The driver's
local channels are made unreachable (each socket file is removed right after it is
bound, as a worker on another host finds it), so whatever reaches the driver's log file
and progress bar came through Dask's events.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import (
    ManagerContext,
    _channel,
)
from lensing_ssc.processing.managers.progress import ProgressReporter

STEPS = 3


def log_and_report(item: tuple[int, ProgressReporter]) -> int:
    """Log one record and report ``STEPS`` sub-item counts; return the worker's pid."""
    x, reporter = item
    logging.getLogger("lensing_ssc.events_test").info("item %d", x, extra={"step": "done"})
    for _ in range(STEPS):
        time.sleep(0.01)
        reporter.update(1)
    return os.getpid()


@pytest.fixture
def unreachable_channels(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every local channel the driver opens has its socket file removed once bound."""
    opened: list[Any] = []
    original = _channel.ChannelServer.__init__

    def bind_then_hide(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if isinstance(self.address, str):
            os.unlink(self.address)
        opened.append(self)

    monkeypatch.setattr(_channel.ChannelServer, "__init__", bind_then_hide)
    return opened


def test_dask_worker_records_and_progress_reach_the_driver_without_its_socket(
    start_dask: Any, tmp_path: Path, unreachable_channels: list[Any]
) -> None:
    """Records (task, host, pid, extras) and sub-item counts of Dask workers reach the driver."""
    cluster = start_dask(workers=2)
    config = ProcessingConfig(
        run_dir=tmp_path / "run",
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
    )
    items = 12
    with ManagerContext(config=config, executor="dask", stop_signals=()) as ctx:
        with ctx.progress.subprogress("steps", total=items * STEPS) as steps:
            reporter = steps.reporter()
            result = ctx.map(
                log_and_report,
                [(x, reporter) for x in range(items)],
                name="events",
                key=lambda pair: pair[0],
                scheduler_address=cluster.address,
            )
            counted = steps.current
        log_file = config.log_file
    pids = set(result.results)
    assert pids
    assert os.getpid() not in pids
    assert counted == items * STEPS
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    mine = [r for r in records if r["message"].startswith("item ")]
    assert sorted(r["message"] for r in mine) == sorted(f"item {x}" for x in range(items))
    assert {r["task"] for r in mine} == {"events"}
    assert {r["step"] for r in mine} == {"done"}
    assert {r["pid"] for r in mine} == pids
    assert all(isinstance(r["host"], str) and r["host"] for r in mine)
    assert not (log_file.parent / "workers").exists()  # no worker fell back to its own file
    assert not any(
        s.name.startswith("lensing_ssc-log-receiver") for s in unreachable_channels
    )  # the log's socket was never even opened
