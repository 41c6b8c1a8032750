"""Turning the runner's ``executor=`` argument into an adapter, and what that adapter will be.

:func:`build_adapter` sizes and builds a :class:`~._pools.PoolAdapter` for threads,
processes and the user's executors, and a :class:`~._dask.DaskAdapter` for Dask (imported
only then, because importing ``distributed`` takes about a second). The interface they share
is in :mod:`._adapter`. :func:`worker_count`, :func:`runs_in_this_process` and
:func:`forks_workers` answer, without building anything, how many items the adapter runs at
once and where (:func:`start_method`, :func:`dask_start_method`: how its worker processes
start); ``TaskRunner`` passes their answers on (a user's executor is asked its size:
:func:`~._pools.pool_size`); :func:`executor_class` and :func:`class_path` name a user's
executor for the record.
:func:`resolve_scheduler` turns a scheduler address, a scheduler file or
``DASK_SCHEDULER_ADDRESS`` into the address a Dask adapter joins (without connecting:
:mod:`._dask` does that).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import multiprocessing
import multiprocessing.context
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing.runner._adapter import EXECUTOR_NAMES, Adapter, Wrapper
from lensing_ssc.processing.runner._pools import PoolAdapter, pool_size
from lensing_ssc.processing.runner._worker import WorkerSetup, process_worker_init

__all__ = [
    "SCHEDULER_ENV",
    "build_adapter",
    "class_path",
    "dask_start_method",
    "executor_class",
    "forks_workers",
    "is_dask_client",
    "resolve_scheduler",
    "runs_in_this_process",
    "start_fork_server",
    "start_method",
    "worker_count",
]

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
"""Dask's own variable naming a scheduler; read when nothing else names one."""

# "host:port" without a protocol, which Dask reads as tcp://host:port.
_HOST_PORT = re.compile(r"^[\w.\-]+:\d+$|^\[[0-9a-fA-F:.]+\]:\d+$")

# Python's own default for a ThreadPoolExecutor: I/O-bound threads may outnumber the CPUs.
_MAX_DEFAULT_THREADS = 32
_EXTRA_THREADS = 4


def worker_count(executor: Any, max_workers: int | None) -> int:
    """Items ``executor`` runs at once: 1 for ``"serial"``, else ``max_workers`` if given.

    Without ``max_workers``: what a user's executor instance says it has (:func:`pool_size`),
    else the usable CPUs (:func:`~lensing_ssc.core.base.cpus.usable_cpus`), plus 4 and at
    most 32 for threads. A factory's executor is asked once built (``TaskRunner`` does);
    for a Dask cluster the runner joins, its scheduler is asked.
    """
    if executor == "serial":
        return 1
    if max_workers is not None:
        return max_workers
    if executor == "threads":
        return min(_MAX_DEFAULT_THREADS, usable_cpus() + _EXTRA_THREADS)
    if isinstance(executor, Executor):
        return pool_size(executor) or usable_cpus()
    return usable_cpus()


def executor_class(executor: Any) -> type | None:
    """The class of a user's executor: an instance's, or a factory's that is a class
    (through ``functools.partial``); ``None`` for another factory or a name.

    Example:
        >>> import functools
        >>> from concurrent.futures import ProcessPoolExecutor
        >>> executor_class(functools.partial(ProcessPoolExecutor, max_workers=2)).__name__
        'ProcessPoolExecutor'
    """
    while isinstance(executor, functools.partial):
        executor = executor.func
    if isinstance(executor, type):
        return executor
    if isinstance(executor, Executor):
        return type(executor)
    return None


