"""Every Python example of ``docs/pipeline.md`` runs as written, and its figures are small.

The examples run in a fresh interpreter in one working directory that holds what they read:
a synthetic run at ``runs/default`` (the built-in run's path, with fewer fields) and the
HEALPix walkthrough's study at ``maps/`` (``lensing-ssc example healpix-ssc maps --small``
and its run, the reduced study: the examples use only what both sizes have). An example on
an MPI pool runs under ``mpiexec`` with its ranks serving the pool, not in one interpreter:
``tests/examples`` runs it (``examples/slurm/mpi_driver.py``).

``tests/test_docs_examples.py`` runs the guide's examples in an empty directory and skips
those that read a finished run, whose skip markers name this test: they run here.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lensing_ssc.cli import main
from lensing_ssc.pipelines import run_patch_statistics

from .conftest import make_config

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = (DOCS / "pipeline.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)
# The examples tests/test_docs_examples.py skips because this test runs them.
LEFT_HERE = re.findall(
    r"^<!-- skip: [^\n]*tests/pipelines/test_pipeline_guide\.py[^\n]*-->\n```python\n(.*?)```",
    GUIDE,
    flags=re.S | re.M,
)
# Packages of the extras the examples may use.
_OPTIONAL = ("h5py", "healpy", "matplotlib", "xarray")
_MAX_FIGURE_BYTES = 200 * 1024


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``runs/default`` and, with healpy, the walkthrough's ``maps/``."""
    root = tmp_path_factory.mktemp("guide")
    run_patch_statistics(make_config(root / "runs" / "default"))
    if importlib.util.find_spec("healpy") is not None:
        assert main(["example", "healpix-ssc", str(root / "maps"), "--small"]) == 0
        config = root / "maps" / "healpix_ssc.yaml"
        assert main(["run", str(config), "--executor", "serial"]) == 0
    return root


def test_the_guide_has_its_examples() -> None:
    """The guide shows the walkthrough's examples (so the test below is not empty)."""
    assert len(BLOCKS) >= 7
    assert sum("maps/run/results/patch_statistics.h5" in block for block in BLOCKS) >= 3


def test_the_examples_left_to_this_test_read_what_it_prepares() -> None:
    """Each example the docs test leaves here reads the workspace's runs and is not skipped
    as an MPI job, so the test below runs it."""
    assert len(LEFT_HERE) >= 5
    for code in LEFT_HERE:
        assert code in BLOCKS
        assert "MPIPoolExecutor" not in code
        assert "runs/default/results/" in code or "maps/run/results/" in code, code


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_guide_example_runs(workspace: Path, code: str) -> None:
    """A Python example of the guide runs in a fresh interpreter and exits 0."""
    if "MPIPoolExecutor" in code:
        pytest.skip("runs under mpiexec: tests/examples runs examples/slurm/mpi_driver.py")
    if "maps/run" in code and not (workspace / "maps").exists():
        pytest.skip("the walkthrough's maps need the healpix extra (healpy)")
    script = workspace / "example.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    missing = [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]
    if result.returncode != 0 and missing and "ModuleNotFoundError" in result.stderr:
        pytest.skip(f"the example needs an optional package; missing here: {', '.join(missing)}")
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_guide_s_figures_exist_and_are_small() -> None:
    """Every PNG the guide embeds is in docs/figures and under 200 KB."""
    embedded = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", GUIDE)
    assert len(embedded) >= 4
    for name in embedded:
        path = DOCS / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size < _MAX_FIGURE_BYTES, name
