"""Output off a terminal: heartbeat lines through a real pipe, a mocked hour of batch log,
stalls, logging, Jupyter without widgets, disabled output, the end line at exit."""

from __future__ import annotations

import builtins
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.processing.managers import ProgressManager

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LENSING_SSC_", "FORCE_COLOR"))}
    env.pop("TTY_COMPATIBLE", None)
    env.update(extra)
    return env


# -- files and pipes --------------------------------------------------------------------
def test_pipe_gets_plain_heartbeats_with_start_stall_and_end_lines(tmp_path: Path) -> None:
    """Through a pipe: no carriage returns or escapes; start, heartbeat, stall and end lines."""
    script = _script(
        tmp_path,
        """
        import time
        from lensing_ssc.processing.managers import ProgressManager

        with ProgressManager(total=30, description="Batch job", heartbeat_interval=0.1) as pm:
            for i in range(30):
                time.sleep(0.01)
                pm.update()
                if i == 14:
                    time.sleep(0.6)
        """,
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, env=_clean_env(), timeout=60, check=True
    )
    err = proc.stderr.decode()
    assert proc.stdout == b""
    assert "\r" not in err
    assert "\x1b" not in err
    lines = err.splitlines()
    assert re.fullmatch(rf"{STAMP} Batch job: started, total 30", lines[0])
    assert re.fullmatch(
        rf"{STAMP} Batch job: done, 30/30 100\.0% \| .*/s \| elapsed 0:00:0\d", lines[-1]
    )
    beats = [line for line in lines[1:-1] if re.fullmatch(rf"{STAMP} Batch job: \d+/30 .*", line)]
    assert len(beats) >= 3
    assert any("no progress for" in line for line in beats)


def test_the_default_interval_writes_a_few_kilobytes_an_hour() -> None:
    """The default 120 s: 30 heartbeats an hour of about 105 bytes, 3.2 KB, per task."""
    clock, out = FakeClock(), io.StringIO()
    with (
        ProgressManager(description="patch statistics", file=out, clock=clock) as pm,
        pm.subprogress("patches", total=10_240) as task,
    ):
        for _ in range(3600):
            clock.advance(1.0)
            task.update(3)
            pm.refresh()
    lines = out.getvalue().splitlines()
    beats = [line for line in lines if "[patches]" in line]
    assert len(beats) == 30
    assert 95 <= max(len(line) + 1 for line in beats) <= 115
    assert sum(len(line) + 1 for line in beats) < 3_500


def test_a_mocked_hour_writes_a_few_kilobytes_per_task() -> None:
    """One hour at 20 items/s with 30 s heartbeats: 122 lines, about 11 KB, for one task."""
    clock, out = FakeClock(), io.StringIO()
    with ProgressManager(
        total=72_000, description="Processing items", file=out, clock=clock, heartbeat_interval=30
    ) as pm:
        for _ in range(3600):
            clock.advance(1.0)
            pm.update(20)
            pm.refresh()
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) == 1 + 120 + 1
    assert len(text.encode()) < 12_000
    assert "\r" not in text
    assert "Processing items: 36000/72000 50.0% | 20/s | elapsed 0:30:00 | eta 0:30:00" in text


def test_heartbeats_continue_while_nothing_advances() -> None:
    """A stalled job still writes a heartbeat every interval, saying for how long it stalled."""
    clock, out = FakeClock(), io.StringIO()
    with ProgressManager(
        total=10, description="stuck", file=out, clock=clock, heartbeat_interval=30
    ) as pm:
        pm.update(3)
        pm.refresh()  # the refresher sees the last advance
        for _ in range(120):
            clock.advance(1.0)
            pm.refresh()
    stalls = re.findall(r"no progress for (\d:\d\d:\d\d)", out.getvalue())
    assert stalls == ["0:00:30", "0:01:00", "0:01:30", "0:02:00"]


def test_subtasks_get_indented_heartbeat_lines() -> None:
    """Each heartbeat lists open subtasks under the root, indented by depth."""
    clock, out = FakeClock(), io.StringIO()
    with (
        ProgressManager(
            total=2, description="maps", file=out, clock=clock, heartbeat_interval=30
        ) as pm,
        pm.subprogress("map_0", total=10) as sub,
        sub.subprogress("smooth", total=4) as inner,
    ):
        sub.update(5)
        inner.update(1)
        clock.advance(31)
        pm.refresh()
    text = out.getvalue()
    assert re.search(rf"{STAMP} maps: 0/2 0\.0%", text)
    assert re.search(rf"{STAMP}   map_0: 5/10 50\.0%", text)
    assert re.search(rf"{STAMP}     smooth: 1/4 25\.0%", text)


