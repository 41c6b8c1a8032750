"""A job that may start GNU OpenMP threads, then maps over the run's process pool.

Run as a script: ``python fork_threads_job.py --threads sht --task transform --run-dir D
--output out.json``. ``--threads`` says what this process does first: ``sht`` (a healpy
spherical-harmonic transform: GNU OpenMP's pool of threads stays alive), ``numba`` (a
numba ``parallel=True`` loop on its ``omp`` layer), ``imported`` (healpy imported and a
BLAS product run: native threads, but no OpenMP one) or ``none``. ``--task`` is what each
item does: ``transform`` (a healpy transform: the call that hangs in a worker forked after
``sht``), ``loop`` (the numba loop), ``plain`` (arithmetic), ``guarded`` (arithmetic, by a
function defined under this script's ``if __name__ == "__main__":``, which a worker that is
not a fork cannot import). ``--rebuild``: the pool is started (a plain map) before the
threads, and the first item of the next map kills its worker, so the pool starts again.

Each result carries the worker's parent pid and :data:`MARK`, which this process sets after
import: a forked worker sees the new value, a fresh one the value set on import. The output
JSON has the results, the same items computed here, this pid, ``forks_workers``, the thread
census, the runner's WARNING records and the run's log file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.processing.managers import ManagerContext
from lensing_ssc.processing.runner._openmp import thread_census

MARK = "set on import"
NO_OPENMP_EXIT_CODE = 4  # numba has no GNU OpenMP layer here
NSIDE = 32


def transform(item: tuple[int, str]) -> tuple[float, int, str]:
    """A healpy round trip (map2alm, alm2map) of a random map; dies once for item 0 if asked."""
    import healpy as hp

    seed, die_marker = item
    if die_marker and not Path(die_marker).exists():
        Path(die_marker).touch()
        os._exit(1)  # the worker dies: the pool is broken and starts again
    sky = np.random.default_rng(seed).standard_normal(hp.nside2npix(NSIDE))
    back = hp.alm2map(hp.map2alm(sky, lmax=2 * NSIDE), NSIDE, lmax=2 * NSIDE)
    return round(float(np.sum(back * sky)), 6), os.getppid(), MARK


def _numba_loop() -> Callable[[Any], float]:
    import numba

    @numba.njit(parallel=True, cache=False)
    def squares(x: Any) -> float:
        total = 0.0
        for i in numba.prange(x.size):
            total += x[i] * x[i]
        return total

    return squares


def loop(item: tuple[int, str]) -> tuple[float, int, str]:
    """A numba parallel loop over 10,000 numbers."""
    seed, _ = item
    return float(_numba_loop()(np.arange(10_000.0) + seed)), os.getppid(), MARK


def plain(item: tuple[int, str]) -> tuple[float, int, str]:
    """Arithmetic only: nothing a fork could hang on."""
    seed, _ = item
    return float(seed * seed), os.getppid(), MARK


def start_threads(kind: str) -> None:
    """Do what leaves this process with the threads ``kind`` names."""
    if kind == "sht":
        import healpy as hp

        hp.map2alm(np.ones(hp.nside2npix(NSIDE)), lmax=NSIDE)
    elif kind == "numba":
        import numba

        try:
            _numba_loop()(np.ones(1000))
        except ValueError:  # numba could not load the layer NUMBA_THREADING_LAYER asks for
            sys.exit(NO_OPENMP_EXIT_CODE)
        if numba.threading_layer() != "omp":
            sys.exit(NO_OPENMP_EXIT_CODE)
    elif kind == "imported":
        import healpy  # noqa: F401  (loads libgomp, starts no thread)

        product = np.ones((300, 300)) @ np.ones((300, 300))  # BLAS threads
        assert product[0, 0] == 300.0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(argv: list[str], guarded: Callable[[tuple[int, str]], Any]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", choices=["sht", "numba", "imported", "none"])
    parser.add_argument("--task", choices=["transform", "loop", "plain", "guarded"])
    parser.add_argument("--mp-context", default=None)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    global MARK
    MARK = "set at run time"
    tasks = {"transform": transform, "loop": loop, "plain": plain, "guarded": guarded}
    task = tasks[args.task]
    run_dir = Path(args.run_dir)
    items = [(seed, "") for seed in range(6)]
    if args.rebuild:
        items[0] = (0, str(run_dir / "died-once"))
    records = _Records()
    logging.getLogger("lensing_ssc.processing.runner").addHandler(records)
    options: dict[str, Any] = {"chunksize": 1}
    if args.mp_context:
        options["mp_context"] = args.mp_context
    with ManagerContext(
        checkpoint_dir=run_dir / "checkpoints",
        executor="processes",
        max_workers=2,
        stop_signals=(),
    ) as ctx:
        if args.rebuild:
            before = ctx.map(plain, [(1, ""), (2, "")], name="before", retries=2, **options)
            assert not before.failures, before.failures
        start_threads(args.threads)
        census = thread_census()
        result = ctx.map(task, items, name="items", retries=2, **options)
        forks = ctx.runner_for(**options).forks_workers
    expected = [task((seed, ""))[0] for seed, _ in items]
    logs = "".join(p.read_text() for p in sorted((run_dir / "logs").glob("*.log")))
    Path(args.output).write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "results": list(result.results),
                "failures": [f.describe() for f in result.failures],
                "expected": expected,
                "forks_workers": forks,
                "census": census.to_dict(),
                "warnings": records.messages,
                "log": logs,
            }
        )
    )
    return 0


if __name__ == "__main__":

    def guarded(item: tuple[int, str]) -> tuple[float, int, str]:
        """Arithmetic, by a function a worker started afresh cannot find."""
        seed, _ = item
        return float(seed * seed), os.getppid(), MARK

    sys.exit(main(sys.argv[1:], guarded))
