"""Live displays on a terminal: redraws on a real pseudo terminal, output scrolling above,
managers stacking, drawing only from the refresher thread, surviving a broken display."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lensing_ssc.processing.managers import ProgressManager


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LENSING_SSC_", "FORCE_COLOR"))}
    env.pop("TTY_COMPATIBLE", None)
    env.update(extra)
    return env


def _run_in_pty(script: Path, columns: int = 120, rows: int = 40) -> str:
    """Run ``script`` with stdin/stdout/stderr on a pseudo terminal; return what it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_clean_env(TERM="xterm-256color"),
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode("utf-8", errors="replace")


# -- terminal ---------------------------------------------------------------------------
def test_terminal_gets_a_live_redrawn_table_with_output_scrolling_above(tmp_path: Path) -> None:
    """On a pseudo terminal: ANSI redraws of name, indented subtask, percentage; print and logging
    lines land whole above the display; the final table stays and the cursor comes back."""
    script = _script(
        tmp_path,
        """
        import logging, time
        from lensing_ssc.processing.managers import ProgressManager

        logging.basicConfig(level=logging.INFO, format="LOG %(message)s")
        with ProgressManager(total=20, description="Crunching maps", refresh_per_second=40) as pm:
            for i in range(4):
                with pm.subprogress(f"map_{i}", total=5) as sub:
                    for _ in range(5):
                        time.sleep(0.02)
                        sub.update()
                if i == 1:
                    print("hello from print")
                    logging.info("a log line")
                pm.update(5)
            print("mode", pm.display_mode)
        """,
    )
    out = _run_in_pty(script)
    assert "\x1b[" in out
    assert out.count("\x1b[1A") >= 3  # cursor up: the table was redrawn in place
    assert "Crunching maps" in out
    assert re.search(r"\n  map_[0-3] ", out)  # subtask rows, indented under the root
    assert re.search(r" 25\.0% +5/20 ", out)
    assert re.search(r"100\.0% +20/20 ", out)
    assert re.search(r"(\n|\x1b\[2K)hello from print\r\n", out)
    assert re.search(r"(\n|\x1b\[2K)LOG a log line\r\n", out)
    assert "mode terminal" in out
    assert out.rstrip().endswith("\x1b[?25h") or "\x1b[?25h" in out[-200:]


def test_an_announced_line_stays_above_the_bars_which_are_drawn_once_below_it(
    tmp_path: Path,
) -> None:
    """announce(): the whole line on the final 80-column screen, the table once, below it."""
    pyte = pytest.importorskip("pyte", reason="the screen is rendered by the pyte emulator")
    notice = "SIGINT: " + "a notice longer than the terminal is wide, " * 2 + "kept whole"
    script = _script(
        tmp_path,
        f"""
        import time
        from lensing_ssc.processing.managers import ProgressManager

        with ProgressManager(total=40, description="Crunching maps", refresh_per_second=40) as pm:
            with pm.subprogress("map_0", total=40) as sub:
                for i in range(40):
                    time.sleep(0.01)
                    sub.update()
                    pm.update()
                    if i == 20:
                        print("shown above:", pm.announce({notice!r}))
        """,
    )
    screen = pyte.Screen(80, 24)
    pyte.ByteStream(screen).feed(_run_in_pty(script, columns=80, rows=24).encode())
    rows = [row.rstrip() for row in screen.display]
    assert notice in "".join(row.ljust(80) for row in rows)  # folded by the terminal, whole
    first = next(i for i, row in enumerate(rows) if row.startswith("SIGINT:"))
    tables = [i for i, row in enumerate(rows) if row.startswith("Crunching maps")]
    assert len(tables) == 1, rows  # no stale copy of the bars
    assert tables[0] > first, rows
    assert re.search(r"100\.0% +40/40 ", rows[tables[0]]), rows
    assert "shown above: True" in rows


def test_terminal_mode_restores_logging_handler_streams(tmp_path: Path) -> None:
    """Handlers moved above the live display write to their own stream again after close()."""
    script = _script(
        tmp_path,
        """
        import logging, sys
        from lensing_ssc.processing.managers import ProgressManager

        handler = logging.StreamHandler(sys.stderr)
        logging.getLogger().addHandler(handler)
        with ProgressManager(total=1) as pm:
            moved = handler.stream is not sys.__stderr__
            pm.update()
        print("moved", moved, "restored", handler.stream is sys.__stderr__)
        """,
    )
    assert "moved True restored True" in _run_in_pty(script)


class _RecordingTerminal(io.StringIO):
    """A terminal-like stream that notes which thread wrote while recording is on."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.writers: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.recording:
            self.writers.append(threading.current_thread().name)
        return super().write(text)


def test_update_never_draws_the_refresher_thread_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the caller updates, every terminal write comes from the refresher thread."""
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = _RecordingTerminal()
    with ProgressManager(total=10**9, description="hot", file=stream, refresh_per_second=50) as pm:
        assert pm.display_mode == "terminal"
        stream.recording = True
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            for _ in range(1000):
                pm.update(1)
        stream.recording = False
    assert stream.writers
    assert set(stream.writers) == {"lensing_ssc-progress"}


def test_managers_open_at_once_stack_their_tables_on_one_terminal(tmp_path: Path) -> None:
    """A manager opened inside another draws below it on the same terminal; both finish whole."""
    script = _script(
        tmp_path,
        """
        import time
        from lensing_ssc.processing.managers import ProgressManager

        with ProgressManager(total=4, description="outer job", refresh_per_second=40) as outer:
            for i in range(2):
                with ProgressManager(total=3, description=f"inner job {i}") as inner:
                    for _ in range(3):
                        time.sleep(0.03)
                        inner.update()
                outer.update(2)
        """,
    )
    out = _run_in_pty(script)
    frames = re.split(r"\x1b\[1A", out)  # each redraw moves the cursor up over the last one
    stacked = [
        f
        for f in frames
        if "inner job 1" in f and 0 <= f.find("outer job") < f.index("inner job 1")
    ]
    assert stacked  # frames show the two tables together, the outer one on top
    assert re.search(r"outer job.* 50\.0% +2/4 ", out)
    assert re.search(r"outer job.*100\.0% +4/4 ", out)
    for i in range(2):
        assert re.search(rf"inner job {i}.*100\.0% +3/3 ", out)
    assert "Traceback" not in out


class _FlakyStream(io.StringIO):
    """A stream whose writes fail with an unexpected error while ``broken`` is set."""

    broken = False

    def write(self, text: str) -> int:
        if self.broken:
            raise RuntimeError("stream broke")
        return super().write(text)


def test_a_failing_display_stops_drawing_but_not_the_job(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected display error is logged once; updates and status keep working."""
    stream = _FlakyStream()
    with ProgressManager(total=10, file=stream, heartbeat_interval=0.01) as pm:
        stream.broken = True
        with caplog.at_level(logging.ERROR):
            deadline = time.monotonic() + 5
            while "no more redraws" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
        pm.update(10)
        assert pm.get_status()["current"] == 10
        stream.broken = False
    assert caplog.text.count("progress display failed; no more redraws") == 1
    assert "RuntimeError: stream broke" in caplog.text