# -- logging ----------------------------------------------------------------------------
def test_heartbeats_go_to_a_logger_with_structured_fields() -> None:
    """With logger=, lines go through it as JSON records carrying the numbers, not to the file."""
    json_logger = pytest.importorskip("pythonjsonlogger.json", reason="needs python-json-logger")
    clock, out, log_text = FakeClock(), io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log_text)
    handler.setFormatter(json_logger.JsonFormatter("%(message)s %(levelname)s"))
    logger = logging.getLogger("lensing_ssc.tests.progress_heartbeats")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        with ProgressManager(
            total=100,
            description="maps",
            file=out,
            logger=logger,
            clock=clock,
            heartbeat_interval=30,
        ) as pm:
            clock.advance(30)
            pm.update(42)
            pm.refresh()
    finally:
        logger.removeHandler(handler)
    records = [json.loads(line) for line in log_text.getvalue().splitlines()]
    assert out.getvalue() == ""
    assert [r["message"].split(":")[1].split(",")[0].split()[0] for r in records] == [
        "started",
        "42/100",
        "stopped",
    ]
    beat = records[1]
    assert beat["levelname"] == "INFO"
    assert beat["progress"]["current"] == 42
    assert beat["progress"]["total"] == 100
    assert beat["progress"]["rate"] == pytest.approx(1.4)
    assert beat["progress"]["eta"] == pytest.approx(58 / 1.4)


# -- Jupyter and disabled ---------------------------------------------------------------
class _Handle:
    def __init__(self, bundles: list[dict[str, str]]) -> None:
        self.bundles = bundles

    def update(self, bundle: dict[str, str], **kwargs: Any) -> None:
        assert kwargs == {"raw": True}
        self.bundles.append(bundle)


def test_jupyter_without_ipywidgets_updates_one_cell_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a notebook kernel without ipywidgets the table updates one display, with no warning."""
    bundles: list[dict[str, str]] = []
    displayed: list[dict[str, Any]] = []

    def display(bundle: dict[str, str], **kwargs: Any) -> _Handle:
        displayed.append(kwargs)
        bundles.append(bundle)
        return _Handle(bundles)

    shell = type("ZMQInteractiveShell", (), {})()
    ipython = types.ModuleType("IPython")
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display  # type: ignore[attr-defined]
    monkeypatch.setattr(builtins, "get_ipython", lambda: shell, raising=False)
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)

    with ProgressManager(total=4, description="notebook job", refresh_per_second=0.01) as pm:
        pm.update(2)
        pm.refresh()
        assert pm.display_mode == "jupyter"
    assert displayed == [{"raw": True, "display_id": True}]
    assert "notebook job" in bundles[0]["text/plain"]
    assert re.search(r"50\.0% +2/4", bundles[1]["text/plain"])
    assert "<pre" in bundles[-1]["text/html"]
    assert re.search(r"50\.0% +2/4", bundles[-1]["text/plain"])


def test_disabled_by_environment_writes_nothing_to_a_pipe(tmp_path: Path) -> None:
    """LENSING_SSC_PROGRESS__ENABLED=false in the environment silences a job completely."""
    script = _script(
        tmp_path,
        """
        from lensing_ssc.processing.managers import ProgressManager

        with ProgressManager(total=3, description="quiet job", heartbeat_interval=0.01) as pm:
            for _ in range(3):
                pm.update()
        """,
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        env=_clean_env(LENSING_SSC_PROGRESS__ENABLED="false"),
        timeout=60,
        check=True,
    )
    assert (proc.stdout, proc.stderr) == (b"", b"")


def test_a_manager_never_closed_still_writes_its_end_line_at_exit(tmp_path: Path) -> None:
    """A script that forgets close() still gets a final 'stopped' line when Python exits."""
    script = _script(
        tmp_path,
        """
        from lensing_ssc.processing.managers import ProgressManager

        pm = ProgressManager(total=10, description="forgotten")
        pm.update(4)
        """,
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, env=_clean_env(), timeout=60, check=True
    )
    last = proc.stderr.decode().splitlines()[-1]
    assert re.fullmatch(
        rf"{STAMP} forgotten: stopped, 4/10 40\.0% \| .*/s \| elapsed 0:00:0\d", last
    )


def test_the_end_line_of_a_task_that_only_held_subtasks_has_no_empty_count() -> None:
    """A root with no total and no count of its own ends as 'done | elapsed', not '0 | ?/s'."""
    from lensing_ssc.processing.managers.progress._snapshot import ProgressSnapshot, describe

    container = ProgressSnapshot("progress", 0, None, None, None, None, 1.2, finished=True)
    assert describe(container, outcome="done") == "progress: done | elapsed 0:00:01"
    counted = ProgressSnapshot("items", 7, None, None, 2.0, None, 3.2, finished=True)
    assert describe(counted, outcome="done") == "items: done, 7 | 2/s | elapsed 0:00:03"
