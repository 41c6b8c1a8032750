"""Joining a running Dask cluster: a real scheduler and two workers, from the runner to the CLI.

One ``dask scheduler`` and two single-threaded ``dask worker`` processes on 127.0.0.1
serve every test of the module (started once: ~3 s). Also here: how a scheduler is named
(address, scheduler file, ``DASK_SCHEDULER_ADDRESS``, ``pipeline.scheduler``), the errors
for an unreachable scheduler and a conflicting executor, and a worker that cannot reach the
parent's log writer.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

from lensing_ssc.cli import main  # noqa: E402
from lensing_ssc.core.base.exceptions import ConfigError, ResourceError  # noqa: E402
from lensing_ssc.pipelines import PipelineConfig, read_results, run_patch_statistics  # noqa: E402
from lensing_ssc.processing.managers import (  # noqa: E402
    LogManager,
    ManagerContext,
    ResourceManager,
)
from lensing_ssc.processing.managers.log import _loggers as _log_loggers  # noqa: E402
from lensing_ssc.processing.managers.log import _process_events as _log_process  # noqa: E402
from lensing_ssc.processing.runner import TaskRunner  # noqa: E402
from lensing_ssc.processing.runner._worker import RetryPolicy, WorkerSetup, run_unit  # noqa: E402

TINY = {
    "retries": 0,
    "figures": False,
    "synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2},
}
WORKER_MEMORY = 2 * 2**30
_START_TIMEOUT = 60.0


class Cluster:
    """A scheduler and two workers started as processes, closed in reverse order."""

    def __init__(self, folder: Path) -> None:
        self.scheduler_file = folder / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        quiet = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "error"}
        self._start(
            [
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
            quiet,
        )
        for name in ("w1", "w2"):
            self._start(
                [
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(self.scheduler_file),
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--memory-limit",
                    str(WORKER_MEMORY),
                    "--name",
                    name,
                ],
                quiet,
            )
        # The client waits on the scheduler file, then on the workers' registration.
        with distributed.Client(
            scheduler_file=str(self.scheduler_file), timeout=_START_TIMEOUT
        ) as client:
            client.wait_for_workers(2, timeout=_START_TIMEOUT)
            self.address: str = client.scheduler.address

    def _start(self, args: list[str], env: dict[str, str]) -> None:
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def close(self) -> None:
        # Killed, not terminated: a graceful Dask shutdown takes seconds and keeps nothing.
        for process in reversed(self.processes):
            process.kill()
        for process in self.processes:
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running cluster of two single-threaded workers on 127.0.0.1, shared by the module."""
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(autouse=True)
def _no_scheduler_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a scheduler the machine's environment names."""
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.delenv("LENSING_SSC_PIPELINE__SCHEDULER", raising=False)


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _config(run_dir: Path, **pipeline: Any) -> PipelineConfig:
    return PipelineConfig(
        run_dir=run_dir,
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
        pipeline={**TINY, **pipeline},
    )


# -- the runner -----------------------------------------------------------------------------


def test_a_scheduler_file_joins_the_cluster_and_max_workers_asks_it(cluster: Cluster) -> None:
    """TaskRunner with a scheduler file joins it and reports the cluster's two workers."""
    with TaskRunner("dask", scheduler_address=str(cluster.scheduler_file)) as runner:
        assert runner.scheduler_address == cluster.address
        assert runner.joins_cluster
        assert (runner.max_workers, runner.worker_count()) == (2, 2)
        workers = runner.cluster_workers()
        assert [(w.nthreads, w.memory_limit) for w in workers] == [(1, WORKER_MEMORY)] * 2
        assert runner.map(abs, [-1, -2, 3]).results == [1, 2, 3]


