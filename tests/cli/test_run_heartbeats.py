"""``lensing-ssc run > out 2>&1``: the batch log gets heartbeat lines of the patches' progress.

Each test runs the command as a subprocess with stdout and stderr in one file, as a batch
job does, and reads back the lines with a count, a rate and an ETA.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

HEARTBEAT = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) patch statistics \[(?P<stage>maps|patches)\]: "
    r"(?P<done>\d+)/(?P<total>\d+) [\d.]+% \| (?P<rate>[\d.,]+/(s|min|h)) "
    r"\| elapsed \d+:\d\d:\d\d \| eta (?P<eta>\d+:\d\d:\d\d)$"
)


def run_batch(tmp_path: Path, *, interval: float, n_large_fields: int) -> list[str]:
    """Run a serial synthetic job with output to a file; its lines.

    Patches of 512² make the patches stage (about 7 patches a second on two cores) the bulk
    of the run: ``n_large_fields`` fields give ``8 * n_large_fields`` patches.
    """
    config = {
        "run_dir": str(tmp_path / "run"),
        "progress": {"heartbeat_interval": interval},
        "pipeline": {
            "executor": "serial",
            "figures": False,
            "synthetic": {
                "patch_pixels": 512,
                "patches_per_side": 2,
                "n_large_fields": n_large_fields,
            },
        },
    }
    config_path = tmp_path / "job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENSING_SSC_")}
    out = tmp_path / "slurm.out"
    with out.open("w") as sink:
        status = subprocess.run(
            [
                sys.executable,
                "-c",
                "from lensing_ssc.cli import main; raise SystemExit(main())",
                "run",
                str(config_path),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=600,
            check=False,
        ).returncode
    lines = out.read_text().splitlines()
    assert status == 0, lines
    return lines


def heartbeats(lines: list[str]) -> list[re.Match[str]]:
    """The lines that report the count, rate and ETA of the maps or the patches."""
    return [m for line in lines if (m := HEARTBEAT.match(line))]


def check_heartbeats(lines: list[str], *, interval: float, minimum: int) -> None:
    """At least ``minimum`` heartbeats, advancing, about ``interval`` seconds apart."""
    beats = heartbeats(lines)
    assert len(beats) >= minimum, lines
    patches = [m for m in beats if m["stage"] == "patches"]
    done = [int(m["done"]) for m in patches]
    assert done == sorted(done)
    assert done[-1] > done[0]
    assert {int(m["total"]) for m in patches} == {int(patches[0]["total"])}
    stamps = [datetime.strptime(m["stamp"], "%Y-%m-%d %H:%M:%S") for m in beats]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert max(gaps) <= interval + 2, gaps  # one-second stamps, a busy machine
    stage_lines = [line for line in lines if "[maps]" in line or "[patches]" in line]
    assert not [line for line in stage_lines if "no progress" in line]


def test_a_short_batch_run_writes_a_heartbeat_line_every_second(tmp_path: Path) -> None:
    """With a 1 s interval, a run of several seconds writes ≥ 3 patch heartbeats to its output."""
    lines = run_batch(tmp_path, interval=1, n_large_fields=5)
    check_heartbeats(lines, interval=1, minimum=3)
    assert any(line.startswith("done: 10 maps, 40 patches measured") for line in lines)


@pytest.mark.slow
def test_a_long_batch_run_writes_heartbeats_at_its_interval(tmp_path: Path) -> None:
    """A run of over 20 s with a 2 s interval writes about one patch heartbeat per 2 s."""
    lines = run_batch(tmp_path, interval=2, n_large_fields=20)
    beats = heartbeats(lines)
    first = datetime.strptime(beats[0]["stamp"], "%Y-%m-%d %H:%M:%S")
    last = datetime.strptime(beats[-1]["stamp"], "%Y-%m-%d %H:%M:%S")
    assert (last - first).total_seconds() >= 16
    check_heartbeats(lines, interval=2, minimum=20 // 2 - 2)