def class_path(cls: type) -> str:
    """``module.Class`` for ``cls``, through the shortest module path that exports it.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> class_path(ThreadPoolExecutor)  # defined in concurrent.futures.thread
        'concurrent.futures.ThreadPoolExecutor'
    """
    parts = cls.__module__.split(".")
    for end in range(1, len(parts)):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, cls.__qualname__, None) is cls:
            return f"{module.__name__}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_scheduler(spec: str | os.PathLike[str] | None, executor: Any) -> str | None:
    """The scheduler address a Dask executor joins, or ``None`` to start a local cluster.

    ``spec`` is an address (``tcp://host:8786``, ``host:8786``) or the path of the JSON
    file ``dask scheduler --scheduler-file`` writes (its ``address`` is read). Without one,
    ``executor="dask"`` takes ``DASK_SCHEDULER_ADDRESS`` when it is set.

    Raises:
        ConfigError: A scheduler file that is missing, unreadable or without an address.

    Example:
        >>> resolve_scheduler("tcp://10.0.0.5:8786", "dask")
        'tcp://10.0.0.5:8786'
    """
    if spec is None:
        if executor != "dask":
            return None
        return os.environ.get(SCHEDULER_ENV) or None
    text = os.fspath(spec).strip()
    if "://" in text or (_HOST_PORT.match(text) and not os.path.isfile(text)):
        return text
    try:
        body = json.loads(Path(text).read_bytes())
        address = body["address"]
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no Dask scheduler file at {text!r}",
            value=text,
            hint="give the path that `dask scheduler --scheduler-file` wrote (on a filesystem "
            "this node sees), or the scheduler's address (tcp://host:8786)",
            field="scheduler",
        ) from exc
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{text!r} is not a Dask scheduler file (JSON with an 'address'): {exc}",
            value=text,
            hint="give the file `dask scheduler --scheduler-file` wrote, or an address",
            field="scheduler",
        ) from exc
    if not isinstance(address, str) or not address:
        raise ConfigError(
            f"the Dask scheduler file {text!r} names no address",
            value=address,
            hint="restart the scheduler with --scheduler-file, or give its address",
            field="scheduler",
        )
    return address


def runs_in_this_process(executor: Any) -> bool:
    """Whether ``executor`` runs tasks in this process: serial, threads, a thread pool."""
    return (isinstance(executor, str) and executor in ("serial", "threads")) or isinstance(
        executor, ThreadPoolExecutor
    )


def start_method(mp_context: multiprocessing.context.BaseContext | str | None) -> str:
    """The start method of the worker processes the runner starts: ``mp_context``'s, else
    Python's default (asked without fixing it, as ``multiprocessing.get_context()`` would).

    Example:
        >>> start_method("spawn")
        'spawn'
    """
    if mp_context is None:
        return (
            multiprocessing.get_start_method(allow_none=True)
            or multiprocessing.get_all_start_methods()[0]
        )
    if isinstance(mp_context, str):
        return mp_context
    return mp_context.get_start_method()


def dask_start_method(mp_context: multiprocessing.context.BaseContext | str | None) -> str:
    """How the workers of the local Dask cluster start: ``mp_context``'s start method, else
    ``"forkserver"`` where the platform has it, else ``"spawn"``.

    Not Python's default, which is ``fork`` on Linux before 3.14: the Nanny forks each worker
    from a thread while the cluster's event loop runs in another, and a fork copies whatever
    locks that thread holds at the instant (a worker hung at start-up in 1 of some 250
    starts on a loaded machine). A fork server is a single-threaded process that forks
    each worker with the modules it preloaded (:mod:`._dask`).
    """
    if mp_context is not None:
        return start_method(mp_context)
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


FORK_REFUSED = (
    "the local Dask cluster cannot fork its workers from this process: Dask's Nanny forks "
    "each one from a thread of its own while the cluster's event loop runs in another, and "
    "a fork of a process with threads copies the locks they hold at that instant (a worker "
    "hung at start-up in about 1 of 250 starts on a loaded machine; Python 3.12 deprecates "
    "such forks) and this process's warning filters (under -W error, any warning a worker "
    "gives while it starts ends it)"
)
"""Why ``mp_context="fork"`` is a ``ConfigError`` for the cluster the runner starts."""


