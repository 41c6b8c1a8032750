"""The runner on Dask: a borrowed Client on one shared LocalCluster, and its own cluster."""

from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (installed with distributed)
import dask  # noqa: E402

from lensing_ssc.core.base.exceptions import ConfigError, InterruptedRunError  # noqa: E402
from lensing_ssc.processing.managers.log import LogManager  # noqa: E402
from lensing_ssc.processing.runner import RunnerHooks, TaskRunner  # noqa: E402

JOB = Path(__file__).with_name("runner_job.py")
MARKER_MODULE = "lensing_ssc_test_fork_marker"
_spec = importlib.util.spec_from_file_location("runner_job", JOB)
assert _spec is not None
assert _spec.loader is not None
runner_job = importlib.util.module_from_spec(_spec)
sys.modules["runner_job"] = runner_job
_spec.loader.exec_module(runner_job)

# Dask workers cannot import test modules by name: ship their functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(runner_job)


def square(x: int) -> int:
    return x * x


def nap_square(x: int) -> int:
    time.sleep(0.02)
    return x * x


def trouble(x: int) -> int:
    if x == 2:
        raise KeyError("no such patch")
    if x == 5:
        os._exit(9)
    return x * x


def record_pid(folder: str) -> None:
    Path(folder, f"init-{os.getpid()}").touch()


def pid_of(_: int) -> int:
    time.sleep(0.01)
    return os.getpid()


def fork_marker(_: int) -> tuple[int, int, str | None]:
    """The worker's pid and parent pid, and the marker it inherited from the runner's
    process, if any."""
    time.sleep(0.01)
    marker = sys.modules.get(MARKER_MODULE)
    return os.getpid(), os.getppid(), None if marker is None else marker.token


def worker_settings(_: int) -> tuple[bool, str]:
    """Whether Dask's profiler samples this worker's tasks, and its event-loop tick."""
    return (
        dask.config.get("distributed.worker.profile.enabled"),
        str(dask.config.get("distributed.admin.tick.interval")),
    )


class Messages(logging.Handler):
    """Keeps the message of each record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """One two-worker local cluster for the module (starting one takes about a second)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
        )
    with cluster, distributed.Client(cluster, set_as_default=False) as dask_client:
        yield dask_client


def test_borrowed_client_runs_in_order_and_resumes(
    client: distributed.Client, tmp_path: Path
) -> None:
    """A user's Client runs the items in input order; a rerun takes them from the journal."""
    journal = tmp_path / "j"
    with TaskRunner(client) as runner:
        first = runner.map(nap_square, range(30), journal=journal)
        second = runner.map(nap_square, range(30), journal=journal)
        assert runner.get_status()["executor"] == "dask"
    assert first.results == [x * x for x in range(30)]
    assert (second.completed, second.skipped) == (0, 30)
    assert client.status == "running"  # borrowed: not closed by the runner


def test_raising_and_worker_killing_items_are_recorded(client: distributed.Client) -> None:
    """On Dask too, items that raise or kill their worker are recorded; the rest complete."""
    with TaskRunner(client, chunksize=1) as runner:
        result = runner.map(trouble, range(10))
    assert [f.index for f in result.failures] == [2, 5]
    assert result.failures[0].error_type == "KeyError"
    assert result.failures[1].error_type == "WorkerDied"
    assert result.results == [x * x if x not in (2, 5) else None for x in range(10)]


def test_worker_initializer_runs_on_dask_workers(
    client: distributed.Client, tmp_path: Path
) -> None:
    """The worker initializer runs once in each Dask worker process that gets work."""
    hooks = RunnerHooks(worker_initializer=record_pid, initargs=(str(tmp_path),))
    with TaskRunner(client, chunksize=1, hooks=hooks) as runner:
        workers = set(runner.map(pid_of, range(20)).results)
    inits = {int(p.name.split("-")[1]) for p in tmp_path.glob("init-*")}
    assert workers == inits
    assert os.getpid() not in inits


def test_stop_on_dask_keeps_finished_items(client: distributed.Client, tmp_path: Path) -> None:
    """A stop request on Dask raises InterruptedRunError; the rerun finishes the rest."""
    stop = threading.Event()
    done: list[str] = []

    def on_complete(key: str, value: int) -> None:
        done.append(key)
        if len(done) >= 5:
            stop.set()

    hooks = RunnerHooks(should_stop=stop.is_set, on_complete=on_complete)
    journal = tmp_path / "j"
    with (
        TaskRunner(client, chunksize=1, hooks=hooks) as runner,
        pytest.raises(InterruptedRunError) as info,
    ):
        runner.map(nap_square, range(60), journal=journal)
    partial = info.value.value
    assert 5 <= partial.completed < 60
    rerun = TaskRunner(client).map(nap_square, range(60), journal=journal)
    assert rerun.skipped == partial.completed
    assert rerun.results == [x * x for x in range(60)]


def _markers(folder: Path, kind: str) -> Counter[int]:
    return Counter(int(p.name.split("-")[1]) for p in folder.glob(f"{kind}-*"))


