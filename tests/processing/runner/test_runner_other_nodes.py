"""Runs on Dask workers of other nodes: killed workers, a killed driver, a lost scheduler.

A real ``dask scheduler`` runs here; its workers each run in a namespace of their own that
stands in for another node (``unshare --user --map-root-user --mount --uts``): another host
name, and a private, empty ``/tmp`` (this process's temporary directory), so no worker sees
the driver's sockets or anything else the driver keeps there. Only what a cluster's shared
filesystem holds is mounted back at its path: pytest's base temporary directory, which holds
the run directories and the scheduler file, and the software (this interpreter's environment
and this project's tree) where it lies in the temporary directory, as a CI job's often does.
Where such namespaces cannot be made, the tests are skipped, saying why.

The driver (``cluster_job.py`` for ``ctx.map``, ``lensing-ssc run`` for the pipeline) runs
as a subprocess, so it can be SIGKILLed. Executions are counted independently of the
journal: ``ctx.map``'s items leave a marker file each time they start, the pipeline's
patches a record in the run's log. Since every item is journalled once it ends, a rerun
that runs exactly the items the journal lacks has redone no journalled item.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("distributed")

from lensing_ssc.processing.runner import read_journal_summary

from .conftest import DaskProcesses

JOB = Path(__file__).with_name("cluster_job.py")
ITEMS = 40
WaitForPatches = Callable[[Path, int, subprocess.Popen[str]], None]  # tests/conftest.py's

# Run in the new namespaces: keep the shared directories (a colon-separated list) under a
# tmpfs at the hold, hide the driver's temporary directory under an empty tmpfs, put the
# shared directories back at their paths, take another host name.
NODE_SCRIPT = """set -e
shared=$1 hide=$2 hold=$3 node=$4
shift 4
mount -t tmpfs lensing-ssc-hold "$hold"
i=0
IFS=:
for dir in $shared; do
    mkdir -p "$hold/$i"
    mount --bind "$dir" "$hold/$i"
    i=$((i + 1))
done
mount -t tmpfs lensing-ssc-node "$hide"
i=0
for dir in $shared; do
    mkdir -p "$dir"
    mount --bind "$hold/$i" "$dir"
    i=$((i + 1))
done
unset IFS
hostname "$node"
exec env TMPDIR="$hide" "$@"
"""
_HOLDS = ("/mnt", "/media", "/srv", "/opt")


def _outside(path: Path, *folders: Path) -> bool:
    return not any(path == f or f in path.parents for f in folders)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Sequence[str]]:
    """``node(n)``: the command prefix that runs a command as on node ``node-n``.

    Skips the module where ``unshare`` cannot make user, mount and UTS namespaces.
    """
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed: no namespaces to stand in for other nodes")
    runs = tmp_path_factory.getbasetemp().resolve()
    hide = Path(tempfile.gettempdir()).resolve()
    software = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix)}
    software.add(Path(__file__).resolve().parents[3])  # the project: tests and sources
    shared = [runs, *sorted(p for p in software if not _outside(p, hide) and p != hide)]
    hold = next(
        (Path(h) for h in _HOLDS if Path(h).is_dir() and _outside(Path(h), hide, *shared)), None
    )
    if hold is None:
        pytest.skip(f"no directory among {', '.join(_HOLDS)} to hold the shared mount")
    if any(":" in str(p) for p in shared):
        pytest.skip(f"a shared directory's path holds a colon: {shared}")
    joined = ":".join(str(p) for p in shared)

    def prefix(n: int) -> list[str]:
        return [
            "unshare", "--user", "--map-root-user", "--mount", "--uts",
            "sh", "-c", NODE_SCRIPT, "node", joined, str(hide), str(hold), f"node-{n}",
        ]  # fmt: skip

    # The probe: the shared directory and this interpreter are there, a file of the driver's
    # /tmp is not.
    with tempfile.NamedTemporaryFile(prefix="lensing-ssc-driver-only-") as secret:
        check = (
            f'test -d "{runs}" && ! test -e "{secret.name}" && test "$(hostname)" = node-0 '
            f'&& "{sys.executable}" -c "import lensing_ssc"'
        )
        probe = subprocess.run(
            [*prefix(0), "sh", "-c", check], capture_output=True, text=True, timeout=30
        )
    if probe.returncode != 0:
        pytest.skip(
            "cannot make a node's namespaces with unshare --user --map-root-user --mount "
            f"--uts (user namespaces disabled?): {probe.stderr.strip() or probe.returncode}"
        )
    return prefix


def _lensing_ssc() -> list[str]:
    """The command: ``lensing-ssc`` beside this interpreter, else ``python -m lensing_ssc``."""
    found = shutil.which("lensing-ssc", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "lensing_ssc"]


def _markers(run_dir: Path, tag: str) -> list[dict[str, Any]]:
    """What the markers of ``cluster_job.py``'s run ``tag`` say: index, host, ``sees``."""
    return [json.loads(p.read_text()) for p in (run_dir / "markers").glob(f"{tag}-*.json")]


