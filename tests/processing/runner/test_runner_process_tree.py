"""A stop that kills worker processes ends what their tasks started too: no orphan is left."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from lensing_ssc.core.base.exceptions import InterruptedRunError
from lensing_ssc.processing.runner import RunnerHooks, TaskRunner


def start_child_and_wait(item: tuple[int, str]) -> int:
    """Start a process of the task's own (a long sleep), note its pid, and wait for it."""
    index, folder = item
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(folder, f"child-{index}").write_text(str(child.pid))
    child.wait()
    return index


def _task_children(folder: Path, count: int) -> list[psutil.Process]:
    """The processes the tasks started, once ``count`` of them have said so."""
    deadline = time.monotonic() + 60
    while len(list(folder.glob("child-*"))) < count:
        assert time.monotonic() < deadline, "the tasks did not start their processes"
        time.sleep(0.02)
    return [psutil.Process(int(path.read_text())) for path in folder.glob("child-*")]


def _ended(process: psutil.Process, timeout: float) -> bool:
    """Whether ``process`` ends (or is a zombie: dead, awaiting its reaper) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("executor", ["processes"])
def test_a_stop_that_kills_workers_also_ends_the_processes_their_tasks_started(
    tmp_path: Path, executor: str
) -> None:
    """Tasks waiting on processes of their own: past stop_timeout, those processes end too."""
    stop = threading.Event()
    children: list[psutil.Process] = []

    def should_stop() -> bool:
        if not stop.is_set() and len(list(tmp_path.glob("child-*"))) >= 2:
            children.extend(_task_children(tmp_path, 2))
            stop.set()
        return stop.is_set()

    hooks = RunnerHooks(should_stop=should_stop)
    items = [(index, str(tmp_path)) for index in range(4)]
    try:
        runner = TaskRunner(executor, max_workers=2, stop_timeout=0.3, hooks=hooks)
        with runner, pytest.raises(InterruptedRunError):
            runner.map(start_child_and_wait, items, chunksize=1)
        assert len(children) == 2
        assert all(_ended(child, timeout=10) for child in children)
    finally:
        for child in children:
            if child.is_running():
                child.kill()
