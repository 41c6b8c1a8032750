"""Help pages that read as Unix help: ``RUN_DIR`` and ``[CONFIG_FILE]``, no ``<bool>`` after a flag.

Recent typer releases write a required argument as ``{run_dir}`` in the usage line and put a
Python type after every option, flags included (``--json <bool>``, ``--tag <list[str]>``).
:class:`ReadableCommand` and :class:`ReadableGroup` (given as ``cls=`` to every command and
``typer.Typer`` of the command line) write arguments in capitals, optional ones in brackets
in the usage line, and show no type after a flag; every other option names its value with a
``metavar`` where it is declared (``--workers N``, ``--executor serial|threads|...``).
``tests/cli/test_help.py`` reads every help page for the old placeholders.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["ReadableCommand", "ReadableGroup"]


def _readable(params: list[Any]) -> None:
    """Arguments in capitals (``RUN_DIR``); a flag takes no value: no type after it."""
    for param in params:
        if param is None or param.metavar is not None:
            continue
        if isinstance(param, TyperArgument):
            param.metavar = (param.name or "").upper()
        elif isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""


def _usage(command: TyperCommand | TyperGroup, ctx: Any) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = param.metavar or ""
            pieces.append(name if param.required else f"[{name}]")
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


class _ReadableParams:
    """Options with readable metavars, ``--help`` included: the part commands and groups share."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _readable(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        """``--help``, shown without a type."""
        option = super().get_help_option(ctx)  # type: ignore[misc]
        _readable([option])
        return option


class ReadableCommand(_ReadableParams, TyperCommand):
    """A typer command whose help writes ``RUN_DIR``, ``[CONFIG_FILE]`` and bare flags."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] RUN_DIR``: arguments in capitals, optional ones in brackets."""
        return _usage(self, ctx)


class ReadableGroup(_ReadableParams, TyperGroup):
    """A typer group (``lensing-ssc``, ``lensing-ssc cache``) with the same help style."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] COMMAND [ARGS]...``."""
        return [*_usage(self, ctx), self.subcommand_metavar]
