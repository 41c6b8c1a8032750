"""A second Ctrl-C while a worker sends a large result: the process still exits at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, _thread
    from lensing_ssc.processing.runner import TaskRunner

    def large(_):
        return b"x" * 100_000_000

    def busy():  # holds the GIL half the time: the result reaches this process slowly
        while True:
            pass

    if __name__ == "__main__":
        threading.Thread(target=busy, daemon=True).start()
        threading.Timer(1.0, _thread.interrupt_main).start()  # Ctrl-C mid-result
        started = time.monotonic()
        try:
            with TaskRunner("processes", max_workers=1) as runner:
                runner.map(large, [0], chunksize=1)
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - started:.1f} s", flush=True)
        sys.exit(0)
    """
)


def test_workers_killed_while_sending_a_result_do_not_hang_the_exit(tmp_path: Path) -> None:
    """The killed worker leaves half a result in the pipe; the interpreter's exit used to
    wait for the rest forever (3 runs in 3), and now ends at once."""
    script = tmp_path / "job.py"
    script.write_text(_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("interrupted after ")
    assert float(done.stdout.split()[2]) < 15.0
