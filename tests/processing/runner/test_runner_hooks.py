"""TaskRunner's hooks and stops: durable reporting, progress, graceful stop, status, arguments."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from lensing_ssc.core.base.exceptions import ConfigError, InterruptedRunError
from lensing_ssc.processing import runner as runner_module
from lensing_ssc.processing.runner import MapResult, RunnerHooks, TaskFailure, TaskRunner, run_map
from lensing_ssc.processing.runner import _journal as journal_module


def square(x: int) -> int:
    return x * x


def nap_square(x: int) -> int:
    time.sleep(0.03)
    return x * x


def slow_square(x: int) -> int:
    time.sleep(0.5)
    return x * x


def gated_item(item: tuple[int, str]) -> int:
    """Items 0-3 finish at once; later ones note that they started, then wait for the stop."""
    index, folder = item
    Path(folder, f"started-{index}").touch()
    deadline = time.monotonic() + 60
    while index >= 4 and not Path(folder, "stop").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return index


def long_nap(x: int) -> int:
    time.sleep(120)
    return x


def always_fails(x: int) -> int:
    raise OSError(f"disk of item {x} is gone")


def test_public_names_are_exactly_these() -> None:
    """The runner module exports exactly its sorted public names."""
    assert runner_module.__all__ == [
        "EXECUTOR_NAMES",
        "ExecutorName",
        "JournalFailure",
        "JournalSummary",
        "MAX_WORKERS",
        "MapResult",
        "RunSnapshot",
        "RunnerHooks",
        "TaskFailure",
        "TaskRunner",
        "journal_name",
        "read_journal_summary",
        "run_map",
    ]


# ---- durable reporting and progress --------------------------------------------------------


def test_completion_is_reported_only_after_its_record_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_complete(key, result) runs only once the journal has been fsynced past that record."""
    journal = tmp_path / "j"
    synced = [0]
    real_sync = journal_module._sync

    def recording_sync(fd: int) -> None:
        size = os.fstat(fd).st_size
        real_sync(fd)
        synced[0] = max(synced[0], size)

    monkeypatch.setattr(journal_module, "_sync", recording_sync)
    reported: list[tuple[str, Any]] = []

    def on_complete(key: str, value: Any) -> None:
        data = journal.read_bytes()
        ends = {
            k: end
            for _, end, kind, k, _, _ in journal_module._records(data)
            if kind == journal_module.KIND_DONE
        }
        assert ends[key] <= synced[0], "reported before its record was on disk"
        reported.append((key, value))

    hooks = RunnerHooks(on_complete=on_complete)
    with TaskRunner(hooks=hooks, commit_interval=0.01) as runner:
        result = runner.map(nap_square, range(12), journal=journal)
    assert sorted(v for _, v in reported) == sorted(result.results)
    assert {k for k, _ in reported} == set(result.keys)


def test_serial_long_items_are_reported_before_the_next_one_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a serial run, an item longer than the commit window is reported before the next starts."""
    # The rule depends on how long an fsync takes (a loaded disk may take longer than the 2 %
    # of an item the runner allows itself); make it instant so only the rule is tested.
    monkeypatch.setattr(journal_module, "_sync", lambda fd: None)
    reported: list[str] = []
    seen_at_start: list[int] = []

    def slow(x: int) -> int:
        seen_at_start.append(len(reported))
        time.sleep(0.08)
        return x

    hooks = RunnerHooks(on_complete=lambda key, value: reported.append(key))
    with TaskRunner(hooks=hooks, commit_interval=0.05) as runner:
        runner.map(slow, range(5), journal=tmp_path / "j")
    assert seen_at_start == [0, 1, 2, 3, 4]


def test_progress_counts_every_item_including_earlier_runs(tmp_path: Path) -> None:
    """on_progress adds up to the number of items, counting those taken from the journal."""
    journal = tmp_path / "j"
    run_map(square, range(10), journal=journal)
    counts: list[int] = []
    with TaskRunner(hooks=RunnerHooks(on_progress=counts.append)) as runner:
        runner.map(square, range(25), journal=journal)
    assert counts[0] == 10
    assert sum(counts) == 25


def test_items_from_the_journal_go_to_on_restored_when_it_is_given(tmp_path: Path) -> None:
    """With on_restored, the journal's 10 items reach it once; on_progress counts only new ones."""
    journal = tmp_path / "j"
    run_map(square, range(10), journal=journal)
    restored: list[int] = []
    counts: list[int] = []
    hooks = RunnerHooks(on_progress=counts.append, on_restored=restored.append)
    with TaskRunner(hooks=hooks) as runner:
        runner.map(square, range(25), journal=journal)
    assert (restored, sum(counts)) == ([10], 15)