def test_dask_scheduler_address_variable_is_joined_when_nothing_else_names_one(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """executor='dask' with DASK_SCHEDULER_ADDRESS set joins that scheduler."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    with TaskRunner("dask") as runner:
        assert runner.scheduler_address == cluster.address
        assert runner.max_workers == 2
    assert TaskRunner("processes").scheduler_address is None


def test_runner_for_gives_the_cluster_worker_count(cluster: Cluster, tmp_path: Path) -> None:
    """ctx.runner_for(...).max_workers is the joined cluster's count, not this machine's."""
    config = PipelineConfig(run_dir=tmp_path / "run", progress={"enabled": False})
    with ManagerContext(config=config, executor="dask", stop_signals=()) as ctx:
        runner = ctx.runner_for(scheduler_address=cluster.address)
        assert (runner.max_workers, runner.runs_in_this_process) == (2, False)


def test_an_unreachable_scheduler_is_one_config_error(tmp_path: Path) -> None:
    """A scheduler that does not answer is a ConfigError naming its address and what to check."""
    address = _closed_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        runner = TaskRunner("dask", scheduler_address=address)
        with pytest.raises(ConfigError, match="cannot reach the Dask scheduler") as info:
            runner.max_workers  # noqa: B018 - asking the cluster connects to it
    assert info.value.value == address
    assert "dask scheduler" in (info.value.hint or "")


def test_a_missing_scheduler_file_is_a_config_error(tmp_path: Path) -> None:
    """A scheduler file that does not exist is a ConfigError naming the path."""
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ConfigError, match="no Dask scheduler file") as info:
        TaskRunner("dask", scheduler_address=str(missing))
    assert info.value.value == str(missing)


# -- the pipeline and the command line ------------------------------------------------------


def test_cli_scheduler_file_run_equals_a_serial_run_and_records_dask(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lensing-ssc run --scheduler-file gives the serial numbers; metadata: dask, 2 workers."""
    serial = run_patch_statistics(_config(tmp_path / "serial", executor="serial"))
    config_file = tmp_path / "c.json"
    body = _config(Path("joined")).to_dict()
    body["pipeline"].pop("executor")  # the scheduler file implies dask
    config_file.write_text(json.dumps(body))
    monkeypatch.chdir(tmp_path)  # a relative run_dir: what the workers get must be absolute
    code = main(["run", str(config_file), "--scheduler-file", str(cluster.scheduler_file)])
    assert code == 0
    joined = read_results(tmp_path / "joined" / "results" / serial.results_file.name)
    expected = read_results(serial.results_file)
    arrays = sorted(k for k in expected if not k.startswith("meta/"))
    assert arrays == sorted(k for k in joined if not k.startswith("meta/"))
    for key in arrays:
        np.testing.assert_array_equal(joined[key], expected[key], err_msg=key)
    recorded = joined["meta/config"]["pipeline"]
    assert (recorded["executor"], recorded["workers"]) == ("dask", 2)
    assert recorded["scheduler"] == cluster.address
    assert joined["meta/config"]["run_dir"] == str(tmp_path / "joined")
    assert not list(tmp_path.glob("**/dask-worker-space"))


def test_pipeline_scheduler_key_joins_and_the_run_says_so(cluster: Cluster, tmp_path: Path) -> None:
    """pipeline.scheduler (an address) implies dask; PipelineRun names dask, it and 2 workers."""
    config = _config(tmp_path / "run", scheduler=cluster.address)
    assert config.pipeline.executor == "dask"
    run = run_patch_statistics(config)
    assert (run.executor, run.scheduler, run.workers) == ("dask", cluster.address, 2)
    assert (run.n_patches, run.failures) == (16, ())


def test_memory_guard_does_not_count_this_process_once_per_cluster_worker(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A limit that two local worker processes (copies of this one) break suits the cluster."""
    with ResourceManager() as resource:  # the memory the guard counts for this job now
        used_mb = resource.get_current_usage().memory_mb or 0.0
    local = _config(tmp_path / "local", executor="processes", workers=2)
    local.resources.memory_limit_mb = used_mb + 300.0
    with pytest.raises(ResourceError, match="as a copy of this one"):
        run_patch_statistics(local)
    joined = _config(tmp_path / "joined", scheduler=cluster.address)
    joined.resources.memory_limit_mb = used_mb + 300.0
    assert run_patch_statistics(joined).workers == 2


def test_memory_guard_refuses_work_above_a_cluster_workers_limit(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Maps whose work exceeds a Dask worker's memory_limit are refused before any task runs."""
    big = {"patch_pixels": 128, "patches_per_side": 64, "n_large_fields": 1}  # 8192² fields
    config = _config(tmp_path / "run", scheduler=cluster.address, synthetic=big)
    with pytest.raises(ResourceError, match="more than its memory limit of 2048 MiB"):
        run_patch_statistics(config)
    assert not (tmp_path / "run" / "tasks").exists()


def test_a_scheduler_with_another_executor_is_a_config_error_naming_both(tmp_path: Path) -> None:
    """pipeline.scheduler with executor 'threads' is refused in the config and by the API."""
    address = "tcp://127.0.0.1:8786"
    with pytest.raises(ConfigError, match=r"pipeline\.scheduler .* pipeline\.executor is 'thr"):
        _config(tmp_path, scheduler=address, executor="threads")
    with pytest.raises(ConfigError, match=r"'threads' was asked for, but pipeline\.scheduler"):
        run_patch_statistics(_config(tmp_path, scheduler=address), executor="threads")


def test_cli_scheduler_with_another_executor_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--scheduler with --executor threads is one error line naming both, exit status 2."""
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps(_config(tmp_path / "run").to_dict()))
    code = main(["run", str(config_file), "--scheduler", _closed_port(), "--executor", "threads"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --executor threads was asked for, but --scheduler")
    assert len(err.strip().splitlines()) == 1


def test_cli_unreachable_scheduler_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--scheduler at a port nobody serves is one error line naming the address, exit 2."""
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps(_config(tmp_path / "run").to_dict()))
    address = _closed_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", str(config_file), "--scheduler", address])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: cannot reach the Dask scheduler at '{address}'")
    assert "Traceback" not in err


