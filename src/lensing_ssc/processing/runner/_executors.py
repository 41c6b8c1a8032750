"""Turning the runner's ``executor=`` argument into an adapter.

:func:`build_adapter` sizes and builds a :class:`~._pools.PoolAdapter` for threads,
processes and the user's executors, and a :class:`~._dask.DaskAdapter` for Dask (imported
only then, because importing ``distributed`` takes about a second). The interface they share
is in :mod:`._adapter`.
"""

from __future__ import annotations

import functools
import multiprocessing.context
import sys
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing.runner._adapter import EXECUTOR_NAMES, Adapter, Wrapper
from lensing_ssc.processing.runner._pools import PoolAdapter
from lensing_ssc.processing.runner._worker import WorkerSetup, process_worker_init

__all__ = ["build_adapter"]


def build_adapter(
    executor: Any,
    *,
    max_workers: int | None,
    scheduler_address: str | None,
    mp_context: multiprocessing.context.BaseContext | str | None,
    context_wrapper: Wrapper | None,
    worker_initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    setup: WorkerSetup | None,
) -> Adapter:
    """Turn an ``executor=`` argument (other than ``"serial"``) into an adapter.

    Raises:
        ConfigError: An unknown executor name or type.
        ModuleNotFoundError: ``"dask"`` without the ``dask`` extra.
    """
    if executor == "threads":
        n = max_workers or min(32, usable_cpus() + 4)
        return PoolAdapter(
            "threads",
            n_workers=n,
            in_process=True,
            context_wrapper=context_wrapper,
            factory=functools.partial(
                ThreadPoolExecutor, max_workers=n, thread_name_prefix="lensing_ssc-runner"
            ),
        )
    if executor == "processes":
        n = max_workers or usable_cpus()
        context = (
            multiprocessing.get_context(mp_context) if isinstance(mp_context, str) else mp_context
        )
        return PoolAdapter(
            "processes",
            n_workers=n,
            in_process=False,
            factory=functools.partial(
                ProcessPoolExecutor,
                max_workers=n,
                mp_context=context,
                initializer=process_worker_init,
                initargs=(worker_initializer, initargs),
            ),
        )
    if executor == "dask" or _is_dask_client(executor):
        from lensing_ssc.processing.runner._dask import DaskAdapter

        return DaskAdapter(
            client=None if executor == "dask" else executor,
            scheduler_address=scheduler_address,
            n_workers=max_workers or usable_cpus(),
            setup=setup,
        )
    if isinstance(executor, Executor):
        threads = isinstance(executor, ThreadPoolExecutor)
        return PoolAdapter(
            "executor",
            borrowed=executor,
            in_process=threads,
            n_workers=max_workers or usable_cpus(),
            context_wrapper=context_wrapper,
            task_setup=None if threads else setup,
        )
    if isinstance(executor, str):
        raise ConfigError(
            f"unknown executor {executor!r}",
            value=executor,
            hint=f"use one of {', '.join(EXECUTOR_NAMES)}, or pass a concurrent.futures.Executor",
            field="executor",
        )
    if callable(executor):
        return PoolAdapter(
            "executor",
            factory=executor,
            in_process=False,
            n_workers=max_workers or usable_cpus(),
            task_setup=setup,
        )
    raise ConfigError(
        f"executor must be a name, an Executor, an Executor factory or a Dask Client, "
        f"got {type(executor).__name__}",
        value=executor,
        hint=f"use one of {', '.join(EXECUTOR_NAMES)}",
        field="executor",
    )


def _is_dask_client(executor: Any) -> bool:
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(executor, distributed.Client)
