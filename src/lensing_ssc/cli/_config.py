"""``lensing-ssc config show|validate|schema``: inspect and check configuration files.

``config show`` prints the configuration a run would use, exactly (``config show >
config.yaml`` runs as the original, and resumes its runs). Statistics settings left unset
take their values from the statistics preset; in YAML and TOML those values are shown as
comments beside the unset fields (``n_gal: null  # preset: [0.0, 30.0]``), so the output
says what the run computes without pinning values the preset chooses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lensing_ssc.cli._defaults import load_run_config
from lensing_ssc.cli._help import ReadableCommand, ReadableGroup

if TYPE_CHECKING:
    from lensing_ssc.pipelines import PipelineConfig

__all__ = ["config_app"]

config_app = typer.Typer(
    cls=ReadableGroup, help="Show, validate and describe run configurations.", no_args_is_help=True
)

_FORMATS = ("yaml", "toml", "json")
_AUTO = "quick for synthetic input, full otherwise"  # StatisticsSection's docstring


@config_app.command("show", cls=ReadableCommand)
def show(
    path: Path | None = typer.Argument(
        None, help="Config file (YAML, TOML or JSON); the built-in default run's if omitted."
    ),
    fmt: str = typer.Option(
        "yaml", "--format", "-f", metavar="yaml|toml|json", help="Output format."
    ),
) -> None:
    """Print what `lensing-ssc run` uses: its defaults, the file, then LENSING_SSC_* variables."""
    config = load_run_config(path)
    typer.echo(_with_preset_values(config.to_text(fmt), fmt, config), nl=False)


def _preset_values(config: PipelineConfig) -> dict[str, Any]:
    """The statistics fields left unset, with the value the preset gives each in this run."""
    section = config.pipeline.statistics
    resolved = config.pipeline.statistics_settings().to_dict()
    resolved["names"] = resolved.pop("statistics")
    unset = section.model_dump(exclude={"preset"})
    return {
        name: resolved[name]
        for name, value in unset.items()
        if value is None and resolved.get(name) is not None
    }


def _with_preset_values(text: str, fmt: str, config: PipelineConfig) -> str:
    """``text`` with the preset's value as a comment beside each unset statistics field."""
    values = _preset_values(config)
    lines = text.splitlines(keepends=True)
    if fmt == "yaml":
        block = lines.index("  statistics:\n") if "  statistics:\n" in lines else len(lines)
        for index in range(block + 1, len(lines)):
            line = lines[index]
            if not line.startswith("    "):
                break
            name, _, rest = line.strip().partition(": ")
            if rest == "null" and name in values:
                lines[index] = f"{line.rstrip()}  # preset: {json.dumps(values[name])}\n"
            elif name == "preset" and rest == "auto":
                lines[index] = f"{line.rstrip()}  # {_AUTO}\n"
    elif fmt == "toml" and "[pipeline.statistics]\n" in lines:
        # TOML has no null: unset fields are absent; their values follow as comments.
        at = lines.index("[pipeline.statistics]\n") + 1
        if lines[at] == 'preset = "auto"\n':
            lines[at] = f'preset = "auto"  # {_AUTO}\n'
        while at < len(lines) and lines[at].strip() and not lines[at].startswith("["):
            at += 1
        comments = [f"# {name} = {json.dumps(value)}  (preset)\n" for name, value in values.items()]
        lines[at:at] = comments
    return "".join(lines)


@config_app.command("validate", cls=ReadableCommand)
def validate(path: Path = typer.Argument(..., help="Config file to check.")) -> None:
    """Check a config file; exit 0 when it is valid, 2 with the reason when it is not."""
    config = load_run_config(path)
    typer.echo(f"{path}: valid (run_dir={config.run_dir})")


@config_app.command("schema", cls=ReadableCommand)
def schema() -> None:
    """Print the JSON schema of the configuration."""
    from lensing_ssc.pipelines import PipelineConfig

    typer.echo(json.dumps(PipelineConfig.json_schema(), indent=2))
