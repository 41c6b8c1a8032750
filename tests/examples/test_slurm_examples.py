"""``examples/slurm``: the batch scripts forward SLURM's signal, requeue on status 3, and their
drivers parse their arguments, run under stand-in ``sbatch``, ``scontrol`` and ``srun``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

SLURM = Path(__file__).resolve().parents[2] / "examples" / "slurm"
SCRIPTS = ("single_node.sbatch", "dask_cluster.sbatch", "mpi.sbatch")
JOB_ID = "4242"
WaitForPatches = Callable[[Path, int, subprocess.Popen[str]], None]  # conftest.py's fixture

# Stand-ins for SLURM's commands. Each records its arguments, one call a line. `sbatch`
# becomes the batch shell itself (exec), so the test's child process is the process SLURM's
# `--signal=B:...` would signal.
STAND_INS = {
    "sbatch": f"""#!/bin/bash
echo "$*" >> "$SLURM_CALLS/sbatch"
export SLURM_JOB_ID={JOB_ID} SLURM_SUBMIT_DIR="$PWD"
exec bash "$@"
""",
    "scontrol": """#!/bin/bash
echo "$*" >> "$SLURM_CALLS/scontrol"
exit "${SCONTROL_STATUS:-0}"
""",
    "srun": """#!/bin/bash
echo "$*" >> "$SLURM_CALLS/srun"
exec "$@"
""",
    # The program: records its arguments and exits with FAKE_STATUS.
    "lensing-ssc": """#!/bin/bash
