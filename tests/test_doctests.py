"""The ``>>>`` examples in the package's docstrings run and print what they show.

Each module with examples is one test, run in a fresh temporary directory (examples may
write ``./checkpoints`` or ``runs/``). A module whose optional dependency is not installed
is skipped, naming the dependency.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lensing_ssc"
# Packages of the extras whose absence an example may meet only when it runs.
_OPTIONAL = ("healpy", "astropy", "h5py", "matplotlib", "zstandard", "lz4", "distributed")


def modules_with_examples() -> list[str]:
    """Dotted names of the package's modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


def test_the_examples_are_found() -> None:
    """The collection sees the modules with examples, so a broken walk cannot pass silently."""
    assert len(MODULES) >= 40
    assert "lensing_ssc.processing.managers.context" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every example of the module gives the output its docstring shows."""
    monkeypatch.chdir(tmp_path)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and not exc.name.startswith("lensing_ssc"):
            pytest.skip(f"{name} needs {exc.name}, an optional dependency")
        raise
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(module, name)
    for test in tests:
        runner.run(test, out=report.write)
    missing = [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]
    if runner.failures and missing and "ModuleNotFoundError" in report.getvalue():
        pytest.skip(f"{name}'s examples need an optional package; missing: {', '.join(missing)}")
    assert runner.failures == 0, report.getvalue()
    assert any(test.examples for test in tests), f"{name} has '>>>' but no example ran"
