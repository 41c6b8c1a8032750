"""``lensing-ssc run``: output locations, exit statuses, and real SIGKILL/SIGTERM then rerun."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import yaml

from lensing_ssc.cli import main
from lensing_ssc.pipelines import read_results

# Results are HDF5 where h5py is installed, else NPZ (results_format: auto).
RESULTS_NAME = "patch_statistics." + ("h5" if importlib.util.find_spec("h5py") else "npz")

ConfigFile = Callable[..., Path]  # the config_file fixture of conftest.py

WaitForPatches = Callable[[Path, int, subprocess.Popen[str]], None]  # conftest.py's fixture

EXIT_FAILURES, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 1, 2, 3, 130


def test_run_prints_where_results_figures_summary_and_log_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A finished run exits 0 and prints the path of every file it wrote."""
    pytest.importorskip("matplotlib", reason="figures need the plot extra")
    config = config_file(tmp_path / "run", figures=True)
    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(maxsplit=1) for line in out.splitlines() if line[:1].islower())
    assert lines["results"] == str(tmp_path / "run" / "results" / RESULTS_NAME)
    assert lines["summary"] == str(tmp_path / "run" / "results" / "summary.txt")
    assert lines["log"] == str(tmp_path / "run" / "logs" / "lensing_ssc.log")
    figures = [line.split()[1] for line in out.splitlines() if line.startswith("figure")]
    assert [Path(f).name for f in figures] == ["statistics.png", "correlation.png", "ssc_ratio.png"]
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in figures)
    assert all(Path(p).is_file() for p in [lines["results"], lines["summary"]])
    assert "done: 4 maps, 16 patches measured, 0 failed" in out
    assert "SSC: Var Ĉ(sub-patches) / Var Ĉ(periodic), ngal=0" in out


