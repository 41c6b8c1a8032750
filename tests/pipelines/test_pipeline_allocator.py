"""Worker processes keep freed array buffers, so per-patch work does not page-fault."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import time, numpy as np
from lensing_ssc.pipelines._allocator import keep_freed_buffers
tuned = {tuned}
if tuned:
    assert keep_freed_buffers()
buffer = np.ones((256, 256))
def cycle():
    for _ in range(200):
        np.fft.irfft2(np.fft.rfft2(buffer))
cycle()
import resource
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_buffers_stops_page_faults_on_repeated_ffts() -> None:
    """With the allocator tuned, 200 FFT round trips of a 256² map barely page-fault."""

    def faults(tuned: bool) -> int:
        out = subprocess.run(
            [sys.executable, "-c", CODE.format(tuned=tuned)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.strip())

    plain, tuned = faults(False), faults(True)
    assert tuned < plain / 10, (plain, tuned)


def test_keep_freed_buffers_reports_whether_it_applied() -> None:
    """The call says whether the C library took the settings (True on glibc Linux)."""
    code = "from lensing_ssc.pipelines._allocator import keep_freed_buffers as k; print(k())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sys.platform.startswith("linux"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_buffers_starts_no_process() -> None:
    """Every worker calls it at start: it finds mallopt without running ldconfig or a compiler."""
    code = (
        "import subprocess\n"
        "from lensing_ssc.pipelines._allocator import keep_freed_buffers\n"
        "def refuse(self, *args, **kwargs):\n"
        "    raise AssertionError(f'started a process: {args}')\n"
        "subprocess.Popen.__init__ = refuse\n"
        "print(keep_freed_buffers())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
