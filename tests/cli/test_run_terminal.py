"""``lensing-ssc run`` in a real terminal: Ctrl-C's acknowledgement on the screen it leaves.

The run draws live bars on a pseudo terminal of 80 columns; the bytes it writes are played
through the pyte terminal emulator, and the assertions are about the final screen.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ConfigFile = Callable[..., Path]  # the config_file fixture of conftest.py
WaitForPatches = Callable[[Path, int, Any], None]  # the wait_for_patches fixture

COLUMNS, ROWS = 80, 30
EXIT_STOPPED = 3
ACKNOWLEDGEMENT = (
    "SIGINT: stopping after the running tasks, saving what finished; Ctrl-C again to stop at once"
)


def _read_all(fd: int, into: bytearray) -> None:
    """Append what the terminal's other side writes to ``into`` until it is closed."""
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            return
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return
        if not chunk:
            return
        into += chunk


def test_ctrl_c_in_a_terminal_leaves_its_acknowledgement_whole_above_the_final_bars(
    tmp_path: Path, children: Any, config_file: ConfigFile, wait_for_patches: WaitForPatches
) -> None:
    """SIGINT mid-run at 80 columns: the acknowledgement is whole on screen, the bars once below."""
    pyte = pytest.importorskip("pyte", reason="the screen is rendered by the pyte emulator")
    run_dir = tmp_path / "run"
    config = config_file(run_dir, "interruptible")
    body = yaml.safe_load(config.read_text())
    body["progress"] = {"enabled": True, "refresh_per_second": 20}
    config.write_text(yaml.safe_dump(body))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = children.start(
        [sys.executable, "-m", "lensing_ssc", "run", str(config)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's job is
        close_fds=True,
    )
    os.close(slave)
    drawn = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, drawn), daemon=True)
    reader.start()
    try:
        wait_for_patches(run_dir, 6, proc)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        assert proc.wait(timeout=120) == EXIT_STOPPED, drawn.decode(errors="replace")
        reader.join(timeout=30)
    finally:
        os.close(master)
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(bytes(drawn))
    rows = [row.rstrip() for row in screen.display]
    # The terminal folds the long line at 80 columns; joined back, it is whole.
    assert ACKNOWLEDGEMENT in "".join(row.ljust(COLUMNS) for row in rows), rows
    said = next(i for i, row in enumerate(rows) if row.startswith("SIGINT:"))
    bars = [i for i, row in enumerate(rows) if row.startswith("patch statistics")]
    assert len(bars) == 1, rows  # the final bars once: no stale frame left above
    stopped = rows.index("stopped: run stopped gracefully (SIGINT); rerun to resume")
    assert said < bars[0] < stopped, rows
