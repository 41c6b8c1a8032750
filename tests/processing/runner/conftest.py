"""Fixtures of the runner's tests: a Dask scheduler and workers started as processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

# Seconds the scheduler and the first workers have to start and register. Each process
# imports distributed (~1.7 s of CPU); on 2 cores with four CPU burners beside other jobs
# (load average 20), two workers in namespaces of their own registered in 8 to 21 s. The
# deadline is for a cluster that will never be ready: a process that exits ends the wait
# at once, with its log.
_START_TIMEOUT = 180.0
_LOG_LINES = 40


class DaskProcesses:
    """A ``dask scheduler`` and its workers on 127.0.0.1, each a process this test kills.

    Each process writes its output (Dask's log, at INFO) to ``folder/<n>-<role>.log``;
    :meth:`describe` shows them, as a failed start does.

    Args:
        folder: Where the scheduler file goes.
        workers: Single-threaded workers to start.
        nanny: Start each worker under a Nanny, which restarts it when it dies.
        allowed_failures: The scheduler's ``distributed.scheduler.allowed-failures``.
        node: ``node(n)`` is the command prefix that starts the ``n``-th worker (from 1) as
            on a node of its own (``test_runner_other_nodes.py``'s namespaces); ``None``:
            here.
    """

    def __init__(
        self,
        folder: Path,
        *,
        workers: int,
        nanny: bool = False,
        allowed_failures: int = 3,
        node: Callable[[int], Sequence[str]] | None = None,
    ) -> None:
        self.scheduler_file = folder / "scheduler.json"
        self._folder = folder
        self._node = node
        self._started_workers = 0
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []
        self.env = {
            **os.environ,
            "DASK_LOGGING__DISTRIBUTED": "info",
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures),
        }
        self.scheduler = self._start(
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            # It still serves /health over HTTP, on 8787 unless told: a free port instead,
            # so that it never takes the port another cluster of the machine expects.
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(self.scheduler_file),
        )
        self.workers = [self.start_worker(nanny=nanny) for _ in range(workers)]
        try:
            self.address: str = self._wait_until_ready(workers)
        except BaseException:
            self.close()
            raise

    def _wait_until_ready(self, workers: int) -> str:
        """The scheduler's address, once it lists ``workers`` workers; fails, with the logs,
        when a process exits first or after :data:`_START_TIMEOUT` seconds."""
        import distributed

        deadline = time.monotonic() + _START_TIMEOUT

        def check(what: str) -> None:
            ended = [p for p in self._processes if p.poll() is not None]
            if ended or time.monotonic() > deadline:
                why = "a process exited" if ended else f"not within {_START_TIMEOUT:g} s"
                pytest.fail(f"the Dask cluster was not ready ({what}: {why})\n{self.describe()}")

        while not self.scheduler_file.exists():
            check("no scheduler file")
            time.sleep(0.05)
        with distributed.Client(
            scheduler_file=str(self.scheduler_file), timeout=_START_TIMEOUT
        ) as client:
            while len(client.nthreads()) < workers:
                check(f"{len(client.nthreads())} of {workers} workers registered")
                time.sleep(0.1)
            return str(client.scheduler.address)

    def describe(self) -> str:
        """Each process: its command, whether it runs or how it ended, its log's last lines."""
        parts = []
        for process, log in zip(self._processes, self._logs, strict=True):
            code = process.poll()
            state = "running" if code is None else f"exited with {code}"
            lines = log.read_text(errors="replace").splitlines()[-_LOG_LINES:]
            command = list(map(str, process.args))  # from the interpreter on: no node script
            command = command[command.index(sys.executable) :]
            parts.append(f"--- {log.name} ({state}): {' '.join(command)}")
            parts.extend(lines or ["(empty)"])
        return "\n".join(parts)

    def start_worker(self, *, nanny: bool) -> subprocess.Popen[bytes]:
        """Start one more single-threaded worker of this scheduler (on its node, if given)."""
        self._started_workers += 1
        prefix = () if self._node is None else tuple(self._node(self._started_workers))
        return self._start(
            "distributed.cli.dask_worker",
            "--scheduler-file",
            str(self.scheduler_file),
            "--host",
            "127.0.0.1",
            "--nthreads",
            "1",
            "--nanny" if nanny else "--no-nanny",
            "--no-dashboard",
            prefix=prefix,
        )

    def _start(self, *args: str, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        role = args[0].rpartition("_")[2]  # distributed.cli.dask_worker: worker
        log = self._folder / f"{len(self._processes)}-{role}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*prefix, sys.executable, "-m", *args],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._processes.append(process)
        self._logs.append(log)
        return process

    def kill_workers(self) -> None:
        """Kill every worker (and its Nanny), leaving the scheduler running."""
        for process in self.workers:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Kill every process, workers first (a graceful Dask shutdown takes seconds)."""
        for process in reversed(self._processes):
            process.kill()
        for process in self._processes:
            process.wait()


@pytest.fixture
def start_dask(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., DaskProcesses]]:
    """``start_dask(workers=2, ...)`` starts a :class:`DaskProcesses`; killed after the test."""
    pytest.importorskip("distributed")
    started: list[DaskProcesses] = []

    def start(**options: object) -> DaskProcesses:
        cluster = DaskProcesses(tmp_path_factory.mktemp("dask"), **options)  # type: ignore[arg-type]
        started.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in started:
            cluster.close()
