"""TaskRunner and run_map: order, resume, keys, retries, failures, stops, hooks, executors."""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing.runner import RunnerHooks, TaskRunner, run_map
from lensing_ssc.processing.runner import _journal as journal_module
from lensing_ssc.processing.runner._chunk_sizer import ChunkSizer
from lensing_ssc.processing.runner._keys import item_keys

# ---- task functions (module level, so process workers can unpickle them) -------------------


def square(x: int) -> int:
    return x * x


def thread_of(x: int) -> int:
    time.sleep(0.002)
    return threading.get_ident()


def slow_square(x: int) -> int:
    """Later items finish first, so completion order differs from input order."""
    time.sleep(0.002 * (10 - x % 10))
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x * x


def die_on_five(x: int) -> int:
    if x == 5:
        os._exit(7)
    time.sleep(0.01)
    return x * x


def flaky(item: tuple[int, str, int]) -> int:
    """Fail the first ``failures`` calls for this item (counted in files), then succeed."""
    index, folder, failures = item
    calls = Path(folder, f"calls-{index}")
    with calls.open("a") as fh:
        fh.write("x")
    if len(calls.read_text()) <= failures:
        raise RuntimeError(f"transient failure of {index}")
    return index


class PermanentError(Exception):
    retryable = False


def fail_for_good(item: tuple[int, str]) -> int:
    """Count the call, then fail with an error that says retrying cannot help."""
    index, folder = item
    with Path(folder, f"calls-{index}").open("a") as fh:
        fh.write("x")
    raise PermanentError(f"item {index} is bad data")


def record_pid(folder: str) -> None:
    Path(folder, f"init-{os.getpid()}").touch()


def pid_of(_: int) -> int:
    time.sleep(0.01)
    return os.getpid()


