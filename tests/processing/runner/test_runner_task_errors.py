"""What a task raises is that task's failure on every executor, whatever it raises (#22).

Point 7: ``sys.exit()`` in one task (or a ``KeyboardInterrupt`` the task raises itself) ended
the whole run, recorded nothing, and so ended every rerun at the same item; a Ctrl-C must
still end the run. Point 9: an exception whose ``__str__`` raises crashed the serial loop, and
on the other executors failed every item of its batch.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.processing.runner import TaskRunner, read_journal_summary, run_map

EXECUTORS = ["serial", "threads", "processes"]


def _exits(x: int) -> int:
    if x == 2:
        sys.exit(3)
    return x * 10


def _exits_quietly(x: int) -> int:
    if x == 4:
        raise SystemExit
    return x * 10


def _interrupts_itself(x: int) -> int:
    if x == 2:
        raise KeyboardInterrupt
    return x * 10


class _Unprintable(Exception):
    """An exception whose message cannot be made: its ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")

    def __repr__(self) -> str:
        raise RuntimeError("nor a repr")


def _unprintable(x: int) -> int:
    if x == 2:
        raise _Unprintable()
    return x * 10


def _options(executor: str) -> dict[str, Any]:
    # One chunk holds every item: a failure must not spill onto its neighbours.
    return {} if executor == "serial" else {"max_workers": 2, "chunksize": 6}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sys_exit_in_a_task_fails_that_task_only(executor: str, tmp_path: Path) -> None:
    """``sys.exit(3)`` in item 2 is item 2's failure; the others complete and are journalled."""
    journal = tmp_path / "run.journal"
    result = run_map(_exits, range(6), executor=executor, journal=journal, **_options(executor))
    assert result.results == [0, 10, None, 30, 40, 50]
    assert [(f.index, f.error_type, f.message) for f in result.failures] == [(2, "SystemExit", "3")]
    assert (read_journal_summary(journal).completed, read_journal_summary(journal).failed) == (5, 1)
    again = run_map(_exits, range(6), executor=executor, journal=journal, **_options(executor))
    assert [f.index for f in again.failures] == [2]  # a rerun goes past it again


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_bare_system_exit_is_a_failure_too(executor: str) -> None:
    """``raise SystemExit`` (no code) is recorded with its type; the run goes on."""
    result = run_map(_exits_quietly, range(6), executor=executor, **_options(executor))
    assert [(f.index, f.error_type) for f in result.failures] == [(4, "SystemExit")]
    assert result.results[5] == 50


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_keyboard_interrupt_a_task_raises_itself_fails_that_task(executor: str) -> None:
    """``raise KeyboardInterrupt`` in a task, no signal involved, is that task's failure."""
    result = run_map(_interrupts_itself, range(6), executor=executor, **_options(executor))
    assert result.results == [0, 10, None, 30, 40, 50]
    assert [(f.index, f.error_type) for f in result.failures] == [(2, "KeyboardInterrupt")]


def test_retries_apply_to_a_task_that_exits() -> None:
    """A task that calls ``sys.exit`` is retried like any failing task."""
    attempts: list[int] = []

    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            sys.exit("transient")
        return x

    result = run_map(flaky, [7], retries=1)
    assert (result.results, list(result.failures), attempts) == ([7], [], [7, 7])


def _signals_itself(x: int) -> int:
    if x == 1:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the signal's KeyboardInterrupt arrives here
    return x


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (raising KeyboardInterrupt) for the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("default_sigint")
def test_a_ctrl_c_during_a_serial_task_still_ends_the_run(tmp_path: Path) -> None:
    """A SIGINT's KeyboardInterrupt ends the run, keeping what finished before it."""
    journal = tmp_path / "run.journal"
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_map(_signals_itself, range(4), journal=journal)
    assert time.monotonic() - started < 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    summary = read_journal_summary(journal)
    assert (summary.completed, summary.failed) == (1, 0)  # item 0 kept; item 1 not failed


@pytest.mark.usefixtures("default_sigint")
def test_interrupt_main_during_a_serial_task_ends_the_run() -> None:
    """``_thread.interrupt_main()`` (a simulated Ctrl-C) is a signal too: the run ends."""

    def waits(x: int) -> int:
        if x == 1:
            threading.Timer(0.2, _thread.interrupt_main).start()
            time.sleep(5)
        return x

    with pytest.raises(KeyboardInterrupt):
        run_map(waits, range(3))


def test_a_task_keyboard_interrupt_after_an_unrelated_run_is_still_its_own() -> None:
    """A SIGINT before the run does not make a task's own KeyboardInterrupt a signal's."""
    with TaskRunner("serial") as runner:
        result = runner.map(_interrupts_itself, range(4))
    assert [f.index for f in result.failures] == [2]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_exception_whose_str_raises_fails_only_its_item(executor: str) -> None:
    """The failure is described by its type; the rest of its batch completes."""
    result = run_map(_unprintable, range(6), executor=executor, **_options(executor))
    assert result.results == [0, 10, None, 30, 40, 50]
    (failure,) = result.failures
    assert failure.index == 2
    assert failure.error_type.endswith("_Unprintable")
    assert "_Unprintable" in failure.message
    assert "RuntimeError" in failure.message


def test_an_unprintable_exception_retried_is_logged_without_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The retry warning of an unprintable exception is written, naming its type."""
    with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
        result = run_map(_unprintable, [2], retries=1)
    assert [f.index for f in result.failures] == [0]
    assert "retrying: _Unprintable" in caplog.text


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """One single-worker local cluster (processes) for the Dask cases (skipped without Dask)."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            # The scheduler's HTTP port (/health) would be 8787, taken by any other cluster.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
        )
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.mark.parametrize(
    ("func", "error_type"),
    [(_exits, "SystemExit"), (_interrupts_itself, "KeyboardInterrupt"), (_unprintable, "")],
)
def test_on_dask_a_task_that_exits_interrupts_or_cannot_be_printed_fails_alone(
    dask_client: Any, func: Any, error_type: str
) -> None:
    """The same on Dask workers: only item 2 fails, with its own error type."""
    with TaskRunner(dask_client, chunksize=6) as runner:
        result = runner.map(func, range(6))
    assert result.results == [0, 10, None, 30, 40, 50]
    (failure,) = result.failures
    assert failure.index == 2
    assert failure.error_type.endswith(error_type or "_Unprintable")
