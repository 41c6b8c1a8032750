"""A small resumable job that the runner's crash tests start, kill and start again.

Run as a script: ``python runner_job.py --executor processes --journal J --markers M``.
Each item touches ``M/start-<i>-<uuid>`` when it starts and ``M/finish-<i>-<uuid>`` when
its work is done, so a test can count executions. On success the results go to
``--output`` as JSON and the exit code is 0; a graceful stop (``--sigterm`` installs a
SIGTERM handler that asks the runner to stop, as ``ManagerContext`` will) exits with 3.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import InterruptedRunError
from lensing_ssc.processing.runner import RunnerHooks, TaskRunner

STOPPED_EXIT_CODE = 3


def work(item: tuple[int, str, float]) -> float:
    """Square the index after ``seconds`` of sleep, leaving start and finish markers."""
    index, markers, seconds = item
    Path(markers, f"start-{index}-{uuid.uuid4().hex}").touch()
    time.sleep(seconds)
    Path(markers, f"finish-{index}-{uuid.uuid4().hex}").touch()
    return index * index + 0.5


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executor", default="serial")
    parser.add_argument("--journal", required=True)
    parser.add_argument("--markers", required=True)
    parser.add_argument("--output", default=None)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", default=None, help="join this Dask scheduler")
    parser.add_argument("--sigterm", action="store_true")
    args = parser.parse_args(argv)

    stop = threading.Event()
    hooks = RunnerHooks(should_stop=lambda: "SIGTERM" if stop.is_set() else None)
    if args.sigterm:
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    Path(args.markers).mkdir(parents=True, exist_ok=True)
    items = [(index, args.markers, args.seconds) for index in range(args.items)]
    options: dict[str, Any] = {"hooks": hooks}
    if args.executor != "serial":
        options.update(max_workers=args.workers, chunksize=1, max_in_flight=4)
    if args.scheduler:
        options.update(scheduler_address=args.scheduler)
    print("running", flush=True)
    try:
        with TaskRunner(args.executor, **options) as runner:
            result = runner.map(work, items, journal=args.journal)
    except InterruptedRunError as exc:
        print(f"stopped: {exc}", flush=True)
        return STOPPED_EXIT_CODE
    if args.output:
        summary = {
            "results": list(result.results),  # a ResultSequence; json takes a list
            "completed": result.completed,
            "skipped": result.skipped,
            "failed": result.failed,
        }
        Path(args.output).write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
