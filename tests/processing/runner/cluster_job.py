"""A ``ctx.map`` job that ``test_runner_other_nodes.py`` runs, kills and runs again.

Usage: ``python cluster_job.py RUN_DIR SCHEDULER ITEMS SECONDS TAG`` (``SCHEDULER``:
an address or a scheduler file, or ``serial`` to run here). Each item ``i`` leaves a
marker ``RUN_DIR/markers/<TAG>-<i>-<uuid>.json`` (whole, or not at all) when it starts,
saying on which host it ran and whether it could see this driver's temporary directory,
then works ``SECONDS`` and returns numbers that depend on ``i`` only. The results go to
``RUN_DIR/results.pkl`` (pickled, for a byte-for-byte comparison); exit status 0, 1 with
failed items.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext


def work(item: tuple[int, str, str, float, str]) -> list[float]:
    """Leave a marker of where item ``i`` runs, work, return numbers of ``i`` alone."""
    index, markers, driver_tmp, seconds, tag = item
    where = {"index": index, "host": socket.gethostname(), "sees": os.path.isdir(driver_tmp)}
    # Written whole, then renamed: the test reads the markers while items run, and kills
    # workers; it must never see a marker that is there but not written yet.
    name = f"{tag}-{index}-{uuid.uuid4().hex}"
    partial = Path(markers, f".{name}.partial")
    partial.write_text(json.dumps(where))
    partial.replace(Path(markers, f"{name}.json"))
    time.sleep(seconds)
    return [math.sin(index * (k + 1)) * math.exp(-k / (index + 1)) for k in range(16)]


def main(run_dir: Path, scheduler: str, items: int, seconds: float, tag: str) -> int:
    markers = run_dir / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    config = ProcessingConfig(
        run_dir=run_dir, logging={"format": "json", "console": False}, progress={"enabled": False}
    )
    with tempfile.TemporaryDirectory(prefix="cluster-job-driver-") as driver_tmp:
        jobs = [(i, str(markers), driver_tmp, seconds, tag) for i in range(items)]
        options = {} if scheduler == "serial" else {"scheduler_address": scheduler}
        executor = "serial" if scheduler == "serial" else "dask"
        with ManagerContext(config=config, executor=executor) as ctx:
            result = ctx.map(
                work, jobs, name="numbers", key=lambda job: job[0], chunksize=1, **options
            )
    (run_dir / "results.pkl").write_bytes(pickle.dumps(list(result.results)))
    print(f"done: {result.completed} run, {result.skipped} from an earlier run", flush=True)
    return 1 if result.failures else 0


if __name__ == "__main__":
    run_dir, scheduler, items, seconds, tag = sys.argv[1:6]
    sys.exit(main(Path(run_dir), scheduler, int(items), float(seconds), tag))
