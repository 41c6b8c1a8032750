"""The ``lensing-ssc`` command (also ``python -m lensing_ssc``).

Each command group is a module of its own (``_config.py``, ...) holding a ``typer.Typer``;
this module assembles them and turns ``lensing_ssc`` errors into one clear line on stderr
and exit status 2, instead of a traceback. A ``ModuleNotFoundError`` for a package of one of
our extras (``fast``, ``dask``, ``cluster``, ``healpix``, ``hdf5``, ``plot``, ``shells``,
``xarray``: :mod:`._extras`) is the same: one line naming the extra to install, status 2.
Anything else is a bug: its traceback, a line asking for a report, and exit status 4, which
no outcome of a run shares.
"""

from __future__ import annotations

# isort: off
# First, before the imports that take time: a Ctrl-C meanwhile exits with 130 (._interrupts).
from lensing_ssc.cli._interrupts import CommandInterrupts, end_of_imports, guard_imports

guard_imports()
# isort: on

import logging
import sys
import traceback

import typer

from lensing_ssc._version import __version__
from lensing_ssc.cli._cache import cache_app
from lensing_ssc.cli._checkpoints import checkpoints_app
from lensing_ssc.cli._config import config_app
from lensing_ssc.cli._example import example_app
from lensing_ssc.cli._extras import EXTRA_OF_PACKAGE, missing_extra_message
from lensing_ssc.cli._help import ReadableCommand, ReadableGroup
from lensing_ssc.cli._lightcone import kappa, shells
from lensing_ssc.cli._run import run
from lensing_ssc.cli._status import status
from lensing_ssc.cli._tasks import tasks
from lensing_ssc.core.base.exceptions import LensingSSCError

__all__ = ["EXIT_CRASHED", "EXTRA_OF_PACKAGE", "app", "main", "missing_extra_message"]

EXIT_CRASHED = 4
EXIT_INVALID = 2

app = typer.Typer(
    cls=ReadableGroup,
    name="lensing-ssc",
    help="Weak-lensing super-sample covariance: patch statistics that survive and resume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(cache_app, name="cache")
app.add_typer(checkpoints_app, name="checkpoints")
app.add_typer(example_app, name="example")
app.command("status", cls=ReadableCommand)(status)
app.command("run", cls=ReadableCommand)(run)
app.command("tasks", cls=ReadableCommand)(tasks)
app.command("shells", cls=ReadableCommand)(shells)
app.command("kappa", cls=ReadableCommand)(kappa)
end_of_imports()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lensing-ssc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Weak-lensing super-sample covariance: patch statistics that survive, resume and scale out."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Usage errors are reported by click (status 2); a ``lensing_ssc`` error, and a missing
    package of one of our extras, becomes one line ``error: ...`` on stderr and status 2; any
    other exception is a crash (status 4). A Ctrl-C ends it with status 130 whenever it
    comes (:mod:`._interrupts`). Without ``argv`` (the command itself, reading
    ``sys.argv``), a Ctrl-C after it returned exits with 130 at once.
    """
    interrupts = CommandInterrupts(command=argv is None).install()
    try:
        try:
            return _logged_to_stderr(argv)
        except KeyboardInterrupt:  # outside click's handling: before or after a command ran
            return _interrupted(interrupts)
    except KeyboardInterrupt:  # one more, while the first was reported
        return interrupts.interrupted()
    finally:
        interrupts.finish()


def _interrupted(interrupts: CommandInterrupts) -> int:
    code = interrupts.interrupted()
    typer.echo("interrupted", err=True)
    return code


def _logged_to_stderr(argv: list[str] | None) -> int:
    # The library writes nowhere unless asked; the command shows warnings outside a run
    # (whose LogManager keeps its records to itself) as Python's last resort did.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(console)
    try:
        return _run_app(argv)
    finally:
        root.removeHandler(console)


def _run_app(argv: list[str] | None) -> int:
    try:
        app(args=argv, prog_name="lensing-ssc", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except LensingSSCError as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_INVALID
    except ModuleNotFoundError as exc:
        line = missing_extra_message(exc)
        if line is None:
            return _crashed()
        typer.echo(f"error: {line}", err=True)
        return EXIT_INVALID
    except Exception as exc:
        if _raised_by_interrupt(exc):  # KeyboardInterrupt wrapped: a Ctrl-C, not a bug
            raise KeyboardInterrupt from exc
        return _crashed()
    return 0


def _raised_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was caused by a ``KeyboardInterrupt``: Python 3.11 wraps one raised
    while a class is created (a Ctrl-C during an import) in a ``RuntimeError``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _crashed() -> int:
    """Print the exception being handled as a bug to report; the crash's exit status."""
    traceback.print_exc()
    typer.echo(
        "error: lensing-ssc crashed; please report the traceback above as a bug",
        err=True,
    )
    return EXIT_CRASHED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
