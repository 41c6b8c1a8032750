"""The ``lensing-ssc`` command (also ``python -m lensing_ssc``).

Each command group is a module of its own (``_config.py``, ...) holding a ``typer.Typer``;
this module assembles them and turns ``lensing_ssc`` errors into one clear line on stderr
and exit status 2, instead of a traceback. Anything else is a bug: its traceback, a line
asking for a report, and exit status 4, which no outcome of a run shares.
"""

from __future__ import annotations

import sys
import traceback

import typer

from lensing_ssc._version import __version__
from lensing_ssc.cli._cache import cache_app
from lensing_ssc.cli._checkpoints import checkpoints_app
from lensing_ssc.cli._config import config_app
from lensing_ssc.cli._example import example_app
from lensing_ssc.cli._run import run
from lensing_ssc.cli._status import status
from lensing_ssc.core.base.exceptions import LensingSSCError

__all__ = ["EXIT_CRASHED", "app", "main"]

EXIT_CRASHED = 4

app = typer.Typer(
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
app.command("status")(status)
app.command("run")(run)


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

    Usage errors are reported by click (status 2); a ``lensing_ssc`` error becomes one line
    ``error: ...`` on stderr and status 2; any other exception is a crash (status 4).
    """
    try:
        app(args=argv, prog_name="lensing-ssc", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except LensingSSCError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except Exception:
        traceback.print_exc()
        typer.echo(
            "error: lensing-ssc crashed; please report the traceback above as a bug",
            err=True,
        )
        return EXIT_CRASHED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