def _wait(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[str], cluster: DaskProcesses
) -> None:
    """Wait until ``ready()``, the process still running; fail after 90 s, with the logs."""
    deadline = time.monotonic() + 90
    while not ready():
        assert proc.poll() is None, (
            f"the run ended before {what}: {proc.communicate()}\n{cluster.describe()}"
        )
        assert time.monotonic() < deadline, f"no {what} within 90 s\n{cluster.describe()}"
        time.sleep(0.02)


def _records(run_dir: Path) -> list[dict[str, Any]]:
    """The run's JSON log records, less a line that a SIGKILLed driver left torn."""
    records = []
    for line in (run_dir / "logs" / "lensing_ssc.log").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _completed(journal: Path) -> int:
    return read_journal_summary(journal).completed if journal.exists() else 0


def test_ctx_map_on_other_nodes_survives_a_killed_worker_and_driver_redoing_nothing(
    start_dask: Callable[..., DaskProcesses],
    node: Callable[[int], Sequence[str]],
    tmp_path: Path,
    children: Any,
) -> None:
    """Worker, then driver SIGKILLed; the rerun gives the serial bytes, redoing no saved item."""
    serial = tmp_path / "serial"
    job = [sys.executable, str(JOB)]
    done = subprocess.run(
        [*job, str(serial), "serial", str(ITEMS), "0", "serial"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    cluster = start_dask(workers=2, node=node)
    run_dir = tmp_path / "run"
    journal = run_dir / "tasks" / "numbers.journal"
    first = children.start(
        [*job, str(run_dir), str(cluster.scheduler_file), str(ITEMS), "0.1", "first"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def node_1_busy() -> bool:
        started = _markers(run_dir, "first")
        return len(started) >= 6 and any(m["host"] == "node-1" for m in started)

    _wait("6 items started, some on node-1", node_1_busy, first, cluster)
    children.sigkill(cluster.workers[0])  # node-1, most likely with an item running
    _wait("14 items saved", lambda: _completed(journal) >= 14, first, cluster)
    children.sigkill(first)
    saved = _completed(journal)
    assert saved < ITEMS

    cluster.start_worker(nanny=False)  # node-3 joins, as a requeued worker job would
    again = subprocess.run(
        [*job, str(run_dir), str(cluster.scheduler_file), str(ITEMS), "0.1", "second"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, f"{again.stderr}\n{cluster.describe()}"
    rerun = [m["index"] for m in _markers(run_dir, "second")]
    assert len(rerun) == len(set(rerun)) == ITEMS - saved  # nothing saved ran again
    assert _completed(journal) == ITEMS
    assert (run_dir / "results.pkl").read_bytes() == (serial / "results.pkl").read_bytes()
    everywhere = _markers(run_dir, "first") + _markers(run_dir, "second")
    assert {m["host"] for m in everywhere} <= {"node-1", "node-2", "node-3"}
    assert "node-1" in {m["host"] for m in _markers(run_dir, "first")}
    assert not any(m["sees"] for m in everywhere)  # no worker saw the driver's /tmp


def _pipeline_config(tmp_path: Path, run_dir: Path) -> Path:
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
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.slow
def test_cli_on_other_nodes_survives_a_killed_worker_and_driver_redoing_nothing(
    start_dask: Callable[..., DaskProcesses],
    node: Callable[[int], Sequence[str]],
    tmp_path: Path,
    children: Any,
    wait_for_patches: WaitForPatches,
    measured_patches: Callable[..., list[str]],
    same_numbers: Callable[[Path, Path], None],
) -> None:
    """lensing-ssc run on other nodes: worker, then driver killed; rerun: serial bytes, no redo."""
    from lensing_ssc.pipelines import PipelineConfig, read_results, run_patch_statistics

    run_dir = tmp_path / "run"
    config = _pipeline_config(tmp_path, run_dir)
    serial = PipelineConfig.from_file(config)
    serial.run_dir = tmp_path / "serial"
    reference = run_patch_statistics(serial, executor="serial")
    total = reference.n_patches
    cluster = start_dask(workers=2, node=node)
    command = [*_lensing_ssc(), "run", str(config), "--scheduler-file", str(cluster.scheduler_file)]
    first = children.start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_patches(run_dir, 4, first)
    children.sigkill(cluster.workers[0])
    wait_for_patches(run_dir, 16, first)
    children.sigkill(first)
    journal = run_dir / "tasks" / "patches.journal"
    saved = _completed(journal)
    assert saved < total
    offset = (run_dir / "logs" / "lensing_ssc.log").stat().st_size

    cluster.start_worker(nanny=False)
    again = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    rerun = measured_patches(run_dir, offset)
    assert len(rerun) == len(set(rerun)) == total - saved  # nothing saved ran again
    assert _completed(journal) == total
    results = run_dir / "results" / reference.results_file.name
    same_numbers(results, reference.results_file)
    recorded = read_results(results)["meta/config"]["pipeline"]
    assert (recorded["executor"], recorded["workers"]) == ("dask", 2)
    hosts = {r.get("host") for r in _records(run_dir) if r["message"].startswith("patch ")}
    assert hosts <= {"node-1", "node-2", "node-3"}
    assert not (run_dir / "logs" / "workers").exists()  # every worker reached the driver's log


def test_cli_exits_3_with_one_line_on_a_lost_scheduler_and_a_new_cluster_finishes(
    start_dask: Callable[..., DaskProcesses],
    tmp_path: Path,
    children: Any,
    wait_for_patches: WaitForPatches,
    measured_patches: Callable[..., list[str]],
) -> None:
    """Scheduler SIGKILLed mid-run: exit 3, one line naming it; a new cluster redoes nothing."""
    run_dir = tmp_path / "run"
    config = _pipeline_config(tmp_path, run_dir)
    cluster = start_dask(workers=2)
    command = [*_lensing_ssc(), "run", str(config), "--scheduler-file"]
    first = children.start(
        [*command, str(cluster.scheduler_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_patches(run_dir, 4, first)
    os.kill(cluster.scheduler.pid, signal.SIGKILL)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 3, err
    said = [line for line in err.splitlines() if "lost the Dask scheduler" in line]
    assert len(said) == 1, err
    assert said[0].startswith(
        f"stopped: run 'patches' stopped (lost the Dask scheduler at {cluster.address}"
    )
    assert "Traceback" not in err
    journal = run_dir / "tasks" / "patches.journal"
    saved = _completed(journal)
    assert read_journal_summary(journal).failed == 0  # the stop failed no item
    offset = (run_dir / "logs" / "lensing_ssc.log").stat().st_size

    second = start_dask(workers=2)
    again = subprocess.run(
        [*command, str(second.scheduler_file)], capture_output=True, text=True, timeout=240
    )
    assert again.returncode == 0, again.stderr
    total = _completed(journal)
    rerun = measured_patches(run_dir, offset)
    assert len(rerun) == len(set(rerun)) == total - saved > 0  # nothing saved ran again


def test_cli_without_workers_for_the_configured_grace_exits_3_with_one_line(
    start_dask: Callable[..., DaskProcesses],
    tmp_path: Path,
    children: Any,
    wait_for_patches: WaitForPatches,
) -> None:
    """LENSING_SSC_PIPELINE__NO_WORKERS_TIMEOUT=1, every worker killed: exit 3, the stop alone."""
    run_dir = tmp_path / "run"
    config = _pipeline_config(tmp_path, run_dir)
    cluster = start_dask(workers=2)
    first = children.start(
        [*_lensing_ssc(), "run", str(config), "--scheduler", cluster.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LENSING_SSC_PIPELINE__NO_WORKERS_TIMEOUT": "1"},
    )
    wait_for_patches(run_dir, 4, first)
    cluster.kill_workers()
    killed = time.monotonic()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 3, err
    assert time.monotonic() - killed < 30  # the configured second, not the default minute
    # The command's report alone: what Dask says of the results lost with the workers (a
    # gather to reschedule, its cancelled tasks) is for the run's log, not the terminal.
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(
        f"stopped: run 'patches' stopped (the Dask cluster at {cluster.address} had no workers "
    ), err
    assert lines[1] == "finished work is saved; run the same command again to continue", err
    assert read_journal_summary(run_dir / "tasks" / "patches.journal").failed == 0
