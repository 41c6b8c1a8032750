"""``lensing-ssc tasks``, ``cache clean`` and ``status`` on a wrong directory."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lensing_ssc.cli import main

ConfigFile = Callable[..., Path]  # the config_file fixture of conftest.py

EXIT_USAGE = 2


def _failed_run(tmp_path: Path, config_file: ConfigFile) -> Path:
    """A run whose two patch files are garbage: both maps fail."""
    for i in range(2):
        (tmp_path / f"p{i}.npy").write_bytes(b"garbage")
    config = config_file(
        tmp_path / "run",
        input="patches",
        patches={"files": [str(tmp_path / "p*.npy")], "pixel_size_arcmin": 2.0},
    )
    assert main(["run", str(config)]) == EXIT_USAGE
    return tmp_path / "run"


def test_tasks_lists_counts_per_journal_and_each_failure_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """Each journal's completed and failed counts, then every failed key with file and error."""
    run_dir = _failed_run(tmp_path, config_file)
    capsys.readouterr()
    assert main(["tasks", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "maps: 0 completed, 2 failed"
    assert lines[1].startswith(
        f"  failed patches/map-0000 after 1 attempt: AnalysisError: cannot read {tmp_path}/p0.npy"
    )
    assert lines[3] == "patches: 0 completed, 0 failed"


def test_tasks_json_gives_the_failures_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """``--json`` prints one object per journal with counts and the failures' error types."""
    run_dir = _failed_run(tmp_path, config_file)
    capsys.readouterr()
    assert main(["tasks", str(run_dir), "--json"]) == 0
    maps, patches = json.loads(capsys.readouterr().out)
    assert (maps["name"], maps["completed"], maps["failed"]) == ("maps", 0, 2)
    assert maps["failures"][1]["key"] == "patches/map-0001"
    assert maps["failures"][1]["error_type"].endswith("AnalysisError")
    assert patches["failed"] == 0


def test_tasks_on_a_wrong_directory_is_one_error_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory without task journals: exit 2 and one ``error:`` line naming it."""
    assert main(["tasks", str(tmp_path / "nowhere")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: no task journals in '{tmp_path / 'nowhere' / 'tasks'}'")


def test_status_on_a_wrong_directory_names_it_and_not_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status`` of a directory with no status.json names it and says which to give instead."""
    assert main(["status", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: no run in '{tmp_path}': it has no status.json")
    assert "ManagerContext" not in err


def test_cache_clean_asks_first_and_keeps_the_cache_on_no(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answering no to ``cache clean`` removes nothing and exits 1."""
    assert main(["run", str(config_file(tmp_path / "run"))]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["cache", "clean", str(tmp_path / "run")]) == 1
    assert "nothing removed" in capsys.readouterr().out
    assert any((tmp_path / "run" / "cache" / "values").rglob("*"))


def test_cache_clean_yes_removes_every_entry_and_reports_the_space_freed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """``cache clean --yes`` empties the run's cache and prints the entries and MiB freed."""
    assert main(["run", str(config_file(tmp_path / "run"))]) == 0
    capsys.readouterr()
    assert main(["cache", "clean", str(tmp_path / "run"), "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"removed 4 entries from {tmp_path / 'run' / 'cache'}, freed ")
    assert float(out.split("freed ")[1].split()[0]) > 0
    assert main(["cache", "stats", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0
