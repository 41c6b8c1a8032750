"""The memory plan counts one driver and its workers: MPI ranks start as fresh processes, and
only the ranks on the driver's host count against its memory limit.

The MPI tests start real jobs with ``mpiexec -n 4 python -m mpi4py.futures DRIVER``: rank 0
runs the pipeline on an ``MPIPoolExecutor`` served by ranks 1-3. The driver holds 600 MiB
of its own (a notebook's data, say), which a plan counting every rank as a copy of the
driver would count four times.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from lensing_ssc.pipelines._memory_plan import WorkerPlacement, place_workers, ranks_on_this_host
from lensing_ssc.processing.runner import TaskRunner

DRIVER = textwrap.dedent(
    """
    import sys

    import numpy as np
    import psutil

    from lensing_ssc.core.base.exceptions import ResourceError
    from lensing_ssc.pipelines import PipelineConfig, run_patch_statistics

    if __name__ == "__main__":  # the worker ranks import this file too
        from mpi4py.futures import MPIPoolExecutor

        run_dir, ballast_mib, limit_mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
        spawned = sys.argv[4:] == ["spawn"]  # the pool spawns 3 ranks (MPI_Comm_spawn)
        ballast = np.ones(ballast_mib << 20, np.uint8)  # the driver's own data, resident
        config = PipelineConfig(
            run_dir=run_dir,
            logging={"console": False},
            progress={"enabled": False},
            pipeline={
                "figures": False,
                "retries": 0,
                "synthetic": {"patch_pixels": 128, "patches_per_side": 2, "n_large_fields": 2},
            },
        )
        config.resources.memory_limit_mb = limit_mb
        print("rss", psutil.Process().memory_info().rss >> 20, flush=True)
        try:
            pool = (lambda: MPIPoolExecutor(max_workers=3)) if spawned else MPIPoolExecutor
            run = run_patch_statistics(config, executor=pool)
        except ResourceError as exc:
            print("refused:", exc, flush=True)
        else:
            print("ran", run.workers, run.n_patches, flush=True)
    """
)


def _mpi_works() -> bool:
    """Whether mpi4py is installed, finds an MPI library, and mpiexec is on PATH."""
    if shutil.which("mpiexec") is None:
        return False
    check = [sys.executable, "-c", "from mpi4py import MPI"]
    return subprocess.run(check, capture_output=True, timeout=60).returncode == 0


def _hydra() -> bool:
    """Whether mpiexec is MPICH's or Intel MPI's Hydra (whose fork launcher fakes hosts)."""
    done = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, timeout=60)
    return "HYDRA" in done.stdout


MPI_WORKS = _mpi_works()
UNSET_COUNTS = tuple(
    f"--unset={name}"
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
)
"""``env`` options that unset the launchers' counts of a host's ranks."""
needs_mpi = pytest.mark.skipif(not MPI_WORKS, reason="needs mpi4py, an MPI library and mpiexec")


def _run_driver(
    tmp_path: Path,
    name: str,
    limit_mb: float,
    *launcher: str,
    rank: tuple[str, ...] = ("-n", "4", sys.executable, "-m", "mpi4py.futures"),
    mode: tuple[str, ...] = (),
) -> tuple[dict[str, str], int]:
    """Run the driver under mpiexec: its output lines by first word, and the peak MiB of the
    summed resident memory of the ranks under mpiexec (the Python processes the plan is of;
    the launcher's own proxies, a few MiB, are the launcher's)."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    command = [
        "mpiexec", *launcher, *rank, str(script), str(tmp_path / name), "600", str(limit_mb),
        *mode,
    ]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()
    python = os.path.realpath(sys.executable)  # what /proc/PID/exe names for a rank

    def sample() -> None:
        nonlocal peak
        top = psutil.Process(job.pid)
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                tree = top.children(recursive=True)
                ranks = [p for p in tree if p.exe() == python]
                peak = max(peak, sum(p.memory_info().rss for p in ranks))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out, err = job.communicate(timeout=300)
    finally:
        done.set()
        sampler.join()
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode == 0, err
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    return lines, peak >> 20


def _estimate(refusal: str) -> float:
    """The MiB a refusal says the run needs."""
    return float(re.search(r"needs about (\d+) MiB", refusal)[1])  # type: ignore[index]


@needs_mpi
def test_mpi_ranks_count_as_fresh_workers_so_a_large_driver_runs_under_its_limit(
    tmp_path: Path,
) -> None:
    """A 600 MiB driver and 3 worker ranks run under a limit four driver copies would break,
    and the plan's estimate still covers the memory the job's processes really reach."""
    lines, _ = _run_driver(tmp_path, "probe", 1.0)
    refusal = lines["refused:"]
    assert "with 3 of 3 MPI worker(s) on this host (" in refusal
    assert "128 MiB as a fresh MPI rank" in refusal
    assert "as a copy of this one" not in refusal
    estimate = _estimate(refusal)
    limit = estimate + 150
    driver_mib = int(lines["rss"].split()[1])
    assert 4 * driver_mib > limit  # each rank counted as a copy of the driver: refused

    lines, peak = _run_driver(tmp_path, "run", limit)
    assert lines["ran"] == "ran 3 16", lines
    assert peak <= estimate, f"the ranks reached {peak} MiB; the plan said {estimate:.0f} MiB"