def test_failures_reach_on_failure_and_map_on_complete(tmp_path: Path) -> None:
    """on_failure gets each TaskFailure; map's own on_complete adds to the hook's."""
    failures: list[TaskFailure] = []
    seen: list[str] = []
    hooks = RunnerHooks(on_failure=failures.append)
    with TaskRunner(hooks=hooks) as runner:
        runner.map(always_fails, range(2), journal=tmp_path / "j", retries=1)
        runner.map(
            square,
            range(3),
            journal=tmp_path / "k",
            on_complete=lambda key, value: seen.append(key),
        )
    assert [f.index for f in failures] == [0, 1]
    assert failures[0].error_type == "OSError"
    assert failures[0].attempts == 2
    assert len(seen) == 3


def test_status_during_a_run_is_json(tmp_path: Path) -> None:
    """get_status() inside a run shows it running, with its counts, as JSON."""
    statuses: list[dict[str, Any]] = []
    runner = TaskRunner("threads", max_workers=2)
    runner.hooks = RunnerHooks(on_progress=lambda n: statuses.append(runner.get_status()))
    with runner:
        runner.map(nap_square, range(6), journal=tmp_path / "j")
    first = statuses[0]
    assert json.loads(json.dumps(first)) == first
    assert first["executor"] == "threads"
    assert first["workers"] == 2
    assert first["run"]["running"] is True
    assert first["run"]["total"] == 6
    assert runner.get_status()["run"]["running"] is False


# ---- graceful stop -------------------------------------------------------------------------


def test_serial_stop_saves_finished_items_and_rerun_finishes(tmp_path: Path) -> None:
    """A stop request ends a serial run with InterruptedRunError; finished items are kept."""
    journal = tmp_path / "j"
    calls: list[int] = []

    def counted(x: int) -> int:
        calls.append(x)
        return x * x

    hooks = RunnerHooks(should_stop=lambda: "SIGTERM" if len(calls) >= 5 else None)
    with pytest.raises(InterruptedRunError, match=r"stopped \(SIGTERM\) with 15 of 20") as info:
        TaskRunner(hooks=hooks).map(counted, range(20), journal=journal)
    partial = info.value.value
    assert isinstance(partial, MapResult)
    assert info.value.signal_name == "SIGTERM"
    assert (partial.completed, partial.remaining) == (5, 15)
    assert partial.results[:5] == [0, 1, 4, 9, 16]
    assert partial.results[5:] == [None] * 15
    calls.clear()
    result = TaskRunner().map(counted, range(20), journal=journal)
    assert calls == list(range(5, 20))
    assert result.results == [x * x for x in range(20)]


def test_stop_without_reason_and_journal_hints_at_journal() -> None:
    """A boolean stop names no signal; without a journal the hint says to pass one."""
    with pytest.raises(InterruptedRunError, match="pass journal=") as info:
        TaskRunner(hooks=RunnerHooks(should_stop=lambda: True)).map(square, range(3))
    assert info.value.signal_name == "stop requested"


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_a_stop_while_the_last_items_run_returns_the_whole_result(executor: str) -> None:
    """Every item already running when the stop comes finishes: nothing is left, no error."""
    started = time.monotonic()
    hooks = RunnerHooks(should_stop=lambda: time.monotonic() - started > 0.15 and "SIGTERM")
    with TaskRunner(executor, max_workers=2, chunksize=1, hooks=hooks) as runner:
        result = runner.map(slow_square, [1, 2])
    assert (result.completed, result.remaining) == (2, 0)
    assert result.results == [1, 4]


class _CountingSubmits:
    """Mixin counting the tasks submitted to an executor (calls come from the runner)."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)  # type: ignore[misc]


class CountingThreads(_CountingSubmits, ThreadPoolExecutor):
    """A thread pool counting submissions."""


class CountingProcesses(_CountingSubmits, ProcessPoolExecutor):
    """A process pool counting submissions."""


@pytest.mark.parametrize("pool_class", [CountingThreads, CountingProcesses])
def test_parallel_stop_submits_nothing_new_and_saves_in_flight(
    pool_class: type[ThreadPoolExecutor | ProcessPoolExecutor], tmp_path: Path
) -> None:
    """Once should_stop() is true nothing more is submitted; every item that started is saved.

    Items after the fourth wait for the stop, so however fast the machine, the stop comes
    while most items are still to be submitted.
    """
    done: list[str] = []
    at_stop: list[int] = []

    def should_stop() -> bool:
        if len(done) >= 4:
            at_stop.append(pool.submitted)
            (tmp_path / "stop").touch()  # the waiting items may finish now
            return True
        return False

    hooks = RunnerHooks(should_stop=should_stop, on_complete=lambda key, value: done.append(key))
    journal = tmp_path / "j"
    items = [(index, str(tmp_path)) for index in range(40)]
    with pool_class(max_workers=2) as pool, pytest.raises(InterruptedRunError) as info:
        TaskRunner(pool, chunksize=1, hooks=hooks).map(gated_item, items, journal=journal)
    partial = info.value.value
    assert pool.submitted == at_stop[0] < 40
    started = {int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")}
    saved = {index for index, value in enumerate(partial.results) if value is not None}
    assert started == saved  # queued items were cancelled, running ones finished and saved
    contents, _ = journal_module.read_journal(journal)
    assert len(contents.done) == partial.completed == len(saved)
    rerun = run_map(gated_item, items, journal=journal, executor="threads")
    assert rerun.skipped == partial.completed
    assert rerun.results == list(range(40))


def _all_dead(processes: list[psutil.Process], timeout: float) -> bool:
    """Whether all processes end within ``timeout``, without reaping them.

    (``psutil.wait_procs`` would reap our own children, and the pool that owns them would
    then wait forever for processes it can no longer see end.)
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(p.status() == psutil.STATUS_ZOMBIE for p in processes if p.is_running()):
                return True
        except psutil.NoSuchProcess:
            continue
        time.sleep(0.05)
    return False


