"""Every Python example in README.md and docs/*.md runs as written, in a fresh directory.

Each ```` ```python ```` block is one test: written to a script in an empty temporary
directory and run by a fresh interpreter, which must exit 0. Two HTML comments, invisible on
the rendered page, mark blocks on the line just above them:

- ``<!-- skip: REASON -->``: not run (a signature, an excerpt of a module, a job that needs a
  SLURM cluster or ``mpiexec``, an example that reads a finished run); the test is skipped
  with the reason. An example run elsewhere names the test that runs it in its reason
  (``tests/pipelines/test_pipeline_guide.py`` runs ``docs/pipeline.md``'s on a prepared
  run), and that test must exist.
- ``<!-- file: NAME -->`` above any block (a YAML config): the block is written to ``NAME``
  in the directory of every Python example of the page, as a reader would save it.

An example that fails only because an optional package is missing here is skipped, naming
what is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"^(?:<!-- (?P<kind>skip|file): (?P<note>.+?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```",
    re.M | re.S,
)
# Packages of the extras that examples may use.
_OPTIONAL = ("zstandard", "lz4", "xxhash", "h5py", "healpy", "matplotlib", "distributed", "xarray")


@dataclass(frozen=True)
class Example:
    """One Python block of a page, with the files the page asks to be saved beside it."""

    page: Path
    line: int
    code: str
    skip: str | None
    files: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The Python blocks of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    blocks = list(_BLOCK.finditer(text))
    files = tuple(
        (block["note"].strip(), block["code"]) for block in blocks if block["kind"] == "file"
    )
    return [
        Example(
            page=page,
            line=text.count("\n", 0, block.start("lang")) + 1,
            code=block["code"],
            skip=block["note"] if block["kind"] == "skip" else None,
            files=files,
        )
        for block in blocks
        if block["lang"] == "python"
    ]


EXAMPLES = [example for page in PAGES for example in examples(page)]


def test_the_examples_are_found() -> None:
    """The walk sees the pages' examples, so a broken pattern cannot pass silently."""
    pages = {example.page.name for example in EXAMPLES}
    assert {"README.md", "log_manager.md", "checkpoint_manager.md"} <= pages
    assert len(EXAMPLES) >= 40
    assert all(example.skip for example in EXAMPLES if "*," in example.code)  # signatures


def test_a_skipped_example_names_tests_that_exist() -> None:
    """A skip reason that names the test running its example elsewhere names a real file."""
    named = [
        (example.name, path)
        for example in EXAMPLES
        if example.skip
        for path in re.findall(r"tests/[\w/]+\.py", example.skip)
    ]
    assert named
    for name, path in named:
        assert (ROOT / path).is_file(), f"{name}: its skip names {path}, which does not exist"


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_doc_example_runs_in_a_fresh_directory(example: Example, tmp_path: Path) -> None:
    """The example exits 0 in an empty directory (with the files its page says to save)."""
    if example.skip is not None:
        pytest.skip(example.skip)
    for name, content in example.files:
        (tmp_path / name).write_text(content)
    script = tmp_path / "example.py"
    script.write_text(example.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENSING_SSC_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    missing = [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]
    if result.returncode != 0 and missing and "ModuleNotFoundError" in result.stderr:
        pytest.skip(f"the example needs an optional package; missing here: {', '.join(missing)}")
    assert result.returncode == 0, result.stderr[-3000:]
