"""Inputs that crashed the command (exit 4): each is one line on stderr and exit status 2,
and a Ctrl-C at any moment of a run ends it with status 130, never by the signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lensing_ssc.cli._run as run_command
from lensing_ssc.cli import main

ConfigFile = Callable[..., Path]  # the config_file fixture of conftest.py
DEEP = 100_000


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command; assert exit status 2 and an error without a traceback; the error."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "crashed" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_worker_count_too_large_for_any_machine_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """--workers 99999999999999999999 is refused before the run starts, naming the limit."""
    run_dir = tmp_path / "run"
    config = config_file(run_dir, executor="processes")
    assert main(["run", "--workers", "99999999999999999999", str(config)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    assert "Invalid value for '--workers'" in err
    assert "4096" in err
    assert not run_dir.exists()


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_a_config_nested_100000_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """config validate and run on a file nested 100 000 deep: one line, exit 2."""
    path = tmp_path / f"deep.{kind}"
    if kind == "json":
        path.write_text('{"pipeline": ' + "[" * DEEP + "]" * DEEP + "}")
    else:
        path.write_text("pipeline: " + "[" * DEEP + "]" * DEEP + "\n")
    assert "nested" in _one_line_error(capsys, ["config", "validate", str(path)])
    assert "nested" in _one_line_error(capsys, ["run", str(path)])


def test_a_variable_nested_100000_deep_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """LENSING_SSC_RUN_DIR nested 100 000 deep: one line naming it, exit 2."""
    monkeypatch.setenv("LENSING_SSC_RUN_DIR", "[" * DEEP + "]" * DEEP)
    assert "LENSING_SSC_RUN_DIR" in _one_line_error(capsys, ["config", "show"])


def test_a_run_dir_with_a_nul_character_is_not_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """config validate refuses run_dir: "\\0evil" (it accepted it), and run does too."""
    path = tmp_path / "nul.json"
    path.write_text(json.dumps({"run_dir": "\0evil"}))
    assert "run_dir" in _one_line_error(capsys, ["config", "validate", str(path)])
    assert "run_dir" in _one_line_error(capsys, ["run", str(path)])


_ODD_STATUS: list[dict[str, Any]] = [
    {"state": 5, "pid": "x", "host": [], "updated": "soon"},
    {"state": "running", "pid": -3, "host": "h", "updated": 1.0},
    {"state": "running", "pid": 10**30, "host": "h", "updated": 1.0},
    {"state": "finished", "updated": 1.0, "managers": []},
    {"state": "finished", "updated": 1.0, "managers": {"progress": {"current": "a"}}},
    {"state": "finished", "updated": 1.0, "managers": {"progress": {"children": 5}}},
    {"state": "finished", "updated": 1.0, "managers": {"resource": {"current": 3}}},
    {"state": "finished", "updated": 1.0, "managers": {"cache": {"hit_rate": 0, "disk": 1}}},
    {"state": "finished", "updated": 1.0, "managers": {"cache": {"hit_rate": 0, "hits": "a"}}},
]


@pytest.mark.parametrize("status", _ODD_STATUS)
def test_a_status_file_with_fields_of_other_types_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: dict[str, Any]
) -> None:
    """A status.json whose fields have types the run never writes: one line, exit 2."""
    (tmp_path / "status.json").write_text(json.dumps(status))
    assert "status.json" in _one_line_error(capsys, ["status", str(tmp_path)])


def test_a_status_file_nested_deeper_than_json_reads_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A status.json nested 100 000 deep: one line, exit 2."""
    (tmp_path / "status.json").write_text('{"managers": ' + "[" * DEEP + "]" * DEEP + "}")
    assert "status.json" in _one_line_error(capsys, ["status", str(tmp_path)])


# ---- Ctrl-C ------------------------------------------------------------------------------


def test_a_ctrl_c_while_the_config_is_read_ends_with_130(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt before the run starts (reading the config) gives 130, one line."""

    def interrupted(path: Path | None) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "load_run_config", interrupted)
    assert main(["run", str(config_file(tmp_path / "run"))]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_a_second_ctrl_c_while_the_first_is_reported_ends_with_130(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt raised while the first one's message is printed still gives 130."""
    import lensing_ssc.pipelines as pipelines

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    echoed: list[str] = []

    def echo_once_then_interrupted(message: Any = None, *args: Any, **kwargs: Any) -> None:
        echoed.append(str(message))
        if str(message).startswith("stopped at once"):
            raise KeyboardInterrupt

    monkeypatch.setattr(pipelines, "run_patch_statistics", interrupted)
    monkeypatch.setattr(run_command.typer, "echo", echo_once_then_interrupted)
    assert main(["run", str(config_file(tmp_path / "run"))]) == 130
    assert any(line.startswith("stopped at once") for line in echoed)


def test_a_ctrl_c_that_python_wraps_in_another_error_ends_with_130(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_file: ConfigFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.11 wraps a Ctrl-C during class creation in RuntimeError: still 130, no crash."""
    import lensing_ssc.pipelines as pipelines

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__") from exc

    monkeypatch.setattr(pipelines, "run_patch_statistics", wrapped)
    assert main(["run", str(config_file(tmp_path / "run"))]) == 130
    assert "crashed" not in capsys.readouterr().err


_INTERRUPT_DURING_IMPORT = textwrap.dedent(
    """
    import os, signal, sys

    class Interrupt:
        # Delivers SIGINT to this process while the command's modules are imported.
        def find_spec(self, name, path=None, target=None):
            if name == "lensing_ssc.cli._run":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, Interrupt())
    sys.argv = ["lensing-ssc", "config", "show"]
    from lensing_ssc.cli import main
    sys.exit(main())
    """
)


def test_a_ctrl_c_while_the_command_starts_ends_with_130_not_the_signal() -> None:
    """SIGINT while the command imports its modules: exit 130 and one line, not -2."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_DURING_IMPORT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.returncode != -signal.SIGINT
    assert "Traceback" not in done.stderr
