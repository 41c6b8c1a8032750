"""ProgressManager in a real Jupyter kernel: a live table in the cell, with or without widgets.

Each fixture runs one notebook through nbclient in a fresh ipykernel started from this
interpreter (a kernelspec written to a temporary directory, so no user kernel or IPython
profile is involved) and records every message the kernel sends while a cell runs — the
same messages JupyterLab draws. Warnings inside the kernel are errors, so a warning would
show up as an error output. The fake-kernel unit test of the display is in
``test_progress_heartbeat.py``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
jupyter_manager = pytest.importorskip("jupyter_client.manager")

import lensing_ssc  # noqa: E402  (after the skips: nothing to import when Jupyter is absent)

_KERNEL = "lensing-ssc-test"
_SRC = Path(lensing_ssc.__file__).resolve().parents[1]

_WIDGETS_PRESENT = """
import warnings
warnings.simplefilter("error")
import importlib.util, time
import ipywidgets
from lensing_ssc.processing.managers import ProgressManager
print("ipywidgets:", importlib.util.find_spec("ipywidgets") is not None)
"""

_WIDGETS_MISSING = """
import sys
sys.modules["ipywidgets"] = None  # what the import system does for a package not installed
import warnings
warnings.simplefilter("error")
import importlib.util, time
from lensing_ssc.processing.managers import ProgressManager
print("ipywidgets:", importlib.util.find_spec("ipywidgets") is not None)
"""

_FLAT = """
with ProgressManager(total=50, description="maps") as pm:
    for i in range(50):
        pm.update(1)
        time.sleep(0.02)
print("mode:", pm.display_mode)
"""

_NESTED = """
with ProgressManager(total=3, description="outer") as pm:
    for i in range(3):
        with pm.subprogress(f"map_{i}", total=10) as sub:
            for j in range(10):
                sub.update(1)
            pm.refresh()
        pm.update(1)
print("mode:", pm.display_mode)
"""

_CHATTY = """
with ProgressManager(total=300, description="chatty", refresh_per_second=100) as pm:
    for i in range(300):
        pm.update(1)
        print(f"line {i}")
        time.sleep(0.002)
"""


@dataclass(frozen=True)
class _Cell:
    """One executed cell: its saved outputs and the kernel's messages while it ran."""

    outputs: list[dict[str, Any]]
    messages: list[tuple[str, dict[str, Any]]]

    def problems(self) -> list[str]:
        """Error outputs and stderr text: what a user would see as something going wrong."""
        found = []
        for output in self.outputs:
            if output["output_type"] == "error":
                found.append(f"{output['ename']}: {output['evalue']}")
            elif output["output_type"] == "stream" and output["name"] == "stderr":
                found.append(output["text"])
        return found

    def stdout(self) -> str:
        """Everything the cell printed to stdout."""
        return "".join(
            output["text"]
            for output in self.outputs
            if output["output_type"] == "stream" and output["name"] == "stdout"
        )

    def displays(self) -> list[dict[str, Any]]:
        """The cell's rich outputs (tables, widgets) as saved in the notebook."""
        return [output for output in self.outputs if output["output_type"] == "display_data"]

    def frames(self) -> list[str]:
        """Every table the cell showed, in order: the first display and each update of it."""
        return [
            content["data"]["text/plain"]
            for kind, content in self.messages
            if kind in ("display_data", "update_display_data")
        ]


class _RecordingClient(nbclient.NotebookClient):  # type: ignore[name-defined]
    """A notebook client for the kernelspec in ``kernel_dir`` that keeps every message."""

    def __init__(self, nb: Any, *, kernel_dir: Path, **kwargs: Any) -> None:
        super().__init__(nb, kernel_name=_KERNEL, **kwargs)
        self.kernel_dir = kernel_dir
        self.recorded: dict[int, list[tuple[str, dict[str, Any]]]] = {}

    def create_kernel_manager(self) -> Any:
        """A kernel manager that finds only our kernelspec and talks over local sockets."""
        self.km = jupyter_manager.AsyncKernelManager(
            kernel_name=_KERNEL,
            kernel_spec_manager=kernelspec.KernelSpecManager(kernel_dirs=[str(self.kernel_dir)]),
            transport="ipc",
            ip=str(self.kernel_dir / "ipc"),
        )
        return self.km

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        """Record the message, then let nbclient apply it to the cell."""
        self.recorded.setdefault(cell_index, []).append((msg["msg_type"], msg["content"]))
        return super().process_message(msg, cell, cell_index)


