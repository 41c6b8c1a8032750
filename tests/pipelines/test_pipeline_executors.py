"""The pipeline on an executor object: the run asks it its size and records its class.

mpi4py's ``MPIPoolExecutor`` under ``mpiexec`` is in ``tests/examples/test_slurm_examples.py``
(``mpi_driver.py``); here the standard library's pools stand in for any executor.
"""

from __future__ import annotations

import functools
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import read_results, run_patch_statistics

from .conftest import ConfigFactory, assert_same_results


def test_a_pool_class_as_executor_gives_the_serial_numbers_and_records_its_class_and_size(
    tiny_config: ConfigFactory,
) -> None:
    """A ProcessPoolExecutor factory of 2: the serial numbers; run and file name it and 2."""
    serial = run_patch_statistics(tiny_config("serial"))
    pool = functools.partial(ProcessPoolExecutor, max_workers=2)
    run = run_patch_statistics(tiny_config("pool"), executor=pool)
    assert (run.executor, run.workers) == ("concurrent.futures.ProcessPoolExecutor", 2)
    results = read_results(run.results_file)
    recorded = results["meta/config"]["pipeline"]
    assert (recorded["executor"], recorded["workers"]) == (run.executor, 2)
    assert_same_results(results, read_results(serial.results_file))


def test_a_borrowed_pool_is_asked_its_size_and_left_open(tiny_config: ConfigFactory) -> None:
    """A ThreadPoolExecutor of 3 passed as is: 3 workers recorded, and it still takes work."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        run = run_patch_statistics(tiny_config(), executor=pool)
        assert (run.executor, run.workers) == ("concurrent.futures.ThreadPoolExecutor", 3)
        assert pool.submit(abs, -1).result() == 1


def test_an_executor_object_with_a_scheduler_is_refused_naming_both(
    tiny_config: ConfigFactory,
) -> None:
    """pipeline.scheduler joins Dask: an executor object beside it is a ConfigError."""
    config = tiny_config(executor="dask", scheduler="tcp://127.0.0.1:8786")
    with (
        ThreadPoolExecutor(1) as pool,
        pytest.raises(ConfigError, match=r"executor 'ThreadPoolExecutor' was asked for, but pip"),
    ):
        run_patch_statistics(config, executor=pool)