def test_stop_timeout_abandons_long_items_and_kills_workers(tmp_path: Path) -> None:
    """Items running when stop_timeout expires are left for the next run; workers are killed."""
    stop = threading.Event()
    workers: list[psutil.Process] = []
    # Children that outlive tests (multiprocessing's resource tracker) are not this pool's.
    earlier = set(psutil.Process().children())

    def should_stop() -> bool:
        if stop.is_set() and not workers:
            workers.extend(set(psutil.Process().children()) - earlier)
        return stop.is_set()

    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    hooks = RunnerHooks(should_stop=should_stop)
    with TaskRunner("processes", max_workers=2, stop_timeout=0.5, hooks=hooks) as runner:
        with pytest.raises(InterruptedRunError) as info:
            runner.map(long_nap, range(4), journal=tmp_path / "j")
        assert time.monotonic() - started < 30  # not the 120 s an item takes (slack for load)
        assert info.value.value.remaining == 4
        assert workers
        assert _all_dead(workers, timeout=5)
        stop.clear()
        assert runner.map(square, range(3)).results == [0, 1, 4]


def test_stop_during_retry_delay_leaves_item_for_next_run(tmp_path: Path) -> None:
    """A stop asked for while an item waits to retry ends the run without blaming the item."""
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    runner = TaskRunner(retries=3, retry_delay=120, hooks=RunnerHooks(should_stop=stop.is_set))
    with pytest.raises(InterruptedRunError) as info:
        runner.map(always_fails, [1], journal=tmp_path / "j")
    assert time.monotonic() - started < 30  # not the 120 s delay (slack for load)
    assert (info.value.value.failed, info.value.value.remaining) == (0, 1)


# ---- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"executor": "gpu"}, "executor", "unknown executor 'gpu'"),
        ({"executor": 3.5}, "executor", "executor must be a name, an Executor"),
        ({"max_workers": 0}, "max_workers", "max_workers must be an integer from 1 to 4096"),
        (
            {"max_workers": 99999999999999999999},
            "max_workers",
            "max_workers must be an integer from 1 to 4096",
        ),
        ({"retries": -1}, "retries", "retries must be an integer >= 0"),
        ({"retry_delay": -0.5}, "retry_delay", "retry_delay must be a number of seconds >= 0"),
        ({"chunksize": 0}, "chunksize", "chunksize must be an integer >= 1"),
        ({"chunksize": "big"}, "chunksize", "chunksize must be an integer >= 1"),
        ({"commit_interval": 0}, "commit_interval", "must be a number of seconds > 0"),
        ({"mp_context": "teleport"}, "mp_context", "unknown start method 'teleport'"),
        ({"scheduler_address": "tcp://x:1"}, "scheduler_address", "only used with"),
        ({"result_compression": "zip"}, "compression", "unknown compression 'zip'"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_field(
    kwargs: dict[str, Any], field: str, message: str
) -> None:
    """Each bad argument raises ConfigError naming the field and the offending value."""
    with pytest.raises(ConfigError, match=message) as info:
        TaskRunner(**kwargs).map(square, [1])
    assert info.value.field == field
    assert info.value.has_value


def test_func_must_be_callable() -> None:
    """A non-callable func is refused before anything runs."""
    with pytest.raises(ConfigError, match="func must be callable"):
        TaskRunner().map(42, [1])  # type: ignore[arg-type]


def test_close_is_idempotent_and_runner_restarts() -> None:
    """close() twice is harmless, and a closed runner starts its pool again on map()."""
    runner = TaskRunner("processes", max_workers=1)
    assert runner.map(square, [2]).results == [4]
    runner.close()
    runner.close()
    assert runner.map(square, [3]).results == [9]
    runner.close()
