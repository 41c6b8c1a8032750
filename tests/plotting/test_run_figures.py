"""lensing_ssc.plotting.draw_run_figures: the PNGs' sizes, nothing clipped or overlapping,
and the same files drawn at once in forked processes."""

from __future__ import annotations

import itertools
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib", reason="the figures need the plot extra")

import psutil

from lensing_ssc.pipelines import ResultsFile
from lensing_ssc.plotting import RUN_FIGURE_NAMES, draw_run_figures, plot_comparison
from lensing_ssc.plotting._forked import fork_is_safe
from lensing_ssc.plotting._run_figures import _correlation_figure, _statistics_figure


def _pixels(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _collisions(figure: Any) -> list[str]:
    """Every label of ``figure`` that is clipped or overlaps another panel's, in words."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    whole = figure.bbox
    panels = [a for a in figure.axes if a.get_visible()]
    boxes = [a.get_tightbbox(renderer) for a in panels]
    found = []
    for axes, box in zip(panels, boxes, strict=True):
        name = axes.get_title().replace("\n", " ") or axes.get_ylabel()
        if box.x0 < whole.x0 or box.y0 < whole.y0 or box.x1 > whole.x1 or box.y1 > whole.y1:
            found.append(f"{name!r} is clipped")
        for labels in (axes.get_xticklabels(), axes.get_yticklabels()):
            shown = [t for t in labels if t.get_visible() and t.get_text()]
            if shown and shown[0].get_rotation() % 90:
                # Parallel slanted labels clear each other when their anchors are a
                # line apart across the slant.
                centres = sorted(
                    t.get_window_extent(renderer).x0 / 2 + t.get_window_extent(renderer).x1 / 2
                    for t in shown
                )
                across = math.sin(math.radians(shown[0].get_rotation()))
                line = shown[0].get_fontsize() * figure.dpi / 72
                steps = [b - a for a, b in itertools.pairwise(centres)]
                if steps and min(steps) * across < line:
                    found.append(f"{name!r} has slanted tick labels on top of each other")
                continue
            extents = [t.get_window_extent(renderer) for t in shown]
            if any(a.overlaps(b) for a, b in itertools.combinations(extents, 2)):
                found.append(f"{name!r} has tick labels on top of each other")
    for (first, one), (second, other) in itertools.combinations(zip(panels, boxes, strict=True), 2):
        if one.overlaps(other):
            found.append(f"{first.get_title()!r} overlaps {second.get_title()!r}")
    for heading in [text for part in [figure, *figure.subfigs] for text in part.texts]:
        extent = heading.get_window_extent(renderer)
        found += [
            f"the heading overlaps {a.get_title()!r}"
            for a, box in zip(panels, boxes, strict=True)
            if extent.overlaps(box)
        ]
    return found


def test_the_run_figures_keep_their_sizes_in_pixels(results: ResultsFile, tmp_path: Path) -> None:
    """A run's three PNGs are 100 dpi: four columns of statistics, two of correlations, two
    pairs of comparison panels per row, ten statistics."""
    paths = draw_run_figures(results, tmp_path)
    assert len(results.statistic_keys()) == 10
    assert [_pixels(path) for path in paths] == [(1840, 1170), (1400, 1800), (1840, 1760)]


@pytest.mark.parametrize(
    "draw",
    [_statistics_figure, _correlation_figure, plot_comparison],
    ids=["statistics", "correlation", "ssc_ratio"],
)
def test_no_label_of_a_run_figure_is_clipped_or_overlaps_another(
    results: ResultsFile, draw: Any
) -> None:
    """Every title, axis label, tick label and legend of a run's figure lies inside it, clear
    of every other panel's and of the heading."""
    figure = draw(results)
    assert _collisions(figure) == []


def test_a_figure_whose_panels_collide_is_reported(results: ResultsFile) -> None:
    """The collision check sees a panel moved over its neighbour's labels and off the edge."""
    figure = _statistics_figure(results)
    first, second = figure.axes[:2]
    first.set_position(second.get_position().translated(-0.02, 0))
    figure.axes[3].set_position(figure.axes[3].get_position().translated(0.05, 0))
    found = _collisions(figure)
    assert any("overlaps" in line for line in found)
    assert any("is clipped" in line for line in found)


@pytest.mark.skipif(not fork_is_safe(), reason="needs POSIX fork, 2+ CPUs and one thread")
def test_figures_drawn_at_once_are_the_same_files_drawn_in_other_processes(
    results: ResultsFile, tmp_path: Path
) -> None:
    """parallel=True writes byte for byte the PNGs drawn one after the other, and other
    processes drew them."""
    one_by_one = draw_run_figures(results, tmp_path / "sequential")
    before = os.times()
    at_once = draw_run_figures(results, tmp_path / "parallel", parallel=True)
    after = os.times()
    assert [p.name for p in at_once] == list(RUN_FIGURE_NAMES)
    assert [p.read_bytes() for p in at_once] == [p.read_bytes() for p in one_by_one]
    children = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    assert children > 0.1
    assert psutil.Process().children() == []


@pytest.mark.skipif(not fork_is_safe(), reason="needs POSIX fork, 2+ CPUs and one thread")
def test_a_figure_that_fails_in_its_process_raises_its_error_after_the_others(
    results: ResultsFile, tmp_path: Path
) -> None:
    """A figure that cannot be written raises its OSError in the caller; the figures drawn
    beside it are written and no process is left behind."""
    (tmp_path / "correlation.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"correlation\.png"):
        draw_run_figures(results, tmp_path, parallel=True)
    assert [_pixels(tmp_path / name)[0] for name in ("statistics.png", "ssc_ratio.png")] == [
        1840,
        1840,
    ]
    assert psutil.Process().children() == []


def _drawing_at_once(results: ResultsFile, directory: Path) -> tuple[Any, list[Any]]:
    """A process drawing the figures with parallel=True, once its two children run."""
    assert results.path is not None
    script = (
        "import sys; from lensing_ssc.plotting import draw_run_figures; "
        "draw_run_figures(sys.argv[1], sys.argv[2], parallel=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(results.path), str(directory)],
        stderr=subprocess.PIPE,
        text=True,
    )
    drawing = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while len(drawing.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    children = drawing.children()
    assert len(children) == 2, "the figures' processes never started"
    return proc, children


@pytest.mark.skipif(not fork_is_safe(), reason="needs POSIX fork, 2+ CPUs and one thread")
def test_a_figure_process_killed_outright_is_an_os_error_after_the_others(
    results: ResultsFile, tmp_path: Path
) -> None:
    """SIGKILL to one figure's process (an OOM kill): the caller raises ChildProcessError, an
    OSError the run command reports as a warning, once the other figures are written."""
    proc, children = _drawing_at_once(results, tmp_path)
    children[0].send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "ChildProcessError: the process drawing a figure" in stderr
    assert "ended with exit code -9 before reporting" in stderr
    assert (tmp_path / "statistics.png").is_file()
    assert len(list(tmp_path.glob("*.png"))) == 2


@pytest.mark.skipif(not fork_is_safe(), reason="needs POSIX fork, 2+ CPUs and one thread")
def test_an_interrupted_caller_ends_the_figures_processes_before_it_exits(
    results: ResultsFile, tmp_path: Path
) -> None:
    """SIGINT to a process drawing at once: it exits with KeyboardInterrupt and its figure
    processes are gone at once; a figure is whole or not there (one a child finished
    before the signal arrived may be)."""
    proc, children = _drawing_at_once(results, tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    _, alive = psutil.wait_procs(children, timeout=0.1)  # ended before their parent
    assert alive == []
    for name in ("correlation.png", "ssc_ratio.png"):
        path = tmp_path / name
        assert not path.exists() or path.read_bytes().endswith(b"IEND\xaeB`\x82"), name
