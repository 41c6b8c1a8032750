"""A library stays quiet: nothing on stderr from Python unless logging is asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lensing_ssc.processing.managers import LogManager

QUIET_RUN = (
    "from lensing_ssc.pipelines import run_patch_statistics, PipelineConfig; "
    "run_patch_statistics(PipelineConfig(run_dir='x', pipeline={'figures': False, "
    "'executor': 'serial', 'synthetic': {'n_large_fields': 2}}))"
)


def test_pipeline_from_python_prints_nothing_but_logs_everything(tmp_path: Path) -> None:
    """``run_patch_statistics`` under ``-W error`` writes no stderr; its log file has the run."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", QUIET_RUN],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    log = (tmp_path / "x" / "logs" / "lensing_ssc.log").read_text()
    assert "map periodic/map-0001: 16 patches" in log
    assert "results written to" in log


def test_log_manager_writes_no_console_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``LogManager(file_path=...)`` writes its file only; ``console=True`` also writes stderr."""
    with LogManager(file_path=tmp_path / "quiet.log") as log_mgr:
        log_mgr.get_logger("quiet").warning("to the file only")
    assert capsys.readouterr().err == ""
    assert "to the file only" in (tmp_path / "quiet.log").read_text()
    with LogManager(file_path=tmp_path / "loud.log", console=True) as log_mgr:
        log_mgr.get_logger("loud").warning("to both")
    assert "to both" in capsys.readouterr().err


def test_package_warning_without_a_manager_is_silent() -> None:
    """A ``lensing_ssc`` warning with no handler configured does not reach stderr."""
    code = "import logging, lensing_ssc; logging.getLogger('lensing_ssc.probe').warning('unasked')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
