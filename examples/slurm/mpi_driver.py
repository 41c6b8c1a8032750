"""Measure convergence-map statistics on an MPI pool, resumably: rank 0 of an MPI job.

Started as ``srun python -m mpi4py.futures mpi_driver.py --run-dir DIR`` (``mpi.sbatch``):
rank 0 runs this script and the other ranks serve its ``MPIPoolExecutor``. Each item is
one map: a Gaussian convergence field of the package's halofit spectrum, seeded by the map's
index, and its statistics (``StatisticsSettings.quick()``). ``ManagerContext.map`` runs
them with ``MPIPoolExecutor`` as the executor (a factory: the runner starts the pool and
shuts it down) and journals each finished map under ``DIR/tasks/mpi-maps.journal``; the
means over the maps go to ``DIR/results/mpi_statistics.npz``.

The whole ``lensing-ssc run`` pipeline takes executor names only, not an executor: on MPI
this driver maps the analysis functions itself.

Exit status: 0 done, 1 done with failed maps, 3 stopped gracefully (SIGUSR1, SIGTERM;
rerun to continue).
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    compute_patch_statistics,
    gaussian_field,
)
from lensing_ssc.core.base.exceptions import InterruptedRunError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext

EXIT_FAILURES = 1
EXIT_STOPPED = 3


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The driver's command line: where the run lives, how many maps, of what size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="the run directory")
    parser.add_argument("--maps", type=int, default=256, help="maps to draw (default 256)")
    parser.add_argument("--pixels", type=int, default=256, help="pixels on a side (256)")
    parser.add_argument("--pixel-size", type=float, default=2.0, help="arcmin per pixel (2)")
    parser.add_argument("--seed", type=int, default=42, help="seed of every map (42)")
    parser.add_argument("--fresh", action="store_true", help="start over")
    args = parser.parse_args(argv)
    if args.maps < 1:
        parser.error(f"--maps must be at least 1, got {args.maps}")
    return args


def measure_map(index: int, *, seed: int, pixels: int, pixel_size: float) -> dict:
    """Draw map ``index`` and return its statistics; the same numbers on any rank."""
    spectrum = HalofitConvergenceSpectrum()
    kappa = gaussian_field(pixels, pixel_size, spectrum, np.random.default_rng([seed, index]))
    noise = np.random.default_rng([seed, index, 1])
    return compute_patch_statistics(kappa, pixel_size, StatisticsSettings.quick(), noise)


def ignore_stop_signals() -> None:
    """In each worker rank: leave SIGUSR1 and SIGTERM to rank 0, which stops the run.

    srun passes a signal to every rank; a worker killed by it would take its running map
    with it, while rank 0 lets running maps finish and saves them.
    """
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run(args: argparse.Namespace) -> int:
    """Map every map over the MPI pool, journalled; write the means; the exit status."""
    try:
        from mpi4py.futures import MPIPoolExecutor
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the MPI driver needs mpi4py and an MPI library: pip install 'lensing-ssc[cluster]'"
        ) from exc

    pool = functools.partial(MPIPoolExecutor, initializer=ignore_stop_signals)
    measure = functools.partial(
        measure_map, seed=args.seed, pixels=args.pixels, pixel_size=args.pixel_size
    )
    config = ProcessingConfig(run_dir=args.run_dir)
    try:
        with ManagerContext(config=config, description="MPI map statistics") as ctx:
            result = ctx.map(
                measure, range(args.maps), name="mpi-maps", executor=pool, resume=not args.fresh
            )
    except InterruptedRunError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    finished = [stats for stats in result.results if stats is not None]
    means = {key: np.mean([stats[key] for stats in finished], axis=0) for key in finished[0]}
    out = args.run_dir / "results" / "mpi_statistics.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **means)
    earlier = f" ({result.skipped} from an earlier run)" if result.skipped else ""
    print(f"done: {len(finished)} maps, {len(result.failures)} failed{earlier}, means in {out}")
    return EXIT_FAILURES if result.failures else 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
