"""``lensing-ssc run [CONFIG]``: the patch-statistics pipeline, start to finish or resumed.

Without a config it runs the built-in synthetic SSC comparison in ``runs/default``, logging
JSON lines to the run's log file (not the terminal) and stopping gracefully on a memory
breach; a config file starts from the same settings (:mod:`._defaults`). Ctrl-C stops it
gracefully (running tasks finish, within seconds); a second Ctrl-C stops it at once.
Rerunning continues a stopped run; ``--fresh`` starts over. ``--scheduler ADDRESS`` or
``--scheduler-file PATH`` joins a running Dask cluster (``pipeline.scheduler`` in the
config); both imply ``--executor dask``. After the run it draws the run's figures
(``pipeline.figures``, :func:`lensing_ssc.plotting.draw_run_figures`) into its ``figures/``;
without matplotlib, or on a full disk, that is one line on stderr, never a failed run. At
the end it prints where the results, figures, summary and log are; a run that ends in an
error first lists the failures its task journals hold, or, when every failed task lacked
the same optional package (HEALPix maps without healpy), says so in one line naming the
extra to install (:mod:`._extras`). When stderr is not a
terminal (a batch job's output file), the run's progress heartbeat lines go there as well
as to the log, every ``progress.heartbeat_interval`` seconds; the library itself writes them
only to the log. Exit status: 0 done,
1 done with failed maps or patches (results from the rest), 2 invalid input, 3 stopped
(rerun to continue), 4 crashed (a bug), 130 stopped at once by a second Ctrl-C (rerun to
continue).
The pipeline itself is :func:`lensing_ssc.pipelines.run_patch_statistics`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lensing_ssc.cli._defaults import load_run_config
from lensing_ssc.cli._extras import missing_extra_of_failure
from lensing_ssc.cli._interrupts import EXIT_INTERRUPTED
from lensing_ssc.core.base.exceptions import (
    CacheError,
    ConfigError,
    InterruptedRunError,
    LensingSSCError,
)
from lensing_ssc.processing.managers import RunDir
from lensing_ssc.processing.managers.cache import CacheDirectory
from lensing_ssc.processing.runner import EXECUTOR_NAMES, MAX_WORKERS, read_journal_summary

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import TextIO

    from lensing_ssc.pipelines import PipelineConfig, PipelineRun
    from lensing_ssc.processing.runner import JournalFailure

__all__ = ["run"]

EXIT_FAILURES = 1
EXIT_STOPPED = 3

_MAX_FAILURES_SHOWN = 10
_ECHOED = frozenset({"heartbeat", "event"})  # progress lines also shown on stderr


def _failure_lines(failures: Sequence[tuple[str, str, str]], more: str) -> list[str]:
    """``failed STAGE KEY: MESSAGE`` for the first failures, then how many more and where."""
    lines = [f"  failed {stage} {key}: {message}" for stage, key, message in failures]
    if len(lines) > _MAX_FAILURES_SHOWN:
        left = len(lines) - _MAX_FAILURES_SHOWN
        lines = [*lines[:_MAX_FAILURES_SHOWN], f"  ... {left} more {more}"]
    return lines


def _journal_failures(layout: RunDir) -> list[tuple[str, JournalFailure]]:
    """Every failure the run's task journals hold, with its stage (the journal's name).

    A run whose every map failed ends in an error before it has a result to report; its
    failures are in the journals all the same.
    """
    failures: list[tuple[str, JournalFailure]] = []
    for path in sorted(layout.tasks.glob("*.journal")):
        try:
            summary = read_journal_summary(path)
        except LensingSSCError:
            continue  # the error being reported matters more than an unreadable journal
        failures += [(summary.name, failure) for failure in summary.failures]
    return failures


def _listed(stage: str, failure: JournalFailure) -> tuple[str, str, str]:
    """Stage, key and error of a journal's failure; a builtin error keeps its type's name."""
    kind = failure.error_type.rpartition(".")[2]
    ours = failure.error_type.startswith("lensing_ssc.")
    return stage, failure.key, failure.message if ours else f"{kind}: {failure.message}"


def _missing_package(
    failures: Sequence[tuple[str, JournalFailure]], exc: LensingSSCError
) -> tuple[ModuleNotFoundError | None, bool]:
    """The run's error naming the extra that failed tasks lacked, and whether it is all there is.

    When every failed task lacked the same package (HEALPix maps without healpy), that
    line alone says what to do: the error leads with it, and listing it once per task
    adds nothing (``True``). When only some did, the run's own error comes first and the
    extras follow (``False``). ``None`` when no task lacked a package. A
    ``ModuleNotFoundError`` naming the extra is what the command prints as one line.
    """
    lines = [missing_extra_of_failure(f.error_type, f.message) for _, f in failures]
    extras = list(dict.fromkeys(line for line in lines if line is not None))
    if not extras:
        return None, False
    if len(extras) == 1 and None not in lines:
        stages = ", ".join(dict.fromkeys(stage for stage, _ in failures))
        reason = f"{extras[0]} (every failed task, {len(failures)} in {stages}; {exc.message})"
        return ModuleNotFoundError(reason), True
    lacking = len(lines) - lines.count(None)
    reason = f"{exc}; {lacking} task(s) failed for a missing package: {'; '.join(extras)}"
    return ModuleNotFoundError(reason), False


def _cache_line(config: PipelineConfig) -> str | None:
    """``cache  DIR  SIZE`` for the run's disk cache, or ``None`` when it has none."""
    directory = RunDir.from_config(config).cache
    if directory is None or not CacheDirectory.holds_cache(directory):
        return None
    directory = directory.absolute()  # as the results, figures and log lines show theirs
    try:
        with CacheDirectory(directory) as disk:
            size = int(disk.totals()["bytes"])
    except CacheError as exc:  # the results are written: a busy index only loses the size
        return f"cache    {directory}  (size unknown: {exc})"
    return f"cache    {directory}  {size / (1024 * 1024):.1f} MiB"


