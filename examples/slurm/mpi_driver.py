"""Run ``lensing-ssc``'s patch-statistics pipeline on an MPI pool: rank 0 of an MPI job.

Started as ``srun python -m mpi4py.futures mpi_driver.py config.yaml`` (``mpi.sbatch``):
rank 0 runs this script and the other ranks serve its ``MPIPoolExecutor``, which is the
pipeline's executor (:func:`~lensing_ssc.pipelines.run_patch_statistics` starts the pool
and shuts it down). The pool says how many ranks serve it, so that many tasks are in
flight, and the results record ``mpi4py.futures.MPIPoolExecutor`` with that count. The
journals, cache and results stay in the run directory, which rank 0 and every rank that
reads the cache must see; a rerun continues where a stopped or killed run ended.

Exit status, as ``lensing-ssc run``: 0 done, 1 done with failed maps or patches, 2 invalid
input, 3 stopped gracefully (SIGUSR1, SIGTERM; rerun to continue).

    srun python -m mpi4py.futures mpi_driver.py config.yaml --run-dir /scratch/me/run
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from lensing_ssc.core.base.exceptions import ConfigError, InterruptedRunError
from lensing_ssc.pipelines import PipelineConfig, run_patch_statistics

EXIT_FAILURES = 1
EXIT_INVALID = 2
EXIT_STOPPED = 3


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The driver's command line: the run's config, where the run lives, whether to resume."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="the run's config file (YAML, TOML or JSON)")
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="the run directory (default: the config's)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over instead of continuing the run"
    )
    return parser.parse_args(argv)


def ignore_stop_signals() -> None:
    """In each worker rank: leave SIGUSR1 and SIGTERM to rank 0, which stops the run.

    srun passes a signal to every rank; a worker killed by it would take its running task
    with it, while rank 0 lets running tasks finish and saves them.
    """
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run(args: argparse.Namespace) -> int:
    """Run the pipeline with the MPI pool as its executor; the exit status."""
    try:
        from mpi4py.futures import MPIPoolExecutor
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the MPI driver needs mpi4py and an MPI library: pip install 'lensing-ssc[cluster]'"
        ) from exc

    try:
        config = PipelineConfig.from_file(args.config)
        if args.run_dir is not None:
            config.run_dir = args.run_dir
        pool = functools.partial(MPIPoolExecutor, initializer=ignore_stop_signals)
        result = run_patch_statistics(config, executor=pool, resume=not args.fresh)
    except InterruptedRunError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(
        f"done: {result.n_maps} maps, {result.n_patches} patches on {result.workers} "
        f"{result.executor} worker(s), {result.resumed} task(s) from an earlier run, "
        f"results {result.results_file}"
    )
    return EXIT_FAILURES if result.failures else 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