def test_environment_variable_names_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """LENSING_SSC_PIPELINE__SCHEDULER sets pipeline.scheduler and so the dask executor."""
    monkeypatch.setenv("LENSING_SSC_PIPELINE__SCHEDULER", "tcp://10.0.0.5:8786")
    config = PipelineConfig.from_dict({}, env=True)
    assert (config.pipeline.scheduler, config.pipeline.executor) == ("tcp://10.0.0.5:8786", "dask")


# -- a worker that cannot reach the parent's log writer -------------------------------------


def _log_and_double(x: int) -> int:
    logging.getLogger("lensing_ssc.cluster_test").warning("item %d on a distant node", x)
    return 2 * x


def test_a_worker_without_the_parents_log_writer_runs_its_item_and_logs_locally(
    tmp_path: Path,
) -> None:
    """An unreachable log socket does not fail the item; its record lands in logs/workers/."""
    log_file = tmp_path / "logs" / "lensing_ssc.log"
    with LogManager(file_path=log_file, console=False, format_type="json") as parent:
        config = parent.worker_config()
    # Closed: its socket is gone, as the driver's /tmp is out of sight on another node.
    setup = WorkerSetup(LogManager.attach_worker, (config,), runner_pid=-1, token="distant")
    try:
        (outcome,) = run_unit(_log_and_double, [(0, 21)], RetryPolicy(), setup).outcomes
    finally:
        for manager in _log_process._live():
            manager.close()
        _log_loggers.reset()
    assert (outcome.ok, outcome.value) == (True, 42)
    local = tmp_path / "logs" / "workers" / f"{socket.gethostname()}-{os.getpid()}.log"
    messages = [json.loads(line)["message"] for line in local.read_text().splitlines()]
    assert any("cannot reach the parent's log writer" in m for m in messages)
    assert "item 21 on a distant node" in messages