def _draw_figures(config: PipelineConfig, result: PipelineRun) -> list[Path]:
    """Draw the run's figures into its ``figures/`` when ``pipeline.figures``; their paths.

    The results are written by then, so a missing ``plot`` extra or a figure that cannot be
    written is one line on stderr and no figures, and the exit status stays the run's.
    """
    if not config.pipeline.figures:
        return []
    # Imported here: plotting imports matplotlib only when it draws.
    from lensing_ssc.plotting import draw_run_figures

    directory = RunDir(result.run_dir).figures
    try:
        # At once in forked processes where that is safe: ~1.3 s instead of ~2.5 s.
        return draw_run_figures(result.results_file, directory, parallel=True)
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            raise
        typer.echo(f"no figures: {exc}", err=True)
    except OSError as exc:
        typer.echo(f"warning: figures not written to {directory}: {exc}", err=True)
    return []


def _report(result: PipelineRun, cache: str | None = None, *, figures: Sequence[Path] = ()) -> None:
    resumed = f", {result.resumed} task(s) from the earlier run" if result.resumed else ""
    typer.echo(
        f"done: {result.n_maps} maps, {result.n_patches} patches measured, "
        f"{len(result.failures)} failed, {result.elapsed:.1f} s{resumed}"
    )
    listed = [(failure.stage, failure.key, failure.message) for failure in result.failures]
    for line in _failure_lines(listed, "in the summary"):
        typer.echo(line)
    typer.echo(f"results  {result.results_file}")
    for figure in figures:
        typer.echo(f"figure   {figure}")
    typer.echo(f"summary  {result.summary_file}")
    typer.echo(f"log      {result.log_file}")
    if cache is not None:
        typer.echo(cache)
    if result.ssc_headline is not None:
        typer.echo(result.ssc_headline)


@contextlib.contextmanager
def _running_job() -> Iterator[None]:
    """Heartbeats to stderr while a job runs; a stop ends the command with its exit status.

    A graceful stop (SIGTERM, a first Ctrl-C, a memory breach) exits 3 and a second Ctrl-C
    130, each with the line saying that the same command continues the run.
    """
    try:
        with _heartbeats_to(sys.stderr):
            yield
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


