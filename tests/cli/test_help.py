"""Every ``lensing-ssc ... --help`` page reads as Unix help: no typer type placeholders."""

from __future__ import annotations

import re

import pytest
import typer.main

from lensing_ssc.cli import app, main


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the command line, as the words that name it."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not sub.hidden:
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


PATHS = _command_paths()
# typer's defaults that read as Python, not as help: a flag followed by its type, arguments
# in braces, a list's type. An option names its value by metavar, never by a type in angle
# brackets (arguments keep theirs: ``RUN_DIR <path>``).
PLACEHOLDERS = re.compile(r"<bool>|<list\[|\{[a-z_]+\}")
TYPE_AFTER_OPTION = re.compile(r"│\s*\*?\s*--\S+.*<[a-z]")


def test_every_command_is_walked() -> None:
    """The walk reaches the nested commands, so a page left out cannot pass unseen."""
    assert {("run",), ("cache", "clean"), ("checkpoints", "list"), ("config", "show")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "lensing-ssc")
def test_help_shows_metavars_not_placeholders(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page names arguments in capitals and values by metavar; flags carry no type."""
    monkeypatch.setenv("COLUMNS", "120")
    assert main([*path, "--help"]) == 0
    page = capsys.readouterr().out
    assert PLACEHOLDERS.findall(page) == [], page
    assert [line for line in page.splitlines() if TYPE_AFTER_OPTION.search(line)] == [], page
    assert "--help    " in page or "--help  " in page
    usage = next(line for line in page.splitlines() if "Usage:" in line)
    assert usage.strip().startswith(f"Usage: lensing-ssc {' '.join(path)}".rstrip())


def test_run_help_names_its_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --help``: ``[CONFIG_FILE]``, the executors to choose from, ``--workers N``."""
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["run", "--help"]) == 0
    page = capsys.readouterr().out
    assert "Usage: lensing-ssc run [OPTIONS] [CONFIG_FILE]" in page
    assert re.search(r"--executor +serial\|threads\|processes\|dask ", page)
    assert re.search(r"--workers +N \[1<=x<=4096\] ", page)
    assert re.search(r"--run-dir +DIR ", page)
