"""Run ``lensing-ssc``'s patch-statistics pipeline on Dask workers that are SLURM jobs.

The driver (this script) runs in a small SLURM job of its own (``dask_cluster.sbatch``).
It starts a ``dask_jobqueue.SLURMCluster``: a Dask scheduler in this process and
``--jobs`` worker jobs, each one single-threaded Dask worker, submitted with ``sbatch``.
The pipeline then joins that scheduler (``pipeline.scheduler``), exactly as
``lensing-ssc run --scheduler ADDRESS`` does, and its journals, cache and results stay in
the run directory, which must be on a filesystem every node sees.

Exit status, as ``lensing-ssc run``: 0 done, 1 done with failed maps or patches, 2 invalid
input, 3 stopped gracefully (SIGUSR1, SIGTERM; rerun to continue).

    python dask_driver.py config.yaml --jobs 32 --memory 4GB --walltime 02:00:00
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError, InterruptedRunError
from lensing_ssc.pipelines import PipelineConfig, run_patch_statistics

EXIT_FAILURES = 1
EXIT_INVALID = 2
EXIT_STOPPED = 3


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The driver's command line: the run's config and the shape of the worker jobs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="the run's config file (YAML, TOML or JSON)")
    parser.add_argument("--jobs", type=int, default=8, help="worker jobs (default 8)")
    parser.add_argument("--memory", default="4GB", help="memory of each worker job (4GB)")
    parser.add_argument("--walltime", default="02:00:00", help="wall time of each worker job")
    parser.add_argument("--queue", default=None, help="partition of the worker jobs")
    parser.add_argument("--account", default=None, help="account charged for the worker jobs")
    parser.add_argument(
        "--venv", default=None, help="virtual environment the worker jobs activate first"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over instead of continuing the run"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """``SLURMCluster`` keywords: one job per worker, one core and one thread each.

    One thread per worker: the pipeline's tasks are CPU-bound numpy, and the memory guard
    counts one map per thread against each worker's memory limit.
    """
    options: dict[str, Any] = {
        "cores": 1,
        "processes": 1,
        "memory": args.memory,
        "walltime": args.walltime,
        "queue": args.queue,
        "account": args.account,
        "job_name": "lensing-ssc-worker",
    }
    if args.venv is not None:
        options["job_script_prologue"] = [f"source {args.venv}/bin/activate"]
    return options


def run(args: argparse.Namespace) -> int:
    """Start the cluster, run the pipeline on it, close the cluster; the exit status."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the Dask driver needs dask-jobqueue: pip install 'lensing-ssc[cluster]'"
        ) from exc

    try:
        config = PipelineConfig.from_file(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    with SLURMCluster(**cluster_options(args)) as cluster:
        cluster.scale(jobs=args.jobs)
        config.pipeline.executor = "dask"
        config.pipeline.scheduler = cluster.scheduler_address
        print(f"Dask scheduler {cluster.scheduler_address}, {args.jobs} worker jobs asked for")
        try:
            result = run_patch_statistics(config, resume=not args.fresh)
        except InterruptedRunError as exc:
            print(f"stopped: {exc}", file=sys.stderr)
            return EXIT_STOPPED
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INVALID
    print(f"done: {result.n_maps} maps, {result.n_patches} patches, results {result.results_file}")
    return EXIT_FAILURES if result.failures else 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
