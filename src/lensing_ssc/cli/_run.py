"""``lensing-ssc run [CONFIG]``: the patch-statistics pipeline, start to finish or resumed.

Without a config it runs the built-in synthetic SSC comparison in ``runs/default``, logging
JSON lines to the run's log file (not the terminal) and stopping gracefully on a memory
breach; a config file starts from the same settings (:mod:`._defaults`). Ctrl-C stops it
gracefully (running tasks finish, within seconds); a second Ctrl-C stops it at once.
Rerunning continues a stopped run; ``--fresh`` starts over. At the end it prints where the
results, figures, summary and log are. Exit status: 0 done, 1 done with failed maps or
patches (results from the rest), 2 invalid input, 3 stopped (rerun to continue), 4 crashed
(a bug), 130 stopped at once by a second Ctrl-C (rerun to continue).
The pipeline itself is :func:`lensing_ssc.pipelines.run_patch_statistics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lensing_ssc.cli._defaults import load_run_config
from lensing_ssc.core.base.exceptions import ConfigError, InterruptedRunError
from lensing_ssc.processing.runner import EXECUTOR_NAMES

if TYPE_CHECKING:
    from lensing_ssc.pipelines import PipelineRun

__all__ = ["run"]

EXIT_FAILURES = 1
EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130  # the shell's code for a job ended by SIGINT

_MAX_FAILURES_SHOWN = 10


def _report(result: PipelineRun) -> None:
    resumed = f", {result.resumed} task(s) from the earlier run" if result.resumed else ""
    typer.echo(
        f"done: {result.n_maps} maps, {result.n_patches} patches measured, "
        f"{len(result.failures)} failed, {result.elapsed:.1f} s{resumed}"
    )
    for failure in result.failures[:_MAX_FAILURES_SHOWN]:
        typer.echo(f"  failed {failure.stage} {failure.key}: {failure.message}")
    if len(result.failures) > _MAX_FAILURES_SHOWN:
        typer.echo(f"  ... {len(result.failures) - _MAX_FAILURES_SHOWN} more in the summary")
    typer.echo(f"results  {result.results_file}")
    for figure in result.figures:
        typer.echo(f"figure   {figure}")
    typer.echo(f"summary  {result.summary_file}")
    typer.echo(f"log      {result.log_file}")
    if result.ssc_headline is not None:
        typer.echo(result.ssc_headline)


def run(
    config_file: Path | None = typer.Argument(
        None,
        help="Config file (YAML, TOML or JSON) with a 'pipeline' section; "
        "default: the built-in synthetic SSC run in runs/default.",
        show_default=False,
    ),
    resume: bool = typer.Option(
        True, "--resume/--fresh", help="Continue what an earlier run here finished, or start over."
    ),
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="serial, threads, processes or dask (default: pipeline.executor, processes).",
        show_default=False,
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Tasks at once (default: the usable CPUs).",
        show_default=False,
    ),
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        help="Run directory (default: the config's run_dir).",
        show_default=False,
    ),
) -> None:
    """Compute patch statistics, their covariances and the SSC ratio; resumable."""
    # Imported here: the pipeline (numpy, matplotlib, h5py) would slow every other command.
    from lensing_ssc.pipelines import run_patch_statistics

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
    typer.echo(
        f"lensing-ssc run: {config.pipeline.input} input, {config.pipeline.executor} executor, "
        f"run directory {config.run_dir}"
    )
    try:
        result = run_patch_statistics(config, workers=workers, resume=resume)
    except InterruptedRunError as exc:
        typer.echo(f"stopped: {exc}", err=True)
        typer.echo("finished work is saved; run the same command again to continue", err=True)
        raise typer.Exit(EXIT_STOPPED) from exc
    except KeyboardInterrupt:
        typer.echo(
            "stopped at once, without waiting for running tasks; what finished is saved: "
            "run the same command again to continue",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _report(result)
    if result.failures:
        raise typer.Exit(EXIT_FAILURES)