class Counting:
    """A callable that counts its calls (for serial and thread runs)."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = self.__wrapped__ = func  # its journal is the function's it counts
        self.calls: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, item: Any) -> Any:
        with self.lock:
            self.calls.append(item)
        return self.func(item)


EXECUTORS = ["serial", "threads", "processes"]


# ---- results and order ---------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_results_come_back_in_input_order(executor: str, tmp_path: Path) -> None:
    """Whatever order items finish in, results[i] belongs to items[i]."""
    with TaskRunner(executor, max_workers=2) as runner:
        result = runner.map(slow_square, range(30), journal=tmp_path / "j")
    assert result.results == [x * x for x in range(30)]
    assert (result.completed, result.skipped, result.failed, result.remaining) == (30, 0, 0, 0)
    assert result.ok


def test_map_result_iterates_indexes_and_reports_status() -> None:
    """A MapResult iterates, indexes and measures like its results list; its status is JSON."""
    result = run_map(fail_on_three, range(5))
    assert list(result) == [0, 1, 4, None, 16]
    assert len(result) == 5
    assert result[4] == 16
    assert not result.ok
    status = result.to_dict()
    assert json.loads(json.dumps(status)) == status
    assert status["failed"] == 1
    assert status["failures"][0]["error_type"] == "ValueError"


def test_run_map_without_journal_uses_positions_as_keys() -> None:
    """Without a journal or key=, keys are the positions and nothing is written."""
    result = run_map(square, [3, 4], executor="threads")
    assert result.keys == ("0", "1")
    assert result.results == [9, 16]


# ---- resume and keys -----------------------------------------------------------------------


def test_rerun_skips_items_completed_earlier(tmp_path: Path) -> None:
    """A second run with the same journal computes nothing and returns the same results."""
    journal = tmp_path / "j"
    first = run_map(square, range(20), journal=journal)
    counting = Counting(square)
    second = run_map(counting, range(20), journal=journal)
    assert counting.calls == []
    assert second.results == first.results
    assert (second.completed, second.skipped) == (0, 20)


def test_finished_run_starts_no_workers(tmp_path: Path) -> None:
    """A rerun with nothing left to do, or an empty item list, starts no executor."""
    journal = tmp_path / "j"
    run_map(square, range(5), journal=journal)
    with TaskRunner("processes", max_workers=2) as runner:
        assert runner.map(square, range(5), journal=journal).skipped == 5
        assert runner.map(square, []).results == []
        assert runner.get_status()["workers"] == 0


def test_rerun_with_longer_list_computes_only_new_items(tmp_path: Path) -> None:
    """Appending items to the list computes only the new ones."""
    journal = tmp_path / "j"
    run_map(square, range(10), journal=journal)
    counting = Counting(square)
    result = run_map(counting, range(15), journal=journal)  # another identity: a warning only
    assert sorted(counting.calls) == list(range(10, 15))
    assert result.results == [x * x for x in range(15)]


def test_changed_item_is_recomputed_not_served_stale(tmp_path: Path) -> None:
    """With default keys, an item changed at a position gets a new key and a fresh result."""
    journal = tmp_path / "j"
    run_map(square, [1, 2, 3], journal=journal)
    counting = Counting(square)
    result = run_map(counting, [1, 20, 3], journal=journal)
    assert counting.calls == [20]
    assert result.results == [1, 400, 9]


def test_reordered_items_with_key_function_reuse_results(tmp_path: Path) -> None:
    """With key=, results follow the key: a reordered list reuses every result."""
    journal = tmp_path / "j"
    run_map(square, [1, 2, 3], journal=journal, key=str)
    counting = Counting(square)
    result = run_map(counting, [3, 1, 2], journal=journal, key=str)
    assert counting.calls == []
    assert result.results == [9, 1, 4]
    assert result.keys == ("3", "1", "2")


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(
        st.one_of(
            st.integers(),
            st.text(),
            st.binary(),
            st.tuples(st.integers(), st.floats(allow_nan=False)),
        ),
        min_size=1,
        max_size=20,
    ),
    where=st.integers(min_value=0),
)
def test_default_keys_are_stable_and_change_only_where_items_change(
    items: list[Any], where: int
) -> None:
    """Default keys are the same for equal lists and change only at a changed position."""
    keys = item_keys(items, None)
    assert keys == item_keys(list(items), None)
    assert len(set(keys)) == len(keys)
    position = where % len(items)
    changed = [*items[:position], ("changed", items[position]), *items[position + 1 :]]
    new_keys = item_keys(changed, None)
    assert [i for i, (a, b) in enumerate(zip(keys, new_keys, strict=True)) if a != b] == [position]


def test_duplicate_keys_are_refused() -> None:
    """Two items with one key would share a result: ConfigError names both positions."""
    with pytest.raises(ConfigError, match=r"key= gave items 0 and 2 the same key 'a'") as info:
        run_map(len, ["a", "bb", "a"], key=lambda s: s)
    assert info.value.field == "key"


def test_key_of_wrong_type_is_refused() -> None:
    """key= must return a str or an int."""
    with pytest.raises(ConfigError, match="key= must return a str or an int, got float"):
        run_map(square, [1], key=float)


def test_unpicklable_item_needs_key_with_journal(tmp_path: Path) -> None:
    """An item without a pickle has no default key: ConfigError says to pass key=."""
    with pytest.raises(ConfigError, match="item 0 cannot be pickled") as info:
        run_map(id, [threading.Lock()], journal=tmp_path / "j")
    assert "pass key=" in str(info.value)


def test_journal_of_another_function_is_refused_and_resume_false_starts_over(
    tmp_path: Path,
) -> None:
    """Reusing a journal with another function is refused; resume=False starts over."""
    journal = tmp_path / "j"
    run_map(square, [1, 2], journal=journal)
    with pytest.raises(ConfigError, match=r"holds results of tests\.processing\.runner\."):
        run_map(fail_on_three, [1, 2], journal=journal)
    with TaskRunner() as runner:
        result = runner.map(fail_on_three, [1, 2], journal=journal, resume=False)
    assert (result.completed, result.skipped) == (2, 0)


def test_a_wrapper_naming_its_function_keeps_the_journal_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal written through a wrapper naming ``__wrapped__`` is the wrapped function's."""
    journal = tmp_path / "j"
    run_map(square, [1, 2], journal=journal)

    class Logged:
        def __init__(self, func: Callable[[int], int]) -> None:
            self.__wrapped__ = func

        def __call__(self, x: int) -> int:
            return self.__wrapped__(x)

    with caplog.at_level("WARNING", logger="lensing_ssc.processing.runner"):
        reused = run_map(Logged(square), [1, 2, 3], journal=journal)
    assert (reused.skipped, reused.completed) == (2, 1)
    assert "written by" not in caplog.text


def test_chunksize_can_be_set_per_run(tmp_path: Path) -> None:
    """map(chunksize=) overrides the runner's for that run: items travel in such groups."""
    with TaskRunner("threads", max_workers=2) as runner:
        grouped = runner.map(thread_of, range(12), chunksize=4).results
        with pytest.raises(ConfigError, match="chunksize must be an integer >= 1"):
            runner.map(thread_of, range(4), chunksize=0)
    assert all(len({grouped[i] for i in range(start, start + 4)}) == 1 for start in range(0, 12, 4))


