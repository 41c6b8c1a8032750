"""``lensing-ssc shells CONFIG`` and ``lensing-ssc kappa CONFIG``: the light-cone stages.

``shells`` makes the config's mass shells (``lightcone.shells``: a FastPM light cone's
particles binned into HEALPix count maps, or the demo's lognormal δ shells); ``kappa``
makes them too if they are not made yet, then the κ maps of every realisation and source
(Born approximation), and with ``--statistics`` (or ``lightcone.statistics: true``) runs
the config's patch statistics on them, as ``lensing-ssc run`` would, figures included.
Both resume what an earlier run in the same run directory finished; ``--fresh`` starts
over. A run directory of other settings is refused, naming each change; when only the κ
settings changed, ``kappa --fresh-kappa`` keeps the shells and makes the κ maps again (and,
with ``--statistics``, their statistics), saying which settings changed. Exit status:
0 done, 1 done with failed tasks, 2 invalid input (a plan that cannot fit in memory
included), 3 stopped (rerun to continue), 130 stopped at once by a second Ctrl-C. The
stages are :func:`lensing_ssc.pipelines.run_lightcone`; the guide is ``docs/kappa.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lensing_ssc.cli._defaults import load_run_config
from lensing_ssc.cli._run import (
    EXIT_FAILURES,
    _cache_line,
    _draw_figures,
    _report,
    _running_job,
)
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing.runner import EXECUTOR_NAMES

if TYPE_CHECKING:
    from lensing_ssc.pipelines import LightconeRun, PipelineConfig
    from lensing_ssc.pipelines.lightcone import Stage

__all__ = ["kappa", "shells"]

_CONFIG = typer.Argument(
    ..., help="Config file (YAML, TOML or JSON) with a 'lightcone' section.", show_default=False
)
_RESUME = typer.Option(
    True, "--resume/--fresh", help="Continue what an earlier run here finished, or start over."
)
_FRESH_KAPPA = typer.Option(
    False,
    "--fresh-kappa",
    help="Keep the shells, make the κ maps again (after changing lightcone.kappa settings).",
)
_EXECUTOR = typer.Option(
    None,
    "--executor",
    metavar="|".join(EXECUTOR_NAMES),
    help="Where tasks run (default: pipeline.executor).",
    show_default=False,
)
_WORKERS = typer.Option(
    None,
    "--workers",
    min=1,
    metavar="N",
    help="Tasks at once (default: the usable CPUs).",
    show_default=False,
)
_RUN_DIR = typer.Option(
    None,
    "--run-dir",
    metavar="DIR",
    help="Run directory (default: the config's run_dir).",
    show_default=False,
)


def _load(config_file: Path, run_dir: Path | None, executor: str | None) -> PipelineConfig:
    config = load_run_config(config_file)
    if run_dir is not None:
        config.run_dir = run_dir
    if executor is not None:
        if executor not in EXECUTOR_NAMES:
            raise ConfigError(
                f"unknown executor {executor!r}",
                value=executor,
                hint=f"use one of {', '.join(EXECUTOR_NAMES)}",
                field="--executor",
            )
        config.pipeline.executor = executor  # type: ignore[assignment]
    return config


def _stages(
    config: PipelineConfig,
    workers: int | None,
    resume: bool,
    *,
    kappa_too: bool,
    fresh_kappa: bool = False,
) -> LightconeRun:
    # Imported here: the pipeline (numpy, healpy) would slow every other command.
    from lensing_ssc.pipelines import run_lightcone

    section = config.lightcone
    typer.echo(
        f"lensing-ssc {'kappa' if kappa_too else 'shells'}: {len(section.seeds)} realisation(s), "
        f"{section.shells.source} shells, {config.pipeline.executor} executor, run directory "
        f"{config.run_dir}"
    )
    stages: tuple[Stage, ...] = ("shells", "kappa") if kappa_too else ("shells",)
    with _running_job():
        result = run_lightcone(
            config, workers=workers, resume=resume, fresh_kappa=fresh_kappa, stages=stages
        )
    for note in result.notes:
        typer.echo(note)
    resumed = f", {result.resumed} task(s) from the earlier run" if result.resumed else ""
    typer.echo(
        f"done: {len(result.shell_files)} shell(s), {len(result.kappa_files)} κ map(s), "
        f"{len(result.failures)} failed, {result.elapsed:.1f} s{resumed}"
    )
    for failure in result.failures:
        typer.echo(f"  failed {failure.stage} {failure.key}: {failure.message}")
    if result.shell_files:
        typer.echo(f"shells   {Path(result.shell_files[0]).parent}")
    if result.kappa_files:
        typer.echo(f"kappa    {Path(result.kappa_files[0]).parent}")
    return result


def shells(
    config_file: Path = _CONFIG,
    resume: bool = _RESUME,
    executor: str | None = _EXECUTOR,
    workers: int | None = _WORKERS,
    run_dir: Path | None = _RUN_DIR,
) -> None:
    """Make the config's matter shells (light-cone particles or lognormal); resumable."""
    config = _load(config_file, run_dir, executor)
    result = _stages(config, workers, resume, kappa_too=False)
    if result.failures:
        raise typer.Exit(EXIT_FAILURES)


def kappa(
    config_file: Path = _CONFIG,
    resume: bool = _RESUME,
    fresh_kappa: bool = _FRESH_KAPPA,
    executor: str | None = _EXECUTOR,
    workers: int | None = _WORKERS,
    run_dir: Path | None = _RUN_DIR,
    statistics: bool | None = typer.Option(
        None,
        "--statistics/--no-statistics",
        help="Then run the config's patch statistics on the maps (default: lightcone.statistics).",
        show_default=False,
    ),
) -> None:
    """Make the shells, then κ maps by the Born approximation; optionally their statistics."""
    config = _load(config_file, run_dir, executor)
    result = _stages(config, workers, resume, kappa_too=True, fresh_kappa=fresh_kappa)
    if result.failures:
        raise typer.Exit(EXIT_FAILURES)
    if not (config.lightcone.statistics if statistics is None else statistics):
        return
    from lensing_ssc.pipelines import run_patch_statistics

    typer.echo(f"lensing-ssc kappa: patch statistics, {config.pipeline.input} input")
    with _running_job():
        # New κ maps: the statistics of the old ones are of no use, and would be refused.
        run = run_patch_statistics(config, workers=workers, resume=resume and not fresh_kappa)
    _report(run, _cache_line(config), figures=_draw_figures(config, run))
    if run.failures:
        raise typer.Exit(EXIT_FAILURES)
