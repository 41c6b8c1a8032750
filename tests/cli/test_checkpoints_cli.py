"""The ``lensing-ssc checkpoints list|show|verify|delete`` commands on a run directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lensing_ssc.cli import app, main
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.core.io import hash_bytes
from lensing_ssc.processing.managers import CheckpointManager
from lensing_ssc.processing.managers.checkpoint._manager import CheckpointInfo


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory with two checkpoints: step 1, and step 2 tagged keep."""
    config = ProcessingConfig(run_dir=tmp_path / "run", checkpoint={"compression": "none"})
    with CheckpointManager(config=config) as ckpt:
        ckpt.save_checkpoint({"step": 1, "kappa": np.zeros(10_000)}, description="first")
        ckpt.save_checkpoint(
            {"step": 2, "kappa": np.ones(10_000)}, description="second", tags="keep"
        )
    return tmp_path / "run"


def infos(run_dir: Path) -> list[CheckpointInfo]:
    with CheckpointManager(run_dir / "checkpoints", read_only=True) as ckpt:
        return ckpt.list_checkpoints()


def test_list_prints_newest_first(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`checkpoints list RUN_DIR` prints a line per checkpoint, newest first, with step and tags."""
    assert main(["checkpoints", "list", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    newest, oldest = infos(run_dir)
    assert lines[0].startswith(newest.id)
    assert lines[0].endswith("keep  second")
    assert "step      2" in lines[0]
    assert lines[1].startswith(oldest.id)
    assert lines[1].endswith("-  first")


def test_list_json_and_a_checkpoint_dir_argument(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list --json` prints the records; the checkpoints/ directory itself is accepted too."""
    assert main(["checkpoints", "list", str(run_dir / "checkpoints"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in records] == [2, 1]
    assert records[0]["tags"] == ["keep"]


def test_show_defaults_to_the_newest(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`show RUN_DIR` describes the newest checkpoint; `show RUN_DIR ID --json` a given one."""
    newest, oldest = infos(run_dir)
    assert main(["checkpoints", "show", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"id:              {newest.id}" in text
    assert "description:     second" in text
    assert main(["checkpoints", "show", str(run_dir), oldest.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["description"] == "first"


def test_verify_passes_then_fails_after_damage(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify` exits 0 on intact checkpoints and 1 naming the damaged piece after a byte flip."""
    assert main(["checkpoints", "verify", str(run_dir), "--all"]) == 0
    assert capsys.readouterr().out.count(": ok (") == 2
    algorithm, hexdigest = hash_bytes(np.ones(10_000)).split(":")
    blob = run_dir / "checkpoints" / "blobs" / f"{algorithm}-{hexdigest}"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(data)
    assert main(["checkpoints", "verify", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert ": DAMAGED (" in out
    assert 'state["kappa"] (blob blobs/' in out
    assert "checksum mismatch" in out
    assert main(["checkpoints", "verify", str(run_dir), infos(run_dir)[1].id]) == 0


def test_list_reports_damaged_manifests(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged manifest is listed as DAMAGED on stderr instead of silently vanishing."""
    newest = infos(run_dir)[0]
    newest.path.write_bytes(newest.path.read_bytes().replace(b'"second"', b'"Second"'))
    assert main(["checkpoints", "list", str(run_dir)]) == 0
    captured = capsys.readouterr()
    assert newest.id not in captured.out
    assert f"{newest.id}  DAMAGED manifest" in captured.err


def test_delete_with_yes(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`delete RUN_DIR ID --yes` removes that checkpoint only."""
    newest, oldest = infos(run_dir)
    assert main(["checkpoints", "delete", str(run_dir), oldest.id, "--yes"]) == 0
    assert capsys.readouterr().out.strip() == f"deleted {oldest.id}"
    assert [info.id for info in infos(run_dir)] == [newest.id]


def test_delete_asks_first(run_dir: Path) -> None:
    """Without --yes, `delete` asks; answering no keeps the checkpoint."""
    oldest = infos(run_dir)[1]
    result = CliRunner().invoke(
        app, ["checkpoints", "delete", str(run_dir), oldest.id], input="n\n"
    )
    assert result.exit_code == 1
    assert f"delete checkpoint {oldest.id}?" in result.output
    assert len(infos(run_dir)) == 2


def test_unknown_id_is_one_error_line(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown id exits 2 with one error line listing the existing ids."""
    assert main(["checkpoints", "show", str(run_dir), "ckpt-missing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint 'ckpt-missing'")
    assert all(info.id in err for info in infos(run_dir))
    assert "Traceback" not in err


def test_directory_without_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory holding no checkpoints exits 2 saying so, and creates nothing."""
    assert main(["checkpoints", "list", str(tmp_path)]) == 2
    assert f"no checkpoints found in '{tmp_path}'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_command_line_entry_point(run_dir: Path) -> None:
    """`python -m lensing_ssc checkpoints list` works from a shell."""
    result = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "checkpoints", "list", str(run_dir), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [r["description"] for r in json.loads(result.stdout)] == ["second", "first"]


@pytest.fixture
def pipeline_run(tmp_path: Path, config_file: Callable[..., Path]) -> Path:
    """The run directory of a finished tiny ``lensing-ssc run``: task journals, no checkpoints."""
    run = tmp_path / "run"
    assert main(["run", str(config_file(run))]) == 0
    return run


def test_list_on_a_pipeline_run_says_what_it_holds_and_points_to_tasks(
    pipeline_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list` on a pipeline run names its journals, results and log, and `lensing-ssc tasks`."""
    capsys.readouterr()
    # HDF5 with h5py, NPZ without (a plain install)
    (results_file,) = (p.name for p in (pipeline_run / "results").glob("patch_statistics.*"))
    assert main(["checkpoints", "list", str(pipeline_run)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"no checkpoints in {pipeline_run / 'checkpoints'}",
        f"{pipeline_run} holds task journals instead: maps, patches; "
        f"see them with lensing-ssc tasks {pipeline_run}",
        f"  results  {pipeline_run / 'results'}: {results_file}, summary.txt",
        f"  log      {pipeline_run / 'logs' / 'lensing_ssc.log'}",
    ]
    assert main(["checkpoints", "list", str(pipeline_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_list_on_a_pipeline_run_without_a_checkpoint_dir_points_to_tasks(
    pipeline_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no checkpoints/ at all, `list` on a pipeline run still answers, with exit 0."""
    shutil.rmtree(pipeline_run / "checkpoints", ignore_errors=True)
    capsys.readouterr()
    assert main(["checkpoints", "list", str(pipeline_run)]) == 0
    out = capsys.readouterr().out
    assert f"see them with lensing-ssc tasks {pipeline_run}\n" in out


def test_show_on_a_pipeline_run_is_one_line_naming_lensing_ssc_tasks(
    pipeline_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`show` and `verify` on a pipeline run exit 2 with one line pointing to its journals."""
    capsys.readouterr()
    for command in ("show", "verify"):
        assert main(["checkpoints", command, str(pipeline_run)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line == (
            f"error: no checkpoints in '{pipeline_run / 'checkpoints'}' ({pipeline_run} holds "
            f"task journals instead: maps, patches; see them with lensing-ssc tasks {pipeline_run})"
        )
