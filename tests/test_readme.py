"""What README.md says of its examples holds: the lines they print, what a rerun skips.

That every example runs at all, in a fresh directory, is ``test_docs_examples.py``'s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lensing_ssc.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_config_error_is_what_the_command_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error line README quotes for a bad `cache.max_entries` is the one the command prints."""
    quoted = re.search(
        r"\$ lensing-ssc config validate bad\.yaml\n(error: .*)\n", README.read_text()
    )
    assert quoted is not None
    (tmp_path / "bad.yaml").write_text("cache: {max_entries: -5}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "validate", "bad.yaml"]) == 2
    assert capsys.readouterr().err.strip() == quoted.group(1)


def _block(marker: str) -> str:
    """The README's one Python block that contains ``marker``."""
    [code] = [block for block in BLOCKS if marker in block]
    return code


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "example.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENSING_SSC_")}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**env, "LENSING_SSC_PROGRESS__ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_readme_quick_start_prints_what_it_says_and_skips_everything_on_a_rerun(
    tmp_path: Path,
) -> None:
    """The quick start prints `200 0 226.85`, then `0 200 226.85` when run again."""
    code = _block("patch_power")
    first, second = _run(code, tmp_path), _run(code, tmp_path)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert (first.stdout.strip(), second.stdout.strip()) == ("200 0 226.85", "0 200 226.85")


def test_readme_pipeline_pattern_reruns_none_of_the_finished_work(tmp_path: Path) -> None:
    """Run again, the pipeline pattern resumes from its last checkpoint: no item is redone."""
    code = _block("def processing_pipeline")
    counting = code.replace("results.append(item * item)", "results.append(square(item))")
    assert counting != code
    counting = (
        "import pathlib\n"
        "def square(item):\n"
        "    with pathlib.Path('squared.txt').open('a') as out:\n"
        "        out.write(f'{item}\\n')\n"
        "    return item * item\n" + counting
    )
    for _ in range(2):
        done = _run(counting, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1000"
    assert len((tmp_path / "squared.txt").read_text().split()) == 1000  # none of them twice


def test_readme_exit_status_table_is_the_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README lists the statuses the command uses, and a bad input is one line and status 2."""
    from lensing_ssc.cli import EXIT_CRASHED
    from lensing_ssc.cli._run import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_STOPPED

    table = re.search(
        r"\| status \| when \| what to do \|\n\|---.*\n((?:\|.*\n)+)", README.read_text()
    )
    assert table is not None
    listed = [int(row.split("|")[1]) for row in table.group(1).splitlines()]
    assert listed == sorted({0, EXIT_FAILURES, 2, EXIT_STOPPED, EXIT_CRASHED, EXIT_INTERRUPTED})
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2, errors
    assert all(line.startswith("error: ") for line in errors), errors