# ---- failures and retries ------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failing_item_is_recorded_and_others_complete(executor: str, tmp_path: Path) -> None:
    """An item that raises is recorded with its traceback; every other item completes."""
    with TaskRunner(executor, max_workers=2) as runner:
        result = runner.map(fail_on_three, range(8), journal=tmp_path / "j")
    assert result.results == [0, 1, 4, None, 16, 25, 36, 49]
    (failure,) = result.failures
    assert (failure.index, failure.error_type, failure.message) == (3, "ValueError", "bad item 3")
    assert 'raise ValueError(f"bad item {x}")' in failure.traceback
    assert failure.attempts == 1


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retries_recover_transient_failures(executor: str, tmp_path: Path) -> None:
    """An item failing twice succeeds with retries=2, spaced by retry_delay."""
    items = [(index, str(tmp_path), 2 if index == 1 else 0) for index in range(4)]
    started = time.monotonic()
    with TaskRunner(executor, max_workers=2, retries=2, retry_delay=0.05) as runner:
        result = runner.map(flaky, items)
    assert result.results == [0, 1, 2, 3]
    assert time.monotonic() - started >= 0.1
    assert len((tmp_path / "calls-1").read_text()) == 3


def test_too_few_retries_record_failure_with_attempts(tmp_path: Path) -> None:
    """When retries run out the failure says how many attempts were made."""
    items = [(0, str(tmp_path), 5)]
    result = run_map(flaky, items, retries=1)
    assert result.failures[0].attempts == 2
    assert result.failures[0].error_type == "RuntimeError"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_errors_that_say_they_are_permanent_are_not_retried(executor: str, tmp_path: Path) -> None:
    """An exception with retryable = False is recorded after one call, whatever retries says."""
    with TaskRunner(executor, max_workers=2, retries=3) as runner:
        result = runner.map(fail_for_good, [(0, str(tmp_path)), (1, str(tmp_path))])
    assert [f.attempts for f in result.failures] == [1, 1]
    assert [len((tmp_path / f"calls-{i}").read_text()) for i in (0, 1)] == [1, 1]


def test_item_that_kills_its_worker_is_recorded_and_run_goes_on(tmp_path: Path) -> None:
    """An item calling os._exit in a process worker is recorded as WorkerDied; others complete."""
    with TaskRunner("processes", max_workers=2, chunksize=1) as runner:
        result = runner.map(die_on_five, range(12), journal=tmp_path / "j")
        again = runner.map(square, range(3))  # the rebuilt pool still serves
    assert result.results == [x * x if x != 5 else None for x in range(12)]
    (failure,) = result.failures
    assert failure.index == 5
    assert failure.error_type == "WorkerDied"
    assert "worker process running this item died" in failure.message
    assert again.results == [0, 1, 4]


def test_killing_item_is_retried_alone_before_it_is_blamed(tmp_path: Path) -> None:
    """With retries=1 a worker-killing item runs alone twice before it is recorded."""
    with TaskRunner("processes", max_workers=2, chunksize=1, retries=1) as runner:
        result = runner.map(die_on_five, range(8))
    (failure,) = result.failures
    assert failure.index == 5
    assert failure.attempts == 3  # once with others, then alone twice


def test_failures_are_journalled_and_rerun_or_reported(tmp_path: Path) -> None:
    """A rerun tries failed items again; rerun_failed=False reports the recorded failure."""
    journal = tmp_path / "j"
    run_map(fail_on_three, range(5), journal=journal)
    with TaskRunner() as runner:
        counting = Counting(fail_on_three)
        kept = runner.map(counting, range(5), journal=journal, rerun_failed=False)
        assert counting.calls == []
        assert [f.index for f in kept.failures] == [3]
        assert kept.failures[0].traceback
        rerun = runner.map(counting, range(5), journal=journal)
        assert counting.calls == [3]
        assert rerun.failed == 1


def test_unpicklable_result_fails_only_its_item(tmp_path: Path) -> None:
    """A result the journal cannot pickle fails that item; the rest are saved."""

    def make(x: int) -> object:
        return threading.Lock() if x == 1 else x

    result = run_map(make, range(3), journal=tmp_path / "j")
    assert result.results[0] == 0
    assert result.results[2] == 2
    assert result.failures[0].index == 1
    assert "cannot be saved in the journal" in result.failures[0].message


def test_broken_borrowed_executor_raises_after_saving(tmp_path: Path) -> None:
    """A borrowed pool broken by a dying worker is not rebuilt: BrokenExecutor, work kept."""
    journal = tmp_path / "j"
    with (
        ProcessPoolExecutor(max_workers=1) as pool,
        pytest.raises(BrokenExecutor, match="pass a factory"),
    ):
        TaskRunner(pool, chunksize=1, max_in_flight=1).map(die_on_five, range(8), journal=journal)
    contents, _ = journal_module.read_journal(journal)
    assert len(contents.done) == 5  # items 0-4 finished before item 5 broke the pool


# ---- executors -----------------------------------------------------------------------------


