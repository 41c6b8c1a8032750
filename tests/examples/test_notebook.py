"""``examples/patch_statistics.ipynb`` runs as a user would run it, in a real Jupyter kernel.

The notebook is executed top to bottom by nbclient in a fresh ipykernel started from this
interpreter (a kernelspec in a temporary directory, as in
``tests/processing/managers/progress/test_progress_jupyter.py``, so no user kernel or IPython
profile is involved), with its temporary files under the test's own directory. Every kernel
message a cell produces is kept, so the progress line drawn while the pipeline ran can be
checked, not only the cell's final state.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib", reason="the notebook draws figures: the plot extra")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
jupyter_manager = pytest.importorskip("jupyter_client.manager")

import lensing_ssc  # noqa: E402  (after the skips: nothing to run when Jupyter is absent)

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "patch_statistics.ipynb"
_KERNEL = "lensing-ssc-notebook-test"
_SRC = Path(lensing_ssc.__file__).resolve().parents[1]


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


class _Executed:
    """The executed notebook: each code cell's outputs and messages, by the cell's id."""

    def __init__(self, nb: Any, recorded: dict[int, list[tuple[str, dict[str, Any]]]]) -> None:
        self.cells = {cell.id: cell for cell in nb.cells if cell.cell_type == "code"}
        self.messages = {nb.cells[index].id: found for index, found in recorded.items()}

    def stdout(self, cell_id: str) -> str:
        """Everything the cell printed to stdout."""
        return "".join(
            output["text"]
            for output in self.cells[cell_id].outputs
            if output["output_type"] == "stream" and output["name"] == "stdout"
        )

    def problems(self) -> dict[str, list[str]]:
        """Per cell, its errors and stderr text: what a user would see as going wrong."""
        found: dict[str, list[str]] = {}
        for cell_id, cell in self.cells.items():
            for output in cell.outputs:
                if output["output_type"] == "error":
                    found.setdefault(cell_id, []).append(f"{output['ename']}: {output['evalue']}")
                elif output["output_type"] == "stream" and output["name"] == "stderr":
                    found.setdefault(cell_id, []).append(output["text"])
        return found

    def images(self, cell_id: str) -> list[str]:
        """The PNG images the cell shows."""
        return [
            output["data"]["image/png"]
            for output in self.cells[cell_id].outputs
            if "image/png" in output.get("data", {})
        ]

    def frames(self, cell_id: str) -> list[str]:
        """Every display the cell drew, in order, as plain text: the first and each update."""
        return [
            content["data"]["text/plain"]
            for kind, content in self.messages.get(cell_id, [])
            if kind in ("display_data", "update_display_data")
        ]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> _Executed:
    """The example notebook, run top to bottom in a fresh kernel in a temporary directory."""
    tmp = tmp_path_factory.mktemp("notebook")
    kernel_dir = tmp / "kernels"
    (kernel_dir / _KERNEL).mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lensing_ssc example test",
        "language": "python",
    }
    (kernel_dir / _KERNEL / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    (tmp / "tmp").mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LENSING_SSC_", "JPY_", "IPYTHON", "PYTHON", "MPLBACKEND"))
    }
    env.update(
        IPYTHONDIR=str(tmp / "ipython"),
        MPLCONFIGDIR=str(tmp / "matplotlib"),
        PYTHONPATH=str(_SRC),
        TMPDIR=str(tmp / "tmp"),  # the notebook's run directory: tempfile.mkdtemp
        TERM="dumb",
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = _RecordingClient(
        nb, kernel_dir=kernel_dir, timeout=120, startup_timeout=60, allow_errors=True
    )
    client.execute(env=env, cwd=str(tmp))
    return _Executed(nb, client.recorded)


def test_the_notebook_is_stored_without_outputs() -> None:
    """The committed notebook holds no outputs or execution counts, only its cells."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert [cell.outputs for cell in code] == [[] for _ in code]
    assert {cell.execution_count for cell in code} == {None}


def test_every_cell_runs_without_an_error_or_a_line_on_stderr(executed: _Executed) -> None:
    """No cell raises, warns or writes to stderr: the library stays quiet in a notebook."""
    assert executed.problems() == {}


def test_the_run_cell_shows_the_live_progress_of_the_patches(executed: _Executed) -> None:
    """While the pipeline runs, its cell draws one progress display counting the 128 patches."""
    frames = executed.frames("run")
    assert frames, "no progress display in the run cell"
    assert all(frame.startswith("patch statistics") for frame in frames)
    assert any("[patches]" in frame and "/128" in frame for frame in frames), frames
    displays = [
        output
        for output in executed.cells["run"].outputs
        if output["output_type"] == "display_data"
    ]
    assert len(displays) == 1  # the one display, updated in place
    counts, timing = executed.stdout("run").splitlines()
    assert counts == "32 maps, 128 patches, 0 failed"
    assert timing.endswith(
        ("/run/results/patch_statistics.h5", "/run/results/patch_statistics.npz")
    )


def test_the_results_are_read_back_with_their_sets_and_statistics(executed: _Executed) -> None:
    """``read_results`` shows the two sets, the quick statistics and C_ℓ's units and bins."""
    text = executed.stdout("results")
    assert "sets: ('subpatches', 'periodic')\n" in text
    assert "statistics: cl/ngal=0, " in text
    assert "peaks/ngal=0/smoothing=2" in text
    assert "C_ℓ [sr]: 6 ℓ bins, 64 patches\n" in text


def test_the_figures_are_drawn_in_the_notebook(executed: _Executed) -> None:
    """The statistic, correlation and SSC comparison cells each show one PNG figure."""
    for cell_id in ("statistic-figure", "correlation-figure", "ssc-figure"):
        assert len(executed.images(cell_id)) == 1, cell_id


def test_the_ssc_comparison_is_a_row_per_ell_bin(executed: _Executed) -> None:
    """The SSC cell prints the pair, a header, and a ratio with its interval for each ℓ bin."""
    lines = executed.stdout("ssc").splitlines()
    assert lines[0] == "subpatches / periodic: cl/ngal=0"
    assert lines[1].split() == ["ℓ", "ratio", "68%", "interval", "SSC", "measured", "predicted"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 6
    for row in rows:
        ratio, low, high = float(row[1]), float(row[2].strip("[,")), float(row[3].rstrip("]"))
        assert 0 < low <= ratio <= high
        assert float(row[4]) == pytest.approx(ratio - 1, abs=0.011)