def _run_notebook(tmp: Path, *sources: str) -> list[_Cell]:
    kernel_dir = tmp / "kernels"
    (kernel_dir / _KERNEL).mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lensing_ssc test",
        "language": "python",
    }
    (kernel_dir / _KERNEL / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LENSING_SSC_", "JPY_", "IPYTHON", "PYTHON"))
    }
    env.update(
        IPYTHONDIR=str(tmp / "ipython"),
        PYTHONPATH=str(_SRC),
        TERM="dumb",
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = _RecordingClient(
        nb, kernel_dir=kernel_dir, timeout=60, startup_timeout=60, allow_errors=True
    )
    client.execute(env=env, cwd=str(tmp))
    return [
        _Cell(outputs=cell.outputs, messages=client.recorded.get(index, []))
        for index, cell in enumerate(nb.cells)
    ]


@pytest.fixture(scope="module")
def with_widgets(tmp_path_factory: pytest.TempPathFactory) -> list[_Cell]:
    """Setup, flat loop, nested loop and chatty loop in a kernel where ipywidgets imports."""
    pytest.importorskip("ipywidgets")
    tmp = tmp_path_factory.mktemp("jupyter-widgets")
    return _run_notebook(tmp, _WIDGETS_PRESENT, _FLAT, _NESTED, _CHATTY)


@pytest.fixture(scope="module")
def without_widgets(tmp_path_factory: pytest.TempPathFactory) -> list[_Cell]:
    """Setup, flat loop and nested loop in a kernel where ipywidgets cannot be imported."""
    tmp = tmp_path_factory.mktemp("jupyter-bare")
    return _run_notebook(tmp, _WIDGETS_MISSING, _FLAT, _NESTED)


def _assert_live_flat_table(setup: _Cell, flat: _Cell) -> None:
    assert setup.problems() == []
    assert flat.problems() == []
    assert flat.stdout() == "mode: jupyter\n"
    # Exactly one output in the cell: the table, left at its final state.
    (table,) = flat.displays()
    assert re.search(r"^maps .* 100\.0% 50/50 ", table["data"]["text/plain"])
    html = table["data"]["text/html"]
    assert html.startswith("<pre")
    assert "maps" in html
    assert "50/50" in html
    # Drawn while the loop ran, not only at the end: 0/50 first, some k/50 between, 50/50 last.
    frames = flat.frames()
    assert re.search(r" 0/50 ", frames[0])
    between = [int(m[1]) for f in frames if (m := re.search(r" (\d+)/50 ", f))]
    assert any(0 < k < 50 for k in between), frames
    assert frames[-1] == table["data"]["text/plain"]
    kinds = [kind for kind, _ in flat.messages if "display" in kind]
    assert kinds[0] == "display_data"
    assert set(kinds[1:]) == {"update_display_data"}


def _assert_nested_rows(nested: _Cell) -> None:
    assert nested.problems() == []
    assert nested.stdout() == "mode: jupyter\n"
    # While map_1 was open its row sat indented under the outer task.
    frames = [f for f in nested.frames() if "map_1" in f]
    assert frames, nested.frames()
    lines = frames[-1].splitlines()
    assert re.search(r"^outer .* 33\.3% +1/3 ", lines[0])
    assert re.search(r"^  map_1 .* 100\.0% 10/10 ", lines[1])
    # At the end the closed subtasks are gone and the outer task is complete.
    (table,) = nested.displays()
    final = table["data"]["text/plain"].splitlines()
    assert len(final) == 1
    assert re.search(r"^outer .* 100\.0% 3/3 ", final[0])


def test_with_ipywidgets_the_cell_shows_one_live_table(with_widgets: list[_Cell]) -> None:
    """With ipywidgets installed the loop draws one table, updated live, and no error or warning."""
    setup, flat = with_widgets[0], with_widgets[1]
    assert setup.stdout() == "ipywidgets: True\n"
    _assert_live_flat_table(setup, flat)


def test_with_ipywidgets_nested_subtasks_show_as_indented_rows(with_widgets: list[_Cell]) -> None:
    """With ipywidgets installed an open subtask shows as an indented row under its parent."""
    _assert_nested_rows(with_widgets[2])


def test_with_ipywidgets_every_printed_line_stays_in_the_cell(with_widgets: list[_Cell]) -> None:
    """print() lines inside a fast-redrawing loop all stay in the cell as stdout, in order."""
    chatty = with_widgets[3]
    assert chatty.problems() == []
    assert chatty.stdout() == "".join(f"line {i}\n" for i in range(300))
    (table,) = chatty.displays()
    assert re.search(r"^chatty .* 100\.0% 300/300 ", table["data"]["text/plain"])


def test_without_ipywidgets_the_cell_shows_one_live_table(without_widgets: list[_Cell]) -> None:
    """Without ipywidgets the same loop draws the same live table, with no error or warning."""
    setup, flat = without_widgets[0], without_widgets[1]
    assert setup.stdout() == "ipywidgets: False\n"
    _assert_live_flat_table(setup, flat)


def test_without_ipywidgets_nested_subtasks_show_as_indented_rows(
    without_widgets: list[_Cell],
) -> None:
    """Without ipywidgets an open subtask shows as an indented row under its parent."""
    _assert_nested_rows(without_widgets[2])
