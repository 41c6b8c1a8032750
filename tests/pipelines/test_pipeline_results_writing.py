"""write_results streams the results file to disk: no copy of the results in memory, the
same bytes as before, and a killed writer leaves the previous file whole.

The memory tests run the writer in a fresh Python process that builds a large merged
result (patch rows of four statistics), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), writes the file and reports its peak resident memory above
what it held before writing (``VmHWM``). Building the file in memory first costs about
the file's size (HDF5) or one and a half times it (NPZ); streaming costs a few slices.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lensing_ssc.core.io import cleanup_temp_files, is_temp_file
from lensing_ssc.pipelines import read_results, run_patch_statistics
from lensing_ssc.pipelines._results import (
    _dataset_attributes,
    _flatten,
    _metadata,
    _write_hdf5,
    write_results,
)

from .conftest import ConfigFactory

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason="needs h5py")
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset"
)

WRITER = textwrap.dedent(
    """
    import re
    import sys
    from pathlib import Path

    import numpy as np

    from lensing_ssc.analysis import StatisticsSettings, summarize_statistics
    from lensing_ssc.pipelines._merged_results import MergedResults, SetSummary
    from lensing_ssc.pipelines._results import write_results

    def kib(field):
        text = Path("/proc/self/status").read_text()
        return int(re.search(field + r":\\s+(\\d+) kB", text).group(1))

    rows, fmt, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    widths = {"cl/ngal=30/smoothing=0": 30, "peaks/ngal=30/smoothing=2": 40,
              "minima/ngal=30/smoothing=2": 40, "pdf/ngal=30/smoothing=2": 40}
    rng = np.random.default_rng(1)
    samples = {}
    for key, width in widths.items():  # filled in blocks: no temporary as big as the data
        samples[key] = array = np.empty((rows, width))
        for start in range(0, rows, 10_000):
            rng.random(out=array[start : start + 10_000])  # incompressible, for the NPZ
    # Summaries of some rows: what is written is their shape, not their accuracy.
    summaries = summarize_statistics({k: v[:2000] for k, v in samples.items()})
    merged = MergedResults(
        StatisticsSettings(),
        {"subpatches": SetSummary(
            "subpatches", "patches", 1000, 2.0, 128, samples, summaries,
            patch_mean=np.zeros(rows), patch_maps=tuple(f"map-{i % 1000}" for i in range(rows)),
        )},
        (), (), {"run_dir": "runs/big"},
    )
    data = sum(array.nbytes for array in samples.values()) // 1024
    before = kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark starts again from now
    print("writing", flush=True)
    write_results(merged, out, fmt)
    print(data, kib("VmHWM") - before, flush=True)
    """
)


def _write_in_a_child(rows: int, fmt: str, out: Path) -> tuple[float, float]:
    """Write a results file of ``rows`` patch rows in a fresh process: (data, extra peak) MiB."""
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(rows), fmt, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    data_kib, extra_kib = map(int, done.stdout.split()[-2:])
    assert read_results(out)["sets/subpatches/peaks/ngal=30/smoothing=2/samples"].shape == (
        rows,
        40,
    )
    return data_kib / 1024, extra_kib / 1024


@needs_h5py
@needs_proc
def test_writing_a_large_hdf5_results_file_adds_almost_no_memory(tmp_path: Path) -> None:
    """200 000 patch rows (229 MiB) go to an HDF5 file with under 1/20 of that on top."""
    data, extra = _write_in_a_child(200_000, "hdf5", tmp_path / "patch_statistics.h5")
    assert data > 200
    assert extra < data / 20, f"writing took {extra:.0f} MiB above the {data:.0f} MiB of data"


@pytest.mark.slow
@needs_proc
def test_writing_a_large_npz_results_file_adds_only_a_few_slices(tmp_path: Path) -> None:
    """400 000 patch rows (458 MiB) go to a compressed NPZ with under 1/6 of that on top."""
    data, extra = _write_in_a_child(400_000, "npz", tmp_path / "patch_statistics.npz")
    assert data > 400
    assert extra < data / 6, f"writing took {extra:.0f} MiB above the {data:.0f} MiB of data"


@needs_h5py
def test_the_streamed_hdf5_file_has_the_bytes_h5py_makes_in_memory(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    """A run's results file, rewritten from its merge or built in memory, is the same bytes."""
    run = run_patch_statistics(tiny_config())
    written = run.results_file.read_bytes()
    again = write_results(run.results, tmp_path / "again.h5", "hdf5")
    assert again.read_bytes() == written
    arrays = _flatten(run.results)
    buffer = io.BytesIO()
    _write_hdf5(buffer, arrays, _metadata(run.results), _dataset_attributes(arrays))
    assert buffer.getvalue() == written


@needs_h5py
def test_a_killed_rewrite_leaves_the_previous_results_file_whole(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    """SIGKILL while a large results file replaces a run's one leaves the old file readable."""
    run = run_patch_statistics(tiny_config())
    target = run.results_file
    before = target.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, "200000", "hdf5", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"writing\n", writer.communicate()[1]
        deadline = time.monotonic() + 60
        temp: list[Path] = []
        while not any(p.stat().st_size > 16 << 20 for p in temp):  # well into the write
            assert writer.poll() is None, "the write ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
            temp = [p for p in target.parent.iterdir() if is_temp_file(p)]
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert writer.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    assert read_results(target)["meta/sets"]["subpatches"]["n_patches"] == 8
    assert cleanup_temp_files(target.parent) == temp
