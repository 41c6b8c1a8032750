"""The layer contract of ``pyproject.toml``, checked with import-linter as CI checks it.

The tree must keep the contract, and the contract must catch what it exists for: a copy of
the package with one upward import, or one private module imported from another package, is
refused with that import named.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="the layer contract needs the dev extra")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lensing_ssc"
# The `lint-imports` command, run with this interpreter whatever PATH holds.
_LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def lint_imports(source_root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts over the package under ``source_root``."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [sys.executable, "-c", _LINT_IMPORTS, "--no-cache", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )


def copy_with_line(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package whose ``module`` (a path under it) starts with ``line``."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "lensing_ssc", ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "lensing_ssc" / module
    target.write_text(line + "\n" + target.read_text())
    return root


def test_the_package_keeps_its_layer_contract(tmp_path: Path) -> None:
    """Every contract (layers, private modules, no circles) is kept by the tree as it is."""
    result = lint_imports(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path: Path) -> None:
    """core importing the pipelines is refused, naming the importing module and the import."""
    root = copy_with_line(tmp_path, "core/base/cpus.py", "import lensing_ssc.pipelines")
    result = lint_imports(root, tmp_path)
    assert result.returncode == 1
    assert "Layers" in result.stdout
    assert "BROKEN" in result.stdout
    assert "lensing_ssc.core.base.cpus -> lensing_ssc.pipelines" in result.stdout


def test_a_private_module_of_another_package_is_refused(tmp_path: Path) -> None:
    """The CLI importing a manager's private module is refused, naming both modules."""
    root = copy_with_line(
        tmp_path, "cli/_config.py", "import lensing_ssc.processing.managers.cache._disk"
    )
    result = lint_imports(root, tmp_path)
    assert result.returncode == 1
    assert "Private modules" in result.stdout
    assert "lensing_ssc.cli._config -> lensing_ssc.processing.managers.cache._disk" in (
        result.stdout.replace("\n", " ").replace("->  ", "-> ")
    )


def test_the_pipeline_drawing_with_plotting_breaks_the_layer_contract(tmp_path: Path) -> None:
    """The pipeline importing plotting is refused: the run's figures are drawn above it."""
    root = copy_with_line(tmp_path, "pipelines/patch_statistics.py", "import lensing_ssc.plotting")
    result = lint_imports(root, tmp_path)
    assert result.returncode == 1
    assert "lensing_ssc.pipelines.patch_statistics -> lensing_ssc.plotting" in result.stdout


def test_the_layer_contract_ignores_no_import() -> None:
    """No contract of pyproject.toml lists an import it lets through."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert [c["name"] for c in contracts["contracts"] if c.get("ignore_imports")] == []