def check_dask_start(
    executor: Any,
    mp_context: multiprocessing.context.BaseContext | str | None,
    scheduler_address: str | None,
) -> None:
    """Refuse ``fork`` for the local Dask cluster, when the runner is made (:data:`FORK_REFUSED`).

    Raises:
        ConfigError: ``executor`` is ``"dask"`` without a scheduler to join, and
            ``mp_context`` asks for ``fork``.

    Example:
        >>> check_dask_start("dask", "spawn", None)  # refuses only fork
    """
    if executor != "dask" or scheduler_address is not None:
        return
    if dask_start_method(mp_context) == "fork":
        raise ConfigError(
            FORK_REFUSED,
            value="fork",
            hint="leave mp_context unset: the workers then fork from a fork server that "
            "preloads distributed and this package, as fast and single-threaded; or use "
            '"spawn"',
            field="mp_context",
        )


def start_fork_server() -> None:
    """Start this process's ``multiprocessing`` fork server, if it is not running yet.

    It preloads ``distributed`` and every module of this package that this process has
    imported (the task's, for a pipeline): the Dask workers forked from it start with them
    imported, instead of importing them each (~2 s of CPU per worker on 2 shared cores).
    Last it imports :mod:`._fork_warmup`, which fills the caches each worker would
    otherwise fill as it starts (~70 ms of CPU per worker). Started before this process
    imports ``distributed`` itself, the server's imports run beside it. A server already
    running (started by other code) is used as it is.
    """
    import multiprocessing.forkserver  # Unix only, as the start method is

    package = __name__.partition(".")[0]
    runner = __name__.rpartition(".")[0]
    ours = {name for name in sys.modules if name.partition(".")[0] == package}
    ours.add(f"{runner}._dask")  # its dask_setup runs in every worker
    warmup = f"{runner}._fork_warmup"  # after everything else: it caches what they loaded
    ours.discard(warmup)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["distributed", *sorted(ours), warmup])
    multiprocessing.forkserver.ensure_running()


def forks_workers(
    executor: Any, mp_context: multiprocessing.context.BaseContext | str | None
) -> bool:
    """Whether ``executor``'s workers start as forks of this process (and inherit its memory).

    ``"processes"`` does with the ``fork`` start method (:func:`start_method`: as asked;
    ``TaskRunner`` asks its pool's start instead, which does not fork Python's default into
    a process where GNU OpenMP threads run, :mod:`._fork_guard`). The local cluster of
    ``"dask"`` never does (:func:`check_dask_start` refuses ``fork``), nor does a cluster
    the runner joins, and a user's executor is not asked.
    """
    if executor == "processes":
        return start_method(mp_context) == "fork"
    return False


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
    n = worker_count(executor, max_workers)
    if executor == "threads":
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
    if executor == "dask" or is_dask_client(executor):
        method = dask_start_method(mp_context)
        local = executor == "dask" and scheduler_address is None
        if local and method == "forkserver" and importlib.util.find_spec("distributed"):
            start_fork_server()  # before distributed is imported here, to overlap the two
        from lensing_ssc.processing.runner._dask import DaskAdapter

        return DaskAdapter(
            client=None if executor == "dask" else executor,
            scheduler_address=scheduler_address,
            n_workers=n,
            setup=setup,
            start_method=method,
        )
    if isinstance(executor, Executor):
        threads = runs_in_this_process(executor)
        return PoolAdapter(
            "executor",
            borrowed=executor,
            in_process=threads,
            n_workers=n,
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
            n_workers=max_workers,  # None: asked of the executor once it is built
            task_setup=setup,
        )
    raise ConfigError(
        f"executor must be a name, an Executor, an Executor factory or a Dask Client, "
        f"got {type(executor).__name__}",
        value=executor,
        hint=f"use one of {', '.join(EXECUTOR_NAMES)}",
        field="executor",
    )


def is_dask_client(executor: Any) -> bool:
    """Whether ``executor`` is a ``distributed.Client`` (never importing ``distributed``)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(executor, distributed.Client)