def test_figures_that_cannot_be_written_leave_the_results_and_a_warning(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full disk while drawing: the run exits 0 with its results and one warning naming why."""
    pytest.importorskip("matplotlib", reason="figures need the plot extra")
    from lensing_ssc.plotting import _run_figures

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_run_figures, "atomic_write", disk_full)
    config = config_file(tmp_path / "run", figures=True)
    assert main(["run", str(config)]) == 0
    captured = capsys.readouterr()
    assert not [line for line in captured.out.splitlines() if line.startswith("figure")]
    assert f"results  {tmp_path / 'run' / 'results' / RESULTS_NAME}" in captured.out
    assert (tmp_path / "run" / "results" / RESULTS_NAME).is_file()
    assert [line for line in captured.err.splitlines() if "figures" in line] == [
        f"warning: figures not written to {tmp_path / 'run' / 'figures'}: "
        "[Errno 28] No space left on device"
    ]
    assert list((tmp_path / "run" / "figures").glob("*.png")) == []


def test_without_matplotlib_the_run_succeeds_with_one_line_naming_the_plot_extra(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No plot extra: the run exits 0, prints no figure, and says once on stderr what to install."""
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    config = config_file(tmp_path / "run", figures=True)
    assert main(["run", str(config)]) == 0
    captured = capsys.readouterr()
    assert not [line for line in captured.out.splitlines() if line.startswith("figure")]
    assert "done: 4 maps, 16 patches measured, 0 failed" in captured.out
    assert captured.err.splitlines() == [
        'no figures: lensing_ssc.plotting needs matplotlib: pip install "lensing-ssc[plot]"'
    ]
    assert not (tmp_path / "run" / "figures").exists()


def test_options_override_the_config_and_fresh_starts_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """--run-dir, --executor and --workers apply; a rerun resumes; --fresh recomputes."""
    config = config_file(tmp_path / "ignored")
    args = ["run", str(config), "--run-dir", str(tmp_path / "other"), "--executor", "threads"]
    assert main([*args, "--workers", "2"]) == 0
    first = capsys.readouterr().out
    assert "threads executor, run directory " + str(tmp_path / "other") in first
    assert not (tmp_path / "ignored").exists()
    assert main(args) == 0
    assert "20 task(s) from the earlier run" in capsys.readouterr().out
    assert main([*args, "--fresh"]) == 0
    assert "from the earlier run" not in capsys.readouterr().out


def test_failed_map_gives_exit_status_1_with_the_failure_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A patch file with NaNs is listed as failed, the others merged, and the status is 1."""
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(tmp_path / f"p{i}.npy", 1e-2 * rng.standard_normal((64, 64)))
    bad = np.full((64, 64), np.nan)
    np.save(tmp_path / "p3.npy", bad)
    config = config_file(
        tmp_path / "run",
        input="patches",
        patches={"files": [str(tmp_path / "p*.npy")], "pixel_size_arcmin": 2.0},
        statistics={"preset": "quick"},
    )
    assert main(["run", str(config)]) == EXIT_FAILURES
    out = capsys.readouterr().out
    assert "done: 3 maps, 3 patches measured, 1 failed" in out
    assert "failed maps patches/map-0003: patch in p3.npy contains 4096 NaN" in out


@pytest.mark.parametrize(
    ("pipeline", "extra", "message"),
    [
        (
            {"statistics": {"names": ["cl", "peak"]}},
            [],
            "invalid value 'peak' for 'pipeline.statistics.names.1': Value error, "
            "unknown statistic 'peak' (did you mean 'peaks'?)",
        ),
        (
            {"statistics": {"n_gal": [30, -5]}},
            [],
            "invalid value -5 for 'pipeline.statistics.n_gal.1'",
        ),
        ({}, ["--executor", "gpu"], "unknown executor 'gpu' (use one of serial, threads, "),
    ],
)
def test_bad_input_is_one_error_line_and_exit_status_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pipeline: dict[str, Any],
    extra: list[str],
    message: str,
    config_file: ConfigFile,
) -> None:
    """An unknown statistic, n_gal < 0 or an unknown executor: one `error:` line naming it."""
    config = config_file(tmp_path / "run", **pipeline)
    assert main(["run", str(config), *extra]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert not (tmp_path / "run" / "tasks").exists()


def _same_file_as_an_uninterrupted_run(config: Path, *options: str) -> None:
    """The resumed run's results file, byte for byte, is what a fresh run in its place writes."""
    config_data = yaml.safe_load(config.read_text())
    results = Path(config_data["run_dir"]) / "results" / RESULTS_NAME
    resumed = results.read_bytes()
    assert main(["run", str(config), "--fresh", *options]) == 0
    assert results.read_bytes() == resumed


def _start(
    config: Path, *options: str, start: Callable[..., Any] = subprocess.Popen, **popen: Any
) -> subprocess.Popen[str]:
    """Start ``python -m lensing_ssc run CONFIG OPTIONS`` with its output captured."""
    return start(  # type: ignore[no-any-return]
        [sys.executable, "-m", "lensing_ssc", "run", str(config), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _finish(config: Path, *options: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "run", str(config), *options],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_results(
    tmp_path: Path,
    config_file: ConfigFile,
    wait_for_patches: WaitForPatches,
) -> None:
    """`python -m lensing_ssc run` killed with SIGKILL resumes to the same results file."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir, "interruptible")
    proc = _start(config)
    wait_for_patches(run_dir, 6, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "results").exists()
    out = _finish(config)
    resumed = int(out.split(" task(s) from the earlier run")[0].rsplit(", ", 1)[1])
    assert resumed >= 32 + 5  # every map and the patches finished before the kill
    _same_file_as_an_uninterrupted_run(config)


def test_sigterm_stops_gracefully_with_status_3_and_a_rerun_finishes(
    tmp_path: Path,
    config_file: ConfigFile,
    wait_for_patches: WaitForPatches,
) -> None:
    """SIGTERM saves finished work, exits 3 saying how to continue; the rerun completes."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir, "interruptible")
    proc = _start(config)
    wait_for_patches(run_dir, 6, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_STOPPED, err
    assert "SIGTERM: stopping after the running tasks, saving what finished\n" in err
    assert "stopped: run stopped gracefully (SIGTERM)" in err
    assert "run the same command again to continue" in err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted"
    assert "task(s) from the earlier run" in _finish(config)
    _same_file_as_an_uninterrupted_run(config)


def test_second_ctrl_c_stops_at_once_saying_so_and_status_says_rerun(
    tmp_path: Path,
    children: Any,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    wait_for_patches: WaitForPatches,
) -> None:
    """Ctrl-C twice: a line at each, exit 130; status: interrupted, rerun."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir, "interruptible")
    options = ("--executor", "processes", "--workers", "2")
    # In its own process group, as a terminal's job is.
    proc = _start(config, *options, start=children.start, start_new_session=True)
    wait_for_patches(run_dir, 6, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    # The second Ctrl-C after the first is heard: two signals before the handler runs are one.
    first = [proc.stderr.readline(), proc.stderr.readline()]
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    err = "".join(first) + rest
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert [line for line in err.splitlines() if line] == [
        "SIGINT: stopping after the running tasks, saving what finished; "
        "Ctrl-C again to stop at once",
        "stopped at once, without waiting for running tasks; what finished is saved: "
        "run the same command again to continue",
    ]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    assert main(["status", str(run_dir)]) == 0
    headline = capsys.readouterr().out.splitlines()[0]
    assert headline.startswith(f"{run_dir}: interrupted (SIGINT")
    assert " — rerun to resume (pid " in headline
    assert "task(s) from the earlier run" in _finish(config, *options)


@pytest.mark.slow
def test_sigkill_of_a_process_pool_run_leaves_no_worker_and_resumes_identically(
    tmp_path: Path,
    config_file: ConfigFile,
    wait_for_patches: WaitForPatches,
) -> None:
    """With --executor processes, SIGKILL of the parent ends its workers; the rerun matches."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir, "interruptible")
    options = ("--executor", "processes", "--workers", "2")
    proc = _start(config, *options)
    wait_for_patches(run_dir, 10, proc)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    _, alive = psutil.wait_procs(
        [psutil.Process(p) for p in children if psutil.pid_exists(p)], timeout=15
    )
    for leftover in alive:
        leftover.kill()
    assert not alive, [p.pid for p in alive]
    assert "task(s) from the earlier run" in _finish(config, *options)
    _same_file_as_an_uninterrupted_run(config, *options)


@pytest.mark.slow
def test_the_default_run_finishes_within_two_minutes_and_shows_the_ssc_excess(
    tmp_path: Path,
) -> None:
    """`lensing-ssc run` with no config: < 120 s on this machine, Var Ĉ ratio > 1.5 at high ℓ."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "run"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 120, elapsed
    assert f"results  runs/default/results/{RESULTS_NAME}" in done.stdout
    assert "figure   runs/default/figures/ssc_ratio.png" in done.stdout
    results = read_results(tmp_path / "runs/default/results" / RESULTS_NAME)
    assert results["meta/sets"]["subpatches"]["n_patches"] == 512
    assert results["ssc/cl/ngal=0/variance_ratio"][-2:].min() > 1.5
    log = (tmp_path / "runs/default/logs/lensing_ssc.log").read_text().splitlines()
    assert all(line.startswith("{") for line in log)


def test_an_error_inside_the_run_is_one_line_even_with_the_terminal_log_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A config with console logging: a ResourceError prints no traceback, only its message."""
    config = config_file(tmp_path / "run")
    body = yaml.safe_load(config.read_text())
    body["logging"]["console"] = True
    body["resources"] = {"memory_limit_mb": 1}
    config.write_text(yaml.safe_dump(body))
    assert main(["run", str(config)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "error: the run needs about" in captured.err


@pytest.mark.parametrize("below", ["a-file/sub", "a-file"])
def test_a_run_directory_that_cannot_be_made_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], below: str, config_file: ConfigFile
) -> None:
    """A run directory under (or at) a plain file: exit 2 and one line naming the directory."""
    (tmp_path / "a-file").write_text("not a directory")
    config = config_file(tmp_path / below)
    assert main(["run", str(config)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"error: cannot use '{tmp_path / below}' as the run directory" in captured.err


def test_an_unexpected_exception_exits_4_with_its_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config_file: ConfigFile,
) -> None:
    """A bug (not a lensing_ssc error) is not mistaken for 'done with failures' (1)."""
    from lensing_ssc.pipelines import patch_statistics

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(patch_statistics, "write_results", broken)
    config = config_file(tmp_path / "run")
    assert main(["run", str(config)]) == 4
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err
    assert err.rstrip().endswith("please report the traceback above as a bug")
