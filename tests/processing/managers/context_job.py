"""A job run in a subprocess by test_context.py: the README's pipeline example, or ctx.map.

Usage: python context_job.py RUN_DIR MODE N [DELAY]
MODE "pipeline": the README's processing_pipeline over N items, checkpointing every 10.
MODE "map": ctx.map over N items on the processes executor.
Each execution of an item appends a line to RUN_DIR/executions.txt; the final results are
written to RUN_DIR/results.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext

RUN_DIR = Path(sys.argv[1])
MODE = sys.argv[2]
N = int(sys.argv[3])
DELAY = float(sys.argv[4]) if len(sys.argv) > 4 else 0.02


def work(item: int) -> int:
    with open(RUN_DIR / "executions.txt", "a") as fh:
        fh.write(f"{item}\n")
    time.sleep(DELAY)
    return item * item


def readme_pipeline(data: list[int], config: ProcessingConfig) -> list[int]:
    with ManagerContext(config=config, status_interval=0.2) as ctx:
        ctx.log_operation_start("data_processing")
        state = ctx.load_checkpoint()
        start_idx = state.get("last_index", -1) + 1 if state else 0
        results = list(state["results"]) if state else []
        for i, item in enumerate(data[start_idx:], start_idx):
            ctx.check_resources()
            results.append(work(item))
            ctx.update_progress(1)
            if i % 10 == 0:
                ctx.save_checkpoint({"last_index": i, "results": results})
        ctx.save_checkpoint({"completed": True, "last_index": len(data) - 1, "results": results})
        ctx.log_operation_end("data_processing", success=True)
    return results


def main() -> None:
    config = ProcessingConfig(
        run_dir=RUN_DIR, logging={"format": "json", "console": False}, progress={"enabled": False}
    )
    if MODE == "pipeline":
        results = readme_pipeline(list(range(N)), config)
    else:
        with ManagerContext(config=config, executor="processes", max_workers=2) as ctx:
            results = list(ctx.map(work, range(N), name="squares", chunksize=1).results)
    (RUN_DIR / "results.json").write_text(json.dumps(results))
    print("done", os.getpid(), flush=True)


if __name__ == "__main__":
    main()