def test_borrowed_process_pool_is_used_and_left_open() -> None:
    """A ProcessPoolExecutor instance passed in runs the items and is not shut down."""
    with ProcessPoolExecutor(max_workers=2) as pool:
        with TaskRunner(pool) as runner:
            result = runner.map(square, range(10))
        assert result.results == [x * x for x in range(10)]
        assert pool.submit(square, 3).result() == 9
        assert runner.get_status()["executor"] == "executor"


def test_executor_factory_is_owned_by_the_runner() -> None:
    """An executor class (a factory, as MPIPoolExecutor would be) is built and used."""
    with TaskRunner(ProcessPoolExecutor, max_workers=2) as runner:
        assert runner.map(square, range(6)).results == [0, 1, 4, 9, 16, 25]


def test_processes_use_several_workers() -> None:
    """A process run spreads items over more than one worker process, none of them ours."""
    result = run_map(pid_of, range(20), executor="processes", max_workers=2, chunksize=1)
    pids = set(result.results)
    assert len(pids) == 2
    assert os.getpid() not in pids


class CountingPool(ThreadPoolExecutor):
    """A thread pool that records how many submitted tasks were outstanding at most."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.outstanding = 0
        self.most = 0
        self.submitted = 0
        self.guard = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.guard:
            self.outstanding += 1
            self.submitted += 1
            self.most = max(self.most, self.outstanding)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any]) -> None:
        with self.guard:
            self.outstanding -= 1


def test_submission_is_bounded_by_max_in_flight() -> None:
    """Never more than max_in_flight tasks are submitted at once, however many items."""
    with CountingPool() as pool:
        result = TaskRunner(pool, max_in_flight=3, chunksize=1).map(slow_square, range(60))
    assert result.ok
    assert pool.most <= 3
    assert pool.submitted == 60


def test_default_in_flight_window_holds_about_a_tenth_of_a_second_per_worker() -> None:
    """By default each worker gets 2 tasks, or ~0.1 s of queued work, and never more than 16."""
    sizer = ChunkSizer(fixed=1, target=0.02)
    assert sizer.tasks_per_worker() == 2  # nothing measured yet
    sizer.observe(0.5, 1)
    assert sizer.tasks_per_worker() == 2
    sizer = ChunkSizer(fixed=1, target=0.02)
    sizer.observe(0.01, 1)
    assert sizer.tasks_per_worker() == 11
    assert ChunkSizer(fixed=1, target=0.02, task_mean=1e-5).tasks_per_worker() == 16
    with CountingPool() as pool:
        TaskRunner(pool, max_workers=2, chunksize=1).map(slow_square, range(100))
    assert 4 < pool.most <= 32


def test_auto_chunking_groups_tiny_items() -> None:
    """With chunksize="auto", tiny items travel several to a task."""
    with CountingPool() as pool:
        result = TaskRunner(pool).map(square, range(2000))
    assert result.results == [x * x for x in range(2000)]
    assert pool.submitted < 1000


def test_thread_workers_see_the_callers_context_and_wrapper() -> None:
    """Thread tasks run in a copy of the caller's contextvars, through context_wrapper."""
    run_id: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="none")
    wrapped: list[str] = []

    def wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapped.append(run_id.get())
        return fn

    run_id.set("run-42")
    hooks = RunnerHooks(context_wrapper=wrapper)
    with TaskRunner("threads", max_workers=2, hooks=hooks) as runner:
        result = runner.map(lambda _: run_id.get(), range(4))
    assert result.results == ["run-42"] * 4
    assert wrapped
    assert set(wrapped) == {"run-42"}


def test_worker_initializer_runs_once_in_each_worker_process(tmp_path: Path) -> None:
    """The initializer runs in every worker of a process pool, and never in the runner."""
    hooks = RunnerHooks(worker_initializer=record_pid, initargs=(str(tmp_path),))
    with TaskRunner("processes", max_workers=2, chunksize=1, hooks=hooks) as runner:
        workers = set(runner.map(pid_of, range(20)).results)
    inits = {int(p.name.split("-")[1]) for p in tmp_path.glob("init-*")}
    assert workers <= inits
    assert os.getpid() not in inits


def test_worker_initializer_reaches_a_borrowed_process_pool(tmp_path: Path) -> None:
    """Workers of a user's executor run the initializer once each, before their first item."""
    hooks = RunnerHooks(worker_initializer=record_pid, initargs=(str(tmp_path),))
    with ProcessPoolExecutor(max_workers=2) as pool:
        workers = set(TaskRunner(pool, hooks=hooks, chunksize=1).map(pid_of, range(20)).results)
    inits = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("init-*"))
    assert set(inits) == workers
    assert len(inits) == len(set(inits))