@needs_mpi
@pytest.mark.skipif(not MPI_WORKS or not _hydra(), reason="needs Hydra's fork launcher")
def test_mpi_workers_on_another_host_do_not_count_against_this_hosts_limit(
    tmp_path: Path,
) -> None:
    """Ranks placed 2 on the driver's host and 2 on another: the plan counts 1 worker here,
    two workers' shares less than with all four ranks on one host."""
    one_host = _run_driver(tmp_path, "one", 1.0)[0]["refused:"]
    two_hosts = _run_driver(tmp_path, "two", 1.0, "-launcher", "fork", "-hosts", "alpha:2,beta:2")[
        0
    ]["refused:"]
    assert "with 1 of 3 MPI worker(s) on this host (MPI_LOCALNRANKS=2)" in two_hosts
    share = float(re.search(r"(\d+) MiB per worker process", one_host)[1])  # type: ignore[index]
    assert _estimate(one_host) - _estimate(two_hosts) == pytest.approx(2 * share, abs=8)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"MPI_LOCALNRANKS": "16"}, (16, "MPI_LOCALNRANKS=16")),
        ({"OMPI_COMM_WORLD_LOCAL_SIZE": "8"}, (8, "OMPI_COMM_WORLD_LOCAL_SIZE=8")),
        ({"MV2_COMM_WORLD_LOCAL_SIZE": "4"}, (4, "MV2_COMM_WORLD_LOCAL_SIZE=4")),
        (
            {"SLURM_STEP_TASKS_PER_NODE": "16(x2),8", "SLURM_NODEID": "0"},
            (16, "SLURM_STEP_TASKS_PER_NODE=16(x2),8 on node 0"),
        ),
        (
            {"SLURM_STEP_TASKS_PER_NODE": "16(x2),8", "SLURM_NODEID": "2"},
            (8, "SLURM_STEP_TASKS_PER_NODE=16(x2),8 on node 2"),
        ),
        (
            {"MPI_LOCALNRANKS": "3", "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "SLURM_NODEID": "0"},
            (3, "MPI_LOCALNRANKS=3"),
        ),
    ],
)
def test_each_launchers_count_of_this_hosts_ranks_is_read(
    environ: dict[str, str], expected: tuple[int, str]
) -> None:
    """Hydra, Open MPI, MVAPICH2 and srun each say how many ranks share this host; mpiexec's
    own count wins over the srun step that started its proxies."""
    assert ranks_on_this_host(environ, world_size=48) == expected


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"MPI_LOCALNRANKS": "0"},
        {"MPI_LOCALNRANKS": "four"},
        {"MPI_LOCALNRANKS": "64"},  # more than the job's ranks
        {"SLURM_STEP_TASKS_PER_NODE": "16(x2)", "SLURM_NODEID": "2"},  # no third node
        {"SLURM_STEP_TASKS_PER_NODE": "16(x2", "SLURM_NODEID": "0"},
        {"SLURM_STEP_TASKS_PER_NODE": "16(x2)"},
    ],
)
def test_a_count_that_is_missing_or_not_a_count_of_ranks_is_not_used(
    environ: dict[str, str],
) -> None:
    """Without a usable count the plan falls back to counting every worker on this host."""
    assert ranks_on_this_host(environ, world_size=48) is None


@pytest.mark.parametrize("executor", ["processes", "threads"])
def test_the_runners_own_workers_are_all_here_and_start_as_copies(executor: str) -> None:
    """Process and thread pools: every worker on this host, none counted as a fresh rank."""
    with TaskRunner(executor, max_workers=3) as runner:
        assert place_workers(runner, {"MPI_LOCALNRANKS": "2"}) == WorkerPlacement(3, 3)


@needs_mpi
@pytest.mark.parametrize(
    ("rank", "mode", "why"),
    [
        (
            ("-n", "1", sys.executable),
            ("spawn",),
            "the pool spawned its ranks, wherever MPI put them",
        ),
        (
            ("-n", "4", "env", *UNSET_COUNTS, sys.executable, "-m", "mpi4py.futures"),
            (),
            "the MPI launcher does not say which ranks share this host",
        ),
    ],
    ids=["spawned", "launcher-silent"],
)
def test_mpi_workers_whose_host_is_unknown_are_all_counted_here(
    tmp_path: Path, rank: tuple[str, ...], mode: tuple[str, ...], why: str
) -> None:
    """A pool that spawned its ranks, or a launcher that names no local count: all 3 workers
    count against this host's limit, each as a fresh rank, and the refusal says why."""
    refusal = _run_driver(tmp_path, "run", 1.0, rank=rank, mode=mode)[0]["refused:"]
    assert f"with 3 of 3 MPI worker(s) on this host (all counted here: {why})" in refusal
    assert "128 MiB as a fresh MPI rank" in refusal
