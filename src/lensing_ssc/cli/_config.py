"""``lensing-ssc config show|validate|schema``: inspect and check configuration files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lensing_ssc.cli._defaults import load_run_config

__all__ = ["config_app"]

config_app = typer.Typer(
    help="Show, validate and describe run configurations.", no_args_is_help=True
)

_FORMATS = ("yaml", "toml", "json")


@config_app.command("show")
def show(
    path: Path | None = typer.Argument(
        None, help="Config file (YAML, TOML or JSON); the built-in default run's if omitted."
    ),
    fmt: str = typer.Option("yaml", "--format", "-f", help="Output format: yaml, toml or json."),
) -> None:
    """Print what `lensing-ssc run` uses: its defaults, the file, then LENSING_SSC_* variables."""
    config = load_run_config(path)
    typer.echo(config.to_text(fmt), nl=False)


@config_app.command("validate")
def validate(path: Path = typer.Argument(..., help="Config file to check.")) -> None:
    """Check a config file; exit 0 when it is valid, 2 with the reason when it is not."""
    config = load_run_config(path)
    typer.echo(f"{path}: valid (run_dir={config.run_dir})")


@config_app.command("schema")
def schema() -> None:
    """Print the JSON schema of the configuration."""
    from lensing_ssc.pipelines import PipelineConfig

    typer.echo(json.dumps(PipelineConfig.json_schema(), indent=2))
