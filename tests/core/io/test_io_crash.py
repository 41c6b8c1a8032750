"""A writer process killed with SIGKILL at random moments never leaves a torn target.

Each round starts a real Python process that rewrites one file over and over with
``atomic_write`` (alternating two known contents of a few MB, written as a header plus a
numpy array, the way checkpoints are), kills it with SIGKILL after a random delay, and
reads the file: it must be exactly one of the two contents. ``cleanup_temp_files`` must
then find and remove the temp file the killed writer left. The next writer is started
while the current one runs, so process start-up overlaps the waiting.

The last test kills an h5py writer halfway through a file opened with
``atomic_open(path, "w+b")``, the way the pipeline writes its results file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.io import atomic_write, cleanup_temp_files, is_temp_file

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

WRITER = textwrap.dedent(
    """
    import sys

    import numpy as np

    from lensing_ssc.core.io import atomic_write

    def content(which):
        size = (3 << 18) if which == 0 else (5 << 18)
        return b"LSSC-%d\\n" % which, np.arange(size, dtype=np.uint32) * (which + 3)

    target = sys.argv[1]
    contents = [content(0), content(1)]
    print("ready", flush=True)
    sys.stdin.readline()
    which = 1
    while True:
        header, body = contents[which]
        atomic_write(target, [header, body])
        which ^= 1
    """
)


def content(which: int) -> bytes:
    """The bytes the writer produces for content 0 (3 MB) or 1 (5 MB)."""
    size = (3 << 18) if which == 0 else (5 << 18)
    return b"LSSC-%d\n" % which + (np.arange(size, dtype=np.uint32) * (which + 3)).tobytes()


def start_writer(target: Path) -> subprocess.Popen[bytes]:
    """Start a writer process; it imports everything, says "ready" and waits for "go"."""
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    """Block until the writer says it is ready; fail with its stderr if it died."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"writer did not start: {err.decode(errors='replace')}")


def run_kills(tmp_path: Path, rounds: int, seed: int) -> None:
    """Kill ``rounds`` writers at random moments and check the target after each."""
    rng = random.Random(seed)
    target = tmp_path / "checkpoint.bin"
    expected = {content(0): "old", content(1): "new"}
    atomic_write(target, content(0))
    seen = {"old": 0, "new": 0}
    leftovers = 0
    following = start_writer(target)
    try:
        for round_ in range(rounds):
            current = following
            wait_ready(current)
            assert current.stdin is not None
            current.stdin.write(b"go\n")
            current.stdin.flush()
            # Start the next writer now: its start-up overlaps this round's wait.
            following = start_writer(target) if round_ + 1 < rounds else None
            delay = rng.choice([0.0, rng.uniform(0, 0.01), rng.uniform(0, 0.08)])
            try:
                current.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(current.pid, signal.SIGKILL)
            else:
                pytest.fail(f"writer exited on its own: {current.communicate()[1]!r}")
            current.communicate()
            assert current.returncode == -signal.SIGKILL

            data = target.read_bytes()
            assert data in expected, (
                f"round {round_}: torn target of {len(data)} bytes after SIGKILL at {delay:.4f}s"
            )
            seen[expected[data]] += 1
            left = [p for p in tmp_path.iterdir() if is_temp_file(p)]
            removed = cleanup_temp_files(tmp_path)
            assert removed == sorted(left)
            assert [p for p in tmp_path.iterdir() if is_temp_file(p)] == []
            leftovers += len(removed)
    finally:
        if following is not None:
            following.kill()
            following.communicate()
    # The kills really landed in every phase: before the first rename, after some, and
    # mid-write (a temp file was left behind).
    assert seen["old"] > 0
    assert seen["new"] > 0
    assert leftovers > 0


def test_sigkill_at_random_moments_never_tears_the_target(tmp_path: Path) -> None:
    """50 writers killed with SIGKILL mid-stream leave the target old or new, never partial,
    and every temp file they leave is cleaned up."""
    run_kills(tmp_path, rounds=50, seed=20240601)


@pytest.mark.slow
def test_sigkill_many_rounds(tmp_path: Path) -> None:
    """400 SIGKILL rounds with another seed keep the same guarantees."""
    run_kills(tmp_path, rounds=400, seed=7)


HDF5_WRITER = textwrap.dedent(
    """
    import sys

    import h5py
    import numpy as np

    from lensing_ssc.core.io import atomic_open

    with atomic_open(sys.argv[1], "w+b") as fh:
        with h5py.File(fh, "w") as handle:
            handle.create_dataset("first", data=np.full((1000, 1000), 7.0))
            handle.flush()
            print("half", flush=True)
            sys.stdin.readline()  # killed while waiting here, half the file written
            handle.create_dataset("second", data=np.full((1000, 1000), 8.0))
    """
)


@pytest.mark.skipif(h5py is None, reason="needs h5py")
def test_sigkill_mid_hdf5_write_through_atomic_open_leaves_the_old_file(tmp_path: Path) -> None:
    """An HDF5 writer killed halfway through an atomic_open("w+b") file leaves the old file
    readable, whole and unchanged, and a temp file that cleanup_temp_files removes."""
    target = tmp_path / "results.h5"
    with h5py.File(target, "w") as handle:
        handle["old"] = np.arange(10.0)
    before = target.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", HDF5_WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline()
        assert line == b"half\n", writer.communicate()[1].decode(errors="replace")
        (temp,) = [p for p in tmp_path.iterdir() if is_temp_file(p)]
        assert temp.stat().st_size > 8_000_000  # the first dataset is on disk, not in memory
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert writer.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    with h5py.File(target, "r") as handle:
        assert list(handle) == ["old"]
        np.testing.assert_array_equal(handle["old"][...], np.arange(10.0))
    assert cleanup_temp_files(tmp_path) == [temp]
