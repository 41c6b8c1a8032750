"""How each start of the runner's process pool starts its workers: forks unless that hangs.

Python's default start method on Linux before 3.14 is ``fork``, and a worker forked from a
process whose GNU OpenMP runtime has live threads hangs at its first OpenMP parallel region
(:mod:`._openmp`). So when the runner starts its process pool with that default
(``mp_context`` not given), :func:`choose_pool_start` counts this process's threads, and if
GNU OpenMP runs some, the pool starts with ``forkserver`` (``spawn`` where there is no fork
server). An explicit ``mp_context`` is used as given, ``"fork"`` included; without OpenMP
threads the pool forks as before, and its workers inherit what this process computed.

A worker that is not a fork imports the task's modules afresh, and the task must be loadable
there: :func:`fresh_start_problem` names what is not (a function of an interactive session,
one defined only under the script's ``if __name__ == "__main__":``, a module no fresh
process finds, a script that starts the run outside that block and so would run again in
every worker, an initializer that cannot be pickled). Then the pool forks as it always did,
and the record names the risk and the fixes: refusing would break every such run, while a
fork hangs only a worker that itself enters an OpenMP parallel region. (A task that cannot
be pickled at all fails the same way with any start method; that is not the guard's to say.)

:class:`PoolStart` carries the choice and the sentence that explains it; :class:`PoolStarts`
makes it at each start of one runner's pool and logs the sentence once per start, and
``TaskRunner.forks_workers`` answers with it. Not here: the pool (:mod:`._pools`), the thread
census (:mod:`._openmp`).
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import multiprocessing
import multiprocessing.context
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lensing_ssc.processing.runner._executors import start_method
from lensing_ssc.processing.runner._openmp import ThreadCensus, thread_census

__all__ = ["PoolStart", "PoolStarts", "choose_pool_start", "fresh_start_problem"]

logger = logging.getLogger("lensing_ssc.processing.runner")

_UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


@dataclass(frozen=True)
class PoolStart:
    """How one start of the runner's process pool starts its workers, and why.

    Attributes:
        method: ``"fork"``, ``"forkserver"`` or ``"spawn"``.
        context: The pool's ``mp_context``: the caller's, the method chosen instead of
            Python's default, or ``None`` for that default.
        census: The threads counted for the choice (``None``: not counted, because the
            caller chose the method or Python's default does not fork).
        note: Why the method is not what the caller would get from Python: the record to
            log, or ``None``.

    Example:
        >>> choose_pool_start("spawn")
        PoolStart(method='spawn', context='spawn', census=None, note=None)
    """

    method: str
    context: multiprocessing.context.BaseContext | str | None
    census: ThreadCensus | None = None
    note: str | None = None

    @property
    def forks(self) -> bool:
        """Whether the workers are forks of this process (and inherit its memory)."""
        return self.method == "fork"

    def mp_context(self) -> multiprocessing.context.BaseContext | None:
        """The context to build the pool with (``None``: Python's default)."""
        if isinstance(self.context, str):
            return multiprocessing.get_context(self.context)
        return self.context


def choose_pool_start(
    mp_context: multiprocessing.context.BaseContext | str | None,
    *,
    func: Any = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> PoolStart:
    """Choose how the next start of the runner's process pool starts its workers.

    Args:
        mp_context: The caller's choice (used as given), or ``None`` for Python's default.
        func: The task the pool is about to run, to check that workers that are not forks
            can load it (``None``: not known yet).
        initializer, initargs: What each worker runs first (pickled unless it forks).

    Example:
        >>> choose_pool_start("fork").forks
        True
    """
    if mp_context is not None:
        return PoolStart(start_method(mp_context), mp_context)
    default = start_method(None)
    if default != "fork":
        return PoolStart(default, None)
    census = thread_census()
    if not census.openmp:
        return PoolStart("fork", None, census)
    instead = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    threads = (
        f"{census.openmp} of this process's {census.total} threads are GNU OpenMP's "
        f"({census.runtime}), and a worker forked from it hangs at its first OpenMP "
        "parallel region"
    )
    problem = fresh_start_problem(func, initializer, initargs)
    if problem is not None:
        note = (
            f"{threads}; the process pool forks nonetheless, because {problem}. A task that "
            "runs OpenMP code (healpy transforms, numba parallel loops) would hang: make the "
            f"task loadable by a fresh process (then the pool starts with {instead!r}), or "
            "start this process with OMP_NUM_THREADS=1 (GNU OpenMP then starts no thread); "
            "mp_context='fork' forks without this record"
        )
        return PoolStart("fork", None, census, note)
    note = (
        f"{threads}, so the process pool starts its workers with {instead!r} instead of "
        f"Python's default 'fork'; pass mp_context={instead!r} to choose this yourself, or "
        "mp_context='fork' to fork anyway (safe when no task runs OpenMP code)"
    )
    return PoolStart(instead, instead, census, note)


class PoolStarts:
    """The starts of one runner's process pool: the choice at each, and its one record.

    Args:
        mp_context: The caller's choice, or ``None`` for Python's default.

    Attributes:
        task: The function the pool runs next (the runner sets it at each ``map``).

    Example:
        >>> PoolStarts("spawn").current().method
        'spawn'
    """

    def __init__(self, mp_context: multiprocessing.context.BaseContext | str | None) -> None:
        self.task: Any = None
        self._mp_context = mp_context
        self._last: PoolStart | None = None
        self._started = False

    def current(self) -> PoolStart:
        """The choice of the pool's last start; before its first, the choice made now."""
        return self._last or self._keep(choose_pool_start(self._mp_context))

    def start(
        self, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
    ) -> multiprocessing.context.BaseContext | None:
        """Choose for a start of the pool, now, with :attr:`task` in hand; its context."""
        start = choose_pool_start(
            self._mp_context, func=self.task, initializer=initializer, initargs=initargs
        )
        self._keep(start)
        self._started = True
        return start.mp_context()

    def _keep(self, start: PoolStart) -> PoolStart:
        # One record per start: a choice made before the first start and made again as it
        # starts is logged once.
        previous, self._last = self._last, start
        if start.note is not None and (
            self._started or previous is None or previous.method != start.method
        ):
            logger.warning("%s", start.note)
        return start


def fresh_start_problem(
    func: Any, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
) -> str | None:
    """Why a worker that is not a fork of this process could not run ``func``, or ``None``.

    Such a worker unpickles the task by importing its modules, and runs the main script
    again under the name ``__mp_main__`` (not an interactive session's, nor ``python -m
    package``'s ``__main__``). What it finds must be what this process has.

    Example:
        >>> import math
        >>> fresh_start_problem(math.sqrt) is None
        True
    """
    main = sys.modules.get("__main__")
    problem = _script_runs_again(main)
    if problem is not None:
        return problem
    globals_: set[tuple[str, str]] = set()
    # A task that cannot be pickled fails to travel to any worker, a fork's too: the run
    # reports that, whatever the start method.
    with contextlib.suppress(*_UNPICKLABLE):
        globals_ |= _globals_of(func)
    if initializer is not None:
        try:
            globals_ |= _globals_of((initializer, initargs))
        except _UNPICKLABLE as exc:
            return (
                f"the worker initializer {initializer!r} or its arguments cannot be pickled ({exc})"
            )
    for module, qualname in sorted(globals_):
        problem = _not_loadable(module, qualname, main)
        if problem is not None:
            return problem
    return None


class _GlobalsSeen(pickle.Pickler):
    """A pickler that writes nowhere and records the functions and classes it refers to."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL)
        self.seen: set[tuple[str, str]] = set()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            module = getattr(obj, "__module__", None) or "builtins"
            self.seen.add((module, getattr(obj, "__qualname__", obj.__name__)))
        return NotImplemented


def _globals_of(value: Any) -> set[tuple[str, str]]:
    pickler = _GlobalsSeen()
    pickler.dump(value)
    return pickler.seen


def _fresh_main(main: types.ModuleType | None) -> Path | None:
    """The file a fresh worker runs again as ``__mp_main__``, or ``None`` for none."""
    path = getattr(main, "__file__", None)
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if path is None or Path(path).stem == "ipython":
        return None
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return None  # python -m package: multiprocessing does not run it again
    return Path(path)


def _not_loadable(module: str, qualname: str, main: types.ModuleType | None) -> str | None:
    if module in ("__main__", "__mp_main__"):
        script = _fresh_main(main)
        if script is None:
            return (
                f"the task refers to {qualname}, defined in this process's __main__, which "
                "a worker started afresh cannot import"
            )
        tree = _parse(script)
        if tree is not None and qualname.partition(".")[0] not in _names_bound(tree.body):
            return (
                f"the task refers to {qualname}, defined only under the "
                f'`if __name__ == "__main__":` block of {script}, which a worker started '
                "afresh does not run"
            )
        return None
    root = module.partition(".")[0]
    if root in sys.builtin_module_names or _finds(root):
        return None
    return f"the task refers to {module}.{qualname}, and a fresh process finds no module {root!r}"


def _finds(name: str) -> bool:
    """Whether a fresh import of top-level module ``name`` would find it (not from memory)."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(name, None) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def _script_runs_again(main: types.ModuleType | None) -> str | None:
    """The re-run problem of the main script, if it starts the run at its top level."""
    script = _fresh_main(main)
    if script is None or main is None:
        return None
    frame = sys._current_frames().get(threading.main_thread().ident or -1)
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)
    ):
        frame = frame.f_back
    tree = _parse(script)
    if frame is None or tree is None:
        return None
    line = frame.f_lineno
    if any(node.lineno <= line <= (node.end_lineno or node.lineno) for node in _guards(tree)):
        return None
    return (
        f'the script {script} starts the run outside an `if __name__ == "__main__":` '
        "block, so every worker started afresh would run the script again"
    )


def _parse(script: Path) -> ast.Module | None:
    try:
        return ast.parse(script.read_bytes(), filename=str(script))
    except (OSError, SyntaxError, ValueError):
        return None


def _is_guard(node: ast.stmt) -> bool:
    """Whether ``node`` is ``if __name__ == "__main__":`` (either way round)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


def _guards(tree: ast.Module) -> Iterator[ast.If]:
    for node in tree.body:
        if _is_guard(node) and isinstance(node, ast.If):
            yield node


def _names_bound(body: list[ast.stmt]) -> set[str]:
    """Names the statements bind when run as ``__mp_main__`` (the guarded block is not)."""
    names: set[str] = set()
    for node in body:
        if _is_guard(node):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # what its body binds is not the module's
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        for field in ("body", "orelse", "finalbody"):
            names |= _names_bound(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            names |= _names_bound(handler.body)
    return names
