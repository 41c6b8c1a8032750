"""Fixtures of the runner's tests: a Dask scheduler and workers started as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

_START_TIMEOUT = 60.0


class DaskProcesses:
    """A ``dask scheduler`` and its workers on 127.0.0.1, each a process this test kills.

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
        self._node = node
        self._started_workers = 0
        self._processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "DASK_LOGGING__DISTRIBUTED": "critical",
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures),
        }
        self.scheduler = self._start(
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(self.scheduler_file),
        )
        self.workers = [self.start_worker(nanny=nanny) for _ in range(workers)]
        import distributed

        try:
            with distributed.Client(
                scheduler_file=str(self.scheduler_file), timeout=_START_TIMEOUT
            ) as client:
                client.wait_for_workers(workers, timeout=_START_TIMEOUT)
                self.address: str = client.scheduler.address
        except BaseException:
            self.close()
            raise

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
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._processes.append(process)
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