def test_sigkilled_runner_on_a_joined_cluster_reruns_to_identical_results(
    client: distributed.Client, tmp_path: Path, children: Any
) -> None:
    """A SIGKILLed runner joined to a cluster reruns to full results, redoing ≤ 4 items."""
    markers = tmp_path / "markers"
    journal = tmp_path / "job.journal"
    args = [
        sys.executable,
        str(JOB),
        "--executor",
        "dask",
        "--scheduler",
        client.scheduler.address,
        "--journal",
        str(journal),
        "--markers",
        str(markers),
        "--items",
        "40",
        "--seconds",
        "0.05",
    ]
    proc = children.start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(_markers(markers, "finish").values()) < 10:
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.02)
    children.sigkill(proc)
    started_before = sum(_markers(markers, "start").values())

    with TaskRunner(client, chunksize=1) as runner:
        result = runner.map(
            runner_job.work, [(i, str(markers), 0.05) for i in range(40)], journal=journal
        )

    assert result.results == [i * i + 0.5 for i in range(40)]
    assert result.skipped >= started_before - 4
    starts = _markers(markers, "start")
    assert set(starts) == set(range(40))
    assert len([i for i, count in starts.items() if count > 1]) <= 4


def test_runner_starts_and_closes_its_own_local_cluster() -> None:
    """executor="dask" starts a LocalCluster of max_workers processes and closes it on close()."""
    runner = TaskRunner("dask", max_workers=2)
    with runner:
        result = runner.map(pid_of, range(12))
        settings = set(runner.map(worker_settings, range(4)).results)
        status = runner.get_status()
        own_client = runner._adapter.client  # type: ignore[union-attr]
    assert len(set(result.results)) == 2
    assert status["workers"] == 2
    assert own_client.status == "closed"
    # Its workers run tasks without Dask's 100 Hz stack sampler and 50 Hz loop ticks.
    assert settings == {(False, "1s")}


def test_a_borrowed_cluster_keeps_its_own_dask_settings(client: distributed.Client) -> None:
    """The runner changes the settings only of clusters it starts, never of a user's."""
    with TaskRunner(client, chunksize=1) as runner:
        settings = set(runner.map(worker_settings, range(4)).results)
    assert settings == {(True, "20ms")}


@pytest.mark.parametrize(("method", "from_server"), [(None, True), ("spawn", False)])
def test_the_local_cluster_starts_its_workers_from_a_fork_server_unless_told(
    method: str | None, from_server: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default workers fork from a fork server; mp_context="spawn" starts them afresh."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no fork server")
    marker = types.ModuleType(MARKER_MODULE)
    marker.token = "set before the cluster started"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, MARKER_MODULE, marker)
    before = dask.config.get("distributed.worker.multiprocessing-method")
    with TaskRunner("dask", max_workers=2, mp_context=method, chunksize=1) as runner:
        seen = set(runner.map(fork_marker, range(8)).results)
        during = dask.config.get("distributed.worker.multiprocessing-method")
    assert os.getpid() not in {pid for pid, _, _ in seen}
    # A fork server's children are not this process's, and neither copied its modules.
    assert {parent != os.getpid() for _, parent, _ in seen} == {from_server}
    assert {token for _, _, token in seen} == {None}
    assert during == before  # the start method was Dask's setting only while it started


@pytest.mark.parametrize(
    "fork", ["fork", multiprocessing.get_context("fork")], ids=["name", "context"]
)
def test_the_local_cluster_refuses_to_fork_its_workers_from_this_process(fork: Any) -> None:
    """mp_context="fork" for the local cluster is a ConfigError naming the fix; no worker."""
    children_before = set(multiprocessing.active_children())  # the module's cluster's
    with pytest.raises(ConfigError) as info:
        TaskRunner("dask", max_workers=2, mp_context=fork)  # refused before any map
    error = info.value
    assert (error.field, error.value) == ("mp_context", "fork")
    assert error.message.startswith("the local Dask cluster cannot fork its workers")
    assert "Python 3.12 deprecates" in error.message
    assert error.hint is not None
    assert error.hint.startswith("leave mp_context unset")
    assert set(multiprocessing.active_children()) <= children_before  # nothing started


def test_dask_client_warnings_go_to_the_run_log_while_the_runner_holds_its_client(
    client: distributed.Client, tmp_path: Path
) -> None:
    """Dask's client warnings reach the run's log, not Dask's stderr handler, while the
    runner holds a Client it opened; afterwards Dask's handler has them again."""
    dask_log = distributed.client.logger
    to_dask = Messages()  # beside Dask's own handler, which prints on stderr
    dask_log.addHandler(to_dask)
    log_file = tmp_path / "run.log"
    try:
        with (
            LogManager(file_path=log_file, format_type="json"),
            TaskRunner("dask", scheduler_address=client.scheduler.address) as runner,
        ):
            assert runner.map(square, range(4)).results == [0, 1, 4, 9]
            # What Dask logs when a worker dies before a result is fetched.
            dask_log.warning("Couldn't gather %s keys, rescheduling %s", 1, ("square-1",))
        dask_log.warning("a warning of the user's own Client")
    finally:
        dask_log.removeHandler(to_dask)
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    gathers = [r for r in records if r["message"].startswith("Couldn't gather")]
    assert [(r["logger"], r["level"]) for r in gathers] == [("distributed.client", "WARNING")]
    assert to_dask.messages == ["a warning of the user's own Client"]
    assert client.status == "running"


def test_the_local_clusters_workers_ignore_a_ctrl_c() -> None:
    """SIGINT (a Ctrl-C reaches the process group) leaves the cluster's workers running."""
    with TaskRunner("dask", max_workers=2, chunksize=1) as runner:
        before = set(runner.map(pid_of, range(8)).results)
        for pid in before:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        after = set(runner.map(pid_of, range(8)).results)
    assert len(before) == 2
    assert after == before