@contextlib.contextmanager
def _heartbeats_to(stream: TextIO) -> Iterator[None]:
    """Also write the run's progress heartbeat and event lines to ``stream``, timestamped.

    The progress display sends these lines to the ``lensing_ssc.progress`` logger only when
    its output is no terminal; in a terminal it draws live bars and logs none, so nothing is
    written twice. Its start and end lines stay in the log: the command prints its own.
    """
    handler = logging.StreamHandler(stream)
    handler.addFilter(lambda record: getattr(record, "progress_line", None) in _ECHOED)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    progress_log = logging.getLogger("lensing_ssc.progress")
    progress_log.addHandler(handler)
    try:
        yield
    finally:
        progress_log.removeHandler(handler)


def _scheduler_option(address: str | None, file: Path | None) -> str | None:
    """The scheduler the command line names: an address, or a scheduler file's absolute path."""
    if address is not None and file is not None:
        raise ConfigError(
            "--scheduler and --scheduler-file both name a scheduler",
            value=(address, str(file)),
            hint="give one of them",
            field="--scheduler",
        )
    if file is not None:
        return str(file.absolute())
    return address


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
        metavar="|".join(EXECUTOR_NAMES),
        help="Where tasks run (default: pipeline.executor, processes).",
        show_default=False,
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=MAX_WORKERS,
        metavar="N",
        help="Tasks at once (default: the usable CPUs).",
        show_default=False,
    ),
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        metavar="DIR",
        help="Run directory (default: the config's run_dir).",
        show_default=False,
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        metavar="ADDRESS",
        help="Join the running Dask cluster at this address (tcp://host:8786); "
        "implies --executor dask.",
        show_default=False,
    ),
    scheduler_file: Path | None = typer.Option(
        None,
        "--scheduler-file",
        metavar="PATH",
        help="Join the Dask cluster whose scheduler wrote this file "
        "(dask scheduler --scheduler-file); implies --executor dask.",
        show_default=False,
    ),
) -> None:
    """Compute patch statistics, their covariances and the SSC ratio; resumable."""
    # Imported here: the pipeline (numpy, h5py) would slow every other command.
    from lensing_ssc.pipelines import run_patch_statistics

    config = load_run_config(config_file)
    if run_dir is not None:
        config.run_dir = run_dir
    if executor is not None and executor not in EXECUTOR_NAMES:
        raise ConfigError(
            f"unknown executor {executor!r}",
            value=executor,
            hint=f"use one of {', '.join(EXECUTOR_NAMES)}",
            field="--executor",
        )
    cluster = _scheduler_option(scheduler, scheduler_file)
    named = cluster if cluster is not None else config.pipeline.scheduler
    if named is not None and executor not in (None, "dask"):
        flag = "--scheduler/--scheduler-file" if cluster is not None else "pipeline.scheduler"
        raise ConfigError(
            f"--executor {executor} was asked for, but {flag} ({named!r}) joins a Dask cluster",
            value=executor,
            hint="drop --executor (a scheduler implies dask), or drop the scheduler",
            field="--executor",
        )
    if executor is not None:
        config.pipeline.executor = executor  # type: ignore[assignment]
    if cluster is not None:
        # The command line's scheduler wins over the file's executor: dask first, then it.
        config.pipeline.executor = "dask"
        config.pipeline.scheduler = cluster
    joined = f", Dask scheduler {named}" if named is not None else ""
    typer.echo(
        f"lensing-ssc run: {config.pipeline.input} input, {config.pipeline.executor} executor"
        f"{joined}, run directory {config.run_dir}"
    )
    try:
        with _running_job():
            result = run_patch_statistics(config, workers=workers, resume=resume)
    except LensingSSCError as exc:
        if isinstance(exc, ConfigError):
            raise
        layout = RunDir.from_config(config)
        failed = _journal_failures(layout)
        missing, alone = _missing_package(failed, exc)
        if failed and not alone:
            typer.echo(f"failed, as recorded in {layout.tasks}:", err=True)
            listed = [_listed(stage, failure) for stage, failure in failed]
            for line in _failure_lines(listed, f"in {layout.tasks} (lensing-ssc tasks)"):
                typer.echo(line, err=True)
        if missing is not None:
            raise missing from exc
        raise
    _report(result, _cache_line(config), figures=_draw_figures(config, result))
    if result.failures:
        raise typer.Exit(EXIT_FAILURES)
