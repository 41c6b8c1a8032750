"""The main job: patch statistics of convergence maps, resumable, cached, parallel.

:func:`run_patch_statistics` runs its stages under a
:class:`~lensing_ssc.processing.managers.ManagerContext`:

1. ``maps`` — one runner task per map (:class:`._tasks.MapWorker`): make its patches (draw a
   seeded synthetic field and cut it, cut a HEALPix map, read a patch file) and memoize them
   in the run's cache, shared by every worker process;
2. ``patches`` — one runner task per patch (:class:`._tasks.PatchWorker`): seeded shape noise,
   smoothing and every statistic of the run's :class:`~lensing_ssc.analysis.StatisticsSettings`;
   with ``pipeline.device: gpu``, one task per batch of patches instead, run in this process
   and measured on the GPU in chunks sized to its free memory (:mod:`._batches`, journal
   ``patch-batches``), with the same numbers;
3. ``tomography`` — for HEALPix sets at two or more source redshifts, one runner task per
   (set, realisation) (:class:`._tomography.TomographyWorker`): the auto and cross power
   spectra between its redshifts, patch by patch, from the cached maps;
4. ``merge`` — per set and statistic: mean, scatter, covariance, correlation; for every
   compared pair of sets (the synthetic pair, or ``pipeline.compare`` at every source
   redshift both sets have) the variance ratios, signal-to-noise and the super-sample term
   with intervals over maps (:mod:`lensing_ssc.analysis.comparison`); per
   set with tomography the joint covariance of its spectra across redshifts, compared the
   same way; the results file and summary. Figures are not drawn here: ``lensing-ssc run``
   draws them after the run with :func:`lensing_ssc.plotting.draw_run_figures`.

Each task's result is journalled in the run directory's task journals, so a run killed at any
moment continues where it stopped when started again, and gives the same results file as an
uninterrupted run (every random number is seeded by the run's seed, the map and the patch).
A map or patch that fails after its retries is recorded and the run goes on without it.
The run directory's pipeline file records what the results depend on (:mod:`._run_record`);
resuming a run directory with other inputs or settings is refused, naming what changed,
rather than mixed. The run directory is
made absolute before anything goes to workers, so workers on other nodes of a Dask cluster
(``pipeline.scheduler``, ``DASK_SCHEDULER_ADDRESS``) share the driver's cache and journals
on a shared filesystem; the results record what ran (executor, scheduler, workers). Where
each file goes is :class:`~lensing_ssc.processing.managers.RunDir`'s; how many workers run,
and where, the task runner's (asked through
:meth:`~lensing_ssc.processing.managers.ManagerContext.runner_for`).
The command line is ``lensing-ssc run`` (:mod:`lensing_ssc.cli._run`); ``docs/pipeline.md``
is the guide.

This module runs the stages in order; their parts are elsewhere: the run's maps and
comparisons are planned in :mod:`._inputs`; the patch geometries are checked before the run
directory is claimed and after the maps stage by :mod:`._patch_geometry`; the paths,
executor and device a run is set up with are resolved by :mod:`._run_setup`; the merge
stage reads the journals back into the merged numbers in :mod:`._merge_stage`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lensing_ssc.analysis import ArrayDevice
from lensing_ssc.analysis.devices import CPU_DEVICE
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.core.io import atomic_write
from lensing_ssc.pipelines._batches import BatchWorker, per_patch, plan_batches
from lensing_ssc.pipelines._config import PipelineConfig
from lensing_ssc.pipelines._inputs import plan_comparisons, plan_maps, prepare_maps
from lensing_ssc.pipelines._memory_plan import guard_memory, memory_limit_mb
from lensing_ssc.pipelines._merge_stage import describe_input, merge_stages, writing_output
from lensing_ssc.pipelines._merged_results import FailureRecord, MergedResults
from lensing_ssc.pipelines._patch_geometry import (
    check_geometries,
    drop_odd_geometries,
    planned_geometries,
)
from lensing_ssc.pipelines._results import results_format, results_path, write_results
from lensing_ssc.pipelines._run_record import claim_run_dir, run_record
from lensing_ssc.pipelines._run_setup import absolute_paths, device_of, executor_of
from lensing_ssc.pipelines._summary import SUMMARY_NAME, ssc_headline, summary_text
from lensing_ssc.pipelines._tasks import MapStore, MapSummary, MapWorker, PatchTask, PatchWorker
from lensing_ssc.pipelines._tomography import TomographyPlan, TomographyWorker, plan_tomography
from lensing_ssc.processing.managers import ManagerContext, RunDir
from lensing_ssc.processing.managers.log import log_context
from lensing_ssc.processing.managers.runlock import RunLock
from lensing_ssc.processing.runner import MapResult

__all__ = ["PipelineRun", "run_patch_statistics"]

_log = logging.getLogger("lensing_ssc.pipelines")


@dataclass(frozen=True, eq=False)
class PipelineRun:
    """What a finished run produced, and where.

    Attributes:
        run_dir: The run directory.
        results_file: The HDF5 or NPZ results file.
        summary_file: The text summary.
        log_file: The run's log.
        n_maps: Maps made (failed ones excluded).
        n_patches: Patches measured (failed ones excluded).
        failures: Maps and patches that failed after their retries.
        maps_from_cache: Maps whose patches were already in the cache.
        resumed: Tasks whose results came from an earlier, interrupted run.
        elapsed: Seconds the run took.
        results: The merged numbers (what the results file holds).
        executor: The executor that ran the tasks (``"dask"`` for a joined cluster; a
            user's executor as ``module.Class``: ``"mpi4py.futures.MPIPoolExecutor"``).
        scheduler: The Dask scheduler's address when a cluster was joined, else ``None``.
        workers: Workers the executor had (a joined cluster's, as its scheduler said; a
            user's executor's, as it said).
        device: Where the patch statistics ran: ``"cpu"`` or ``"gpu"``.
    """

    run_dir: Path
    results_file: Path
    summary_file: Path
    log_file: Path
    n_maps: int
    n_patches: int
    failures: tuple[FailureRecord, ...]
    maps_from_cache: int
    resumed: int
    elapsed: float
    results: MergedResults
    executor: str = "serial"
    scheduler: str | None = None
    workers: int = 1
    device: str = "cpu"

    @property
    def ssc_headline(self) -> str | None:
        """One line with the SSC variance ratio of the power spectrum, when there is one."""
        return ssc_headline(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (without the numbers; read those from ``results_file``)."""
        return {
            "run_dir": str(self.run_dir),
            "results_file": str(self.results_file),
            "summary_file": str(self.summary_file),
            "log_file": str(self.log_file),
            "n_maps": self.n_maps,
            "n_patches": self.n_patches,
            "failures": [f.to_dict() for f in self.failures],
            "maps_from_cache": self.maps_from_cache,
            "resumed": self.resumed,
            "elapsed": self.elapsed,
            "executor": self.executor,
            "scheduler": self.scheduler,
            "workers": self.workers,
            "device": self.device,
        }


def _failures(stage: str, result: MapResult[Any]) -> list[FailureRecord]:
    records = []
    for failure in result.failures:
        record = FailureRecord(stage, failure.key, failure.error_type, failure.message)
        map_id, _, patch = failure.key.partition("/patch-")
        with log_context(map=map_id, step=stage, **({"patch": int(patch)} if patch else {})):
            _log.error(
                "%s %s failed after %d attempt(s): %s",
                stage,
                failure.key,
                failure.attempts,
                failure.message,
            )
        records.append(record)
    return records


def run_patch_statistics(
    config: PipelineConfig | ProcessingConfig | None = None,
    *,
    executor: Any = None,
    workers: int | None = None,
    resume: bool = True,
    device: str | ArrayDevice | None = None,
) -> PipelineRun:
    """Run the patch-statistics pipeline of ``config`` (its ``pipeline`` section) to the end.

    Args:
        config: The run's configuration (a :class:`PipelineConfig`; a plain
            ``ProcessingConfig`` runs the default ``pipeline`` section); default: the built-in
            synthetic run in ``runs/default``.
        executor: ``"serial"``, ``"threads"``, ``"processes"`` or ``"dask"``; default
            ``config.pipeline.executor``. ``config.pipeline.scheduler`` (or, with
            ``"dask"``, ``DASK_SCHEDULER_ADDRESS``) joins a running Dask cluster. Or an
            executor object: a ``concurrent.futures.Executor`` (used, never shut down), a
            zero-argument factory of one (``mpi4py.futures.MPIPoolExecutor``: started for
            the run and shut down after it), or a ``distributed.Client``.
        workers: Tasks at once; default ``config.pipeline.workers``, else the usable CPUs
            (an executor object: the workers it says it has, as ``MPIPoolExecutor`` does).
        resume: Continue what an earlier run in the same run directory finished (default);
            ``False`` starts over.
        device: Where the patch statistics run: ``"cpu"``, ``"gpu"``, ``"auto"``, or an
            :class:`~lensing_ssc.analysis.ArrayDevice`; default ``config.pipeline.device``.
            On a GPU, patches go to it in batches sized to its free memory, in this process.

    Returns:
        The :class:`PipelineRun`: files written, counts, failures, merged numbers.

    Raises:
        InterruptedRunError: SIGTERM, SIGINT, SIGUSR1 or a memory breach stopped the run;
            what finished is saved and rerunning continues.
        ConfigError: invalid settings, a missing input file, a run directory holding a
            run with other settings (pass ``resume=False``), an executor other than Dask
            with ``pipeline.scheduler``, a Dask scheduler that does not answer, or device
            ``"gpu"`` without CuPy (the ``gpu-cuda12`` or ``gpu-cuda13`` extra) or a GPU.
        ResourceError: one map per worker would not fit under the memory limit (a joined
            Dask cluster's: under each worker's own ``memory_limit``).
        AnalysisError: no patch set could be summarised (every map failed, say).

    Example:
        >>> run = run_patch_statistics(PipelineConfig(run_dir="runs/demo"))  # doctest: +SKIP
        >>> print(run.results_file, run.ssc_headline)  # doctest: +SKIP
    """
    started = time.perf_counter()
    config = PipelineConfig() if config is None else PipelineConfig.from_config(config)
    config = absolute_paths(config)  # before any of it is shipped to workers
    section = config.pipeline
    settings = section.statistics_settings()
    executor_name = executor_of(section, executor)
    on = device_of(section, device)
    cluster: dict[str, Any] = {}  # runner options: the Dask cluster to join, its grace
    if section.scheduler is not None:
        cluster["scheduler_address"] = section.scheduler
    cluster["no_workers_timeout"] = section.no_workers_timeout
    max_workers = workers if workers is not None else section.workers
    maps = plan_maps(section, memory_limit_mb=memory_limit_mb(config))
    comparisons = plan_comparisons(section, maps)
    planned = planned_geometries(maps)
    values = check_geometries(planned, settings)  # before the run directory is claimed
    layout = RunDir.from_config(config)
    run_dir = layout.path
    fmt = results_format(section.results_format)
    results_file = results_path(layout.results, fmt)
    # Held from the claim until the context holds it too: a run refused because another
    # runs in the directory changes none of its files, pipeline.json included.
    with RunLock(layout.lock_file):
        claim_run_dir(layout, run_record(section, maps), resume=resume)
        context = ManagerContext(
            config=config,
            # No count of its own: the progress display shows the running stage's items.
            description="patch statistics",
            executor=executor_name,
            max_workers=max_workers,
            retries=section.retries,
        )
    with context as ctx:
        runner = ctx.runner_for(**cluster)  # the one both stages run on
        ran_on, scheduler, n_workers = (
            runner.executor_name,
            runner.scheduler_address,
            runner.worker_count(),
        )
        guard_memory(ctx, maps, runner, values)
        ctx.check_resources()
        store = MapStore(config, ctx.cache)
        _log.info(
            "run %s: %d maps, %s executor, %d worker(s)%s",
            run_dir,
            len(maps),
            ran_on,
            n_workers,
            "" if scheduler is None else f", Dask scheduler {scheduler}",
        )
        if on is not CPU_DEVICE:
            # Once logging is set up: a GPU's name, or why 'auto' measures on the CPU
            # (select_device said so before the run's log existed).
            _log.info("patch statistics on %s", on.description)
        if runner.forks_workers:
            prepare_maps(maps)  # once here, not once in every worker
        elif not runner.runs_in_this_process:
            store.share_plans(maps)  # once here, into the run's cache the workers read
        made = ctx.map(
            MapWorker(store), maps, name="maps", key=lambda t: t.map_id, resume=resume, **cluster
        )
        ctx.check_resources()  # a stop requested during the maps stage ends the run here
        failures = _failures("maps", made)
        summaries: list[MapSummary | None] = list(made.results)
        failures += drop_odd_geometries(maps, summaries)
        made_geometries = {(s.patch_pixels, s.pixel_size_arcmin) for s in summaries if s}
        check_geometries(made_geometries - planned, settings)
        patch_tasks = [
            PatchTask(task, j)
            for task, summary in zip(maps, summaries, strict=True)
            if summary is not None
            for j in range(summary.n_patches)
        ]
        if on.is_cpu:
            measured = ctx.map(
                PatchWorker(store, settings, section.seed),
                patch_tasks,
                name="patches",
                key=lambda t: t.key,
                resume=resume,
                **cluster,
            )
            patches_resumed = measured.skipped
        else:
            # One device: its batches run in this process, one after the other.
            geometry = {s.map_id: (s.patch_pixels, s.pixel_size_arcmin) for s in summaries if s}
            batches = plan_batches(patch_tasks, geometry)
            batch_worker = BatchWorker(store, settings, section.seed, on)
            by_batch = ctx.map(
                batch_worker,
                batches,
                name="patch-batches",
                key=lambda b: b.key,
                resume=resume,
                executor="serial",
            )
            measured = per_patch(batches, by_batch, batch_worker.computed)
            patches_resumed = by_batch.skipped
        failures += _failures("patches", measured)
        tomography = TomographyPlan((), {}, {})
        if section.tomography and "cl" in settings.statistics:
            tomography = plan_tomography(maps, summaries)
        spectra = None
        if tomography.tasks:
            # One task per (set, realisation): its patches at every source redshift, from
            # the cache the maps stage filled.
            spectra = ctx.map(
                TomographyWorker(store, settings, section.seed),
                tomography.tasks,
                name="tomography",
                key=lambda t: t.key,
                resume=resume,
                **cluster,
            )
            failures += _failures("tomography", spectra)
        # Every task is done: what is left (merge, results file, summary) finishes the run
        # even if a stop comes now. Stopping here would only make the rerun do it again.
        # The workers go first: a Dask cluster left up would keep this process's event loop
        # busy with its heartbeats, taking the interpreter from the merge (measured on 2
        # cores with 16 workers: the merge took 0.1 s longer beside it).
        runner.close()
        with log_context(step="merge"):
            recorded = config.to_dict()  # with what ran, not what was configured
            recorded["pipeline"].update(
                executor=ran_on, scheduler=scheduler, workers=n_workers, device=on.name
            )
            merged = merge_stages(
                section,
                recorded,
                maps,
                summaries,
                patch_tasks,
                measured,
                failures,
                comparisons,
                tomography,
                spectra,
            )
            with writing_output(results_file):
                write_results(merged, results_file, fmt)
            files = [("results", results_file), ("log", layout.log_file)]
            summary_file = layout.results / SUMMARY_NAME
            elapsed = time.perf_counter() - started
            text = summary_text(
                merged,
                run_dir=run_dir,
                input_description=describe_input(section, maps),
                files=files,
                elapsed=elapsed,
            )
            with writing_output(summary_file):
                atomic_write(summary_file, text.encode())
            _log.info("results written to %s", results_file)
        if ctx.stop_requested:
            _log.warning("a stop was requested after the last task; the run is complete anyway")
    return PipelineRun(
        run_dir=run_dir,
        results_file=results_file,
        summary_file=summary_file,
        log_file=layout.log_file,
        n_maps=sum(s is not None for s in summaries),
        n_patches=measured.completed + measured.skipped,  # not reading every result again
        failures=tuple(merged.failures),
        maps_from_cache=sum(s is not None and s.from_cache for s in summaries),
        resumed=made.skipped + patches_resumed + (spectra.skipped if spectra else 0),
        elapsed=time.perf_counter() - started,
        results=merged,
        executor=ran_on,
        scheduler=scheduler,
        workers=n_workers,
        device=on.name,
    )