echo "$*" >> "$SLURM_CALLS/lensing-ssc"
exit "${FAKE_STATUS:-0}"
""",
}

# A driver that exits with FAKE_STATUS, for the Dask and MPI scripts.
FAKE_DRIVER = "import os, sys\nsys.exit(int(os.environ.get('FAKE_STATUS', '0')))\n"


def _mpi_works() -> bool:
    """Whether mpi4py is installed and finds an MPI library."""
    probe = subprocess.run(
        [sys.executable, "-c", "from mpi4py import MPI"], capture_output=True, timeout=60
    )
    return probe.returncode == 0


MPI_WORKS = importlib.util.find_spec("mpi4py") is not None and _mpi_works()
needs_mpi = pytest.mark.skipif(not MPI_WORKS, reason="mpi4py with an MPI library is not here")
needs_jobqueue = pytest.mark.skipif(
    importlib.util.find_spec("dask_jobqueue") is None, reason="dask-jobqueue is not installed"
)


class Slurm:
    """A directory of stand-in SLURM commands and the environment that puts them first."""

    def __init__(self, tmp_path: Path, *, fake_program: bool) -> None:
        self.calls = tmp_path / "calls"
        self.calls.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name, text in STAND_INS.items():
            if name == "lensing-ssc" and not fake_program:
                continue
            path = bin_dir / name
            path.write_text(text)
            path.chmod(0o755)
        driver = tmp_path / "fake_driver.py"
        driver.write_text(FAKE_DRIVER)
        self.cwd = tmp_path
        # The interpreter's directory follows: `python` and the real `lensing-ssc`.
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
            + os.environ["PATH"],
            "SLURM_CALLS": str(self.calls),
            "LENSING_SSC_DASK_DRIVER": str(driver),
            "LENSING_SSC_MPI_DRIVER": str(driver),
        }
        self.env.pop("SLURM_RESTART_COUNT", None)

    def submit(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``sbatch SCRIPT ARGS`` run to its end, with ``env`` added."""
        return subprocess.run(
            ["sbatch", str(SLURM / script), *args],
            env={**self.env, **env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, script: str, *args: str) -> subprocess.Popen[str]:
        """``sbatch SCRIPT ARGS`` started: its process is the batch shell."""
        return subprocess.Popen(
            ["sbatch", str(SLURM / script), *args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def called(self, command: str) -> list[str]:
        """The argument lines ``command`` was called with, in order."""
        path = self.calls / command
        return path.read_text().splitlines() if path.exists() else []


def _load(name: str) -> ModuleType:
    """Import ``examples/slurm/<name>.py`` as a module, without running its main."""
    spec = importlib.util.spec_from_file_location(f"slurm_example_{name}", SLURM / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_is_valid_bash(script: str) -> None:
    """`bash -n` accepts each batch script."""
    done = subprocess.run(["bash", "-n", str(SLURM / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_asks_for_the_early_signal_and_requeueing(script: str) -> None:
    """Each script asks SLURM for SIGUSR1 120 s before the limit and allows requeueing."""
    directives = [
        line for line in (SLURM / script).read_text().splitlines() if line.startswith("#SBATCH")
    ]
    assert "#SBATCH --signal=B:USR1@120" in directives
    assert "#SBATCH --requeue" in directives


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    ("program_status", "job_status", "requeued"),
    [(3, 0, True), (0, 0, False), (1, 1, False), (2, 2, False), (4, 4, False)],
)
def test_status_3_requeues_and_exits_0_other_statuses_pass_through(
    tmp_path: Path, script: str, program_status: int, job_status: int, requeued: bool
) -> None:
    """The job requeues itself and exits 0 only when the program stopped with status 3."""
    if script == "mpi.sbatch" and not MPI_WORKS:
        pytest.skip("mpi4py with an MPI library is not here")
    slurm = Slurm(tmp_path, fake_program=True)
    done = slurm.submit(script, "config.yaml", FAKE_STATUS=str(program_status))
    assert done.returncode == job_status, done.stderr
    assert slurm.called("scontrol") == ([f"requeue {JOB_ID}"] if requeued else [])


def test_single_node_passes_the_config_workers_and_options_to_lensing_ssc(
    tmp_path: Path,
) -> None:
    """The program gets the config, --workers from SLURM_CPUS_PER_TASK, then the extra options."""
    slurm = Slurm(tmp_path, fake_program=True)
    done = slurm.submit("single_node.sbatch", "c.yaml", "--fresh", SLURM_CPUS_PER_TASK="16")
    assert done.returncode == 0, done.stderr
    assert slurm.called("lensing-ssc") == ["run c.yaml --workers 16 --fresh"]


def test_mpi_script_starts_rank_0_as_the_mpi4py_futures_driver(tmp_path: Path) -> None:
    """`srun python -m mpi4py.futures DRIVER ARGS` is the job step."""
    if not MPI_WORKS:
        pytest.skip("mpi4py with an MPI library is not here")
    slurm = Slurm(tmp_path, fake_program=True)
    done = slurm.submit("mpi.sbatch", "c.yaml", "--run-dir", "r")
    assert done.returncode == 0, done.stderr
    driver = slurm.env["LENSING_SSC_MPI_DRIVER"]
    assert slurm.called("srun") == [f"python -m mpi4py.futures {driver} c.yaml --run-dir r"]


def test_requeue_stops_after_the_limit_with_status_3(tmp_path: Path) -> None:
    """After LENSING_SSC_MAX_REQUEUES restarts the job is not requeued and exits 3."""
    slurm = Slurm(tmp_path, fake_program=True)
    done = slurm.submit(
        "single_node.sbatch",
        "c.yaml",
        FAKE_STATUS="3",
        SLURM_RESTART_COUNT="5",
        LENSING_SSC_MAX_REQUEUES="5",
    )
    assert done.returncode == 3
    assert slurm.called("scontrol") == []
    assert "already requeued 5 times" in done.stderr


def test_a_refused_requeue_exits_3_saying_to_submit_again(tmp_path: Path) -> None:
    """When `scontrol requeue` fails the job exits 3, so the stop is not taken for success."""
    slurm = Slurm(tmp_path, fake_program=True)
    done = slurm.submit("single_node.sbatch", "c.yaml", FAKE_STATUS="3", SCONTROL_STATUS="1")
    assert done.returncode == 3
    assert slurm.called("scontrol") == [f"requeue {JOB_ID}"]
    assert "requeue failed: sbatch again to continue" in done.stderr


def _interruptible_config(tmp_path: Path, run_dir: Path) -> Path:
    """A serial synthetic run of 32 maps and 128 patches: seconds of patch work to stop in."""
    body: dict[str, Any] = {
        "run_dir": str(run_dir),
        "logging": {"console": False, "format": "json", "level": "DEBUG"},
        "progress": {"enabled": False},
        "pipeline": {
            "executor": "serial",
            "figures": False,
            "synthetic": {"patch_pixels": 128, "patches_per_side": 2, "n_large_fields": 16},
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_sigusr1_to_the_batch_shell_stops_lensing_ssc_gracefully_and_requeues(
    tmp_path: Path,
    wait_for_patches: WaitForPatches,
) -> None:
    """SIGUSR1 to the batch shell (SLURM's B:) reaches a real run: saved, exit 3, requeued."""
    if shutil.which("lensing-ssc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the lensing-ssc command is not installed beside this interpreter")
    slurm = Slurm(tmp_path, fake_program=False)
    run_dir = tmp_path / "run"
    proc = slurm.start("single_node.sbatch", str(_interruptible_config(tmp_path, run_dir)))
    wait_for_patches(run_dir, 4, proc)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGUSR1: stopping after the running tasks" in err
    assert f"job {JOB_ID} requeued to continue" in err
    assert slurm.called("scontrol") == [f"requeue {JOB_ID}"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"


def test_dask_driver_parses_its_arguments() -> None:
    """The Dask driver reads the config path and the worker jobs' shape; --jobs 0 is refused."""
    driver = _load("dask_driver")
    args = driver.parse_args(["c.yaml", "--jobs", "32", "--memory", "8GB", "--fresh"])
    assert (args.config, args.jobs, args.memory, args.fresh) == (Path("c.yaml"), 32, "8GB", True)
    assert (args.walltime, args.queue, args.account) == ("02:00:00", None, None)
    with pytest.raises(SystemExit) as exc:
        driver.parse_args(["c.yaml", "--jobs", "0"])
    assert exc.value.code == 2


@needs_jobqueue
def test_dask_driver_worker_jobs_are_single_threaded_slurm_jobs() -> None:
    """The worker job script asks for one core and the memory given, and starts one thread."""
    from dask_jobqueue.slurm import SLURMJob

    driver = _load("dask_driver")
    args = driver.parse_args(["c.yaml", "--memory", "4GB", "--venv", "/opt/env"])
    job = SLURMJob(scheduler="tcp://10.0.0.5:8786", name="w", **driver.cluster_options(args))
    script = job.job_script()
    assert "#SBATCH --cpus-per-task=1" in script
    assert "#SBATCH --mem=4G" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "source /opt/env/bin/activate" in script
    assert "--nthreads 1" in script


def test_mpi_driver_parses_its_arguments() -> None:
    """The MPI driver reads the config path, an optional run directory and --fresh."""
    driver = _load("mpi_driver")
    args = driver.parse_args(["c.yaml", "--run-dir", "r", "--fresh"])
    assert (args.config, args.run_dir, args.fresh) == (Path("c.yaml"), Path("r"), True)
    assert (driver.parse_args(["c.yaml"]).run_dir, driver.parse_args(["c.yaml"]).fresh) == (
        None,
        False,
    )
    with pytest.raises(SystemExit):
        driver.parse_args([])


def _mpi_config(tmp_path: Path, run_dir: Path) -> Path:
    """16 maps, 64 patches of 128² pixels, a DEBUG JSON log: a run to kill on its patches."""
    body: dict[str, Any] = {
        "run_dir": str(run_dir),
        "logging": {"console": False, "format": "json", "level": "DEBUG"},
        "progress": {"enabled": False},
        "pipeline": {
            "figures": False,
            "retries": 0,
            "synthetic": {"patch_pixels": 128, "patches_per_side": 2, "n_large_fields": 8},
        },
    }
    path = tmp_path / "mpi.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@needs_mpi
@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec is not on PATH")
def test_mpi_driver_killed_mid_run_finishes_on_rerun_as_a_serial_run_redoing_nothing(
    tmp_path: Path,
    children: Any,
    wait_for_patches: WaitForPatches,
    measured_patches: Callable[..., list[str]],
    same_numbers: Callable[[Path, Path], None],
) -> None:
    """Rank 0 SIGKILLed mid-run; the rerun gives the serial numbers and redoes no saved patch."""
    from lensing_ssc.pipelines import PipelineConfig, read_results, run_patch_statistics
    from lensing_ssc.processing.runner import read_journal_summary

    run_dir = tmp_path / "run"
    config = _mpi_config(tmp_path, run_dir)
    serial = PipelineConfig.from_file(config)
    serial.run_dir = tmp_path / "serial"
    reference = run_patch_statistics(serial, executor="serial")
    total = reference.n_patches
    command = [
        "mpiexec", "-n", "3", sys.executable, "-m", "mpi4py.futures",
        str(SLURM / "mpi_driver.py"), str(config),
    ]  # fmt: skip
    first = children.start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_patches(run_dir, 4, first)
    rank_0 = json.loads((run_dir / "status.json").read_text())["pid"]
    os.kill(rank_0, signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode != 0  # mpiexec ends the job when rank 0 dies
    saved = read_journal_summary(run_dir / "tasks" / "patches.journal").completed
    assert 0 < saved < total
    offset = (run_dir / "logs" / "lensing_ssc.log").stat().st_size

    again = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "on 2 mpi4py.futures.MPIPoolExecutor worker(s)" in again.stdout
    rerun = measured_patches(run_dir, offset)
    # Every patch is saved once it ends; with those saved before the kill, the rerun's
    # executions make up the whole run exactly, so no saved patch ran again.
    assert len(rerun) == len(set(rerun)) == total - saved
    assert read_journal_summary(run_dir / "tasks" / "patches.journal").completed == total
    results = run_dir / "results" / reference.results_file.name
    same_numbers(results, reference.results_file)
    recorded = read_results(results)["meta/config"]["pipeline"]
    assert (recorded["executor"], recorded["workers"]) == ("mpi4py.futures.MPIPoolExecutor", 2)
