"""The front half of an SSC study: mass shells, then κ maps, resumable and parallel.

:func:`run_lightcone` runs the ``lightcone`` section of a config in two stages under a
:class:`~lensing_ssc.processing.managers.ManagerContext`:

1. ``shells`` — one runner task per realisation and chunk of ``shells.per_task`` shells
   (:class:`._lightcone_tasks.ShellWorker`): particles of a FastPM light cone binned into
   HEALPix count maps, or the demo's lognormal δ shells. Skipped for ``source: maps``.
2. ``kappa`` — one task per realisation and source (:class:`._lightcone_tasks.KappaWorker`):
   the Born κ map from the shells the source sees, read one at a time.

Before either stage starts, the memory of the plan is checked against the job's limit (the
context's :class:`~lensing_ssc.processing.managers.resource.ResourceManager`): the peak of
one task of each stage (:func:`._lightcone_tasks.shell_task_bytes`,
:func:`~._lightcone_tasks.kappa_task_bytes`) times the tasks that run at once, plus, for
worker processes, the copy of this process each starts as. A plan that cannot fit is
refused with a :class:`~lensing_ssc.core.base.exceptions.ResourceError` naming the setting
to change, before any file is written.

Every task is journalled (``tasks/shells.journal``, ``tasks/kappa.journal``): a stage killed
at any moment, rerun, redoes only the tasks that had not finished, and a finished shell's
file is not touched again. ``lightcone.json`` in the run directory records what the shells
and what the κ maps depend on, one record each (:mod:`._lightcone_record`): resuming with
other shell settings is refused rather than mixed, naming each change; other κ settings
alone are refused too, unless ``fresh_kappa`` makes only the κ maps again from the kept
shells. A κ map taken from the journal must carry its settings' digest in its header, so
a map of other settings is never returned as this run's. The κ maps are named
``kappa_zs{zs}_s{seed}.fits`` (and ``kappa_nz{name}_s{seed}.fits``), which a
``pipeline.healpix`` set reads with ``pattern: kappa_zs{zs}_s{seed}.fits``; the command line
is ``lensing-ssc shells`` / ``lensing-ssc kappa`` (:mod:`lensing_ssc.cli._lightcone`); the
guide is ``docs/kappa.md``; the science is :mod:`lensing_ssc.analysis.born` and
:mod:`lensing_ssc.analysis.lightcone`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lensing_ssc.analysis.healpix_files import read_healpix_header
from lensing_ssc.core.base.exceptions import AnalysisError, ResourceError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.pipelines._config import PipelineConfig
from lensing_ssc.pipelines._lightcone_config import LightconeSection
from lensing_ssc.pipelines._lightcone_plan import LightconePlan, plan_lightcone
from lensing_ssc.pipelines._lightcone_record import (
    LIGHTCONE_FILE,
    check_kappa_maps,
    claim_lightcone,
)
from lensing_ssc.pipelines._lightcone_tasks import (
    KappaSummary,
    KappaWorker,
    ShellSummary,
    ShellWorker,
    kappa_task_bytes,
    shell_task_bytes,
)
from lensing_ssc.pipelines._memory_plan import place_workers
from lensing_ssc.pipelines._merged_results import FailureRecord
from lensing_ssc.pipelines._run_setup import absolute_paths
from lensing_ssc.processing.managers import ManagerContext, RunDir
from lensing_ssc.processing.managers.runlock import RunLock
from lensing_ssc.processing.runner import MapResult, TaskRunner

__all__ = ["LIGHTCONE_FILE", "LightconeRun", "Stage", "run_lightcone"]

_log = logging.getLogger("lensing_ssc.pipelines")

Stage = Literal["shells", "kappa"]

_MIB = 2**20


@dataclass(frozen=True, eq=False)
class LightconeRun:
    """What :func:`run_lightcone` made, and where.

    Attributes:
        run_dir: The run directory.
        shell_files: The shells of every realisation (written here, or found on disk).
        kappa_files: The κ maps written, in task order.
        failures: Tasks that failed after their retries.
        resumed: Tasks whose results came from an earlier, interrupted run.
        planned_mib: The memory the plan was checked for (``None`` with no limit to check).
        elapsed: Seconds the run took.
        executor, workers: What ran the tasks.
        notes: What the run found in the run directory and did about it: the κ settings
            that changed since the earlier run (their maps made again from the kept
            shells), an earlier version's record taken.
    """

    run_dir: Path
    shell_files: tuple[str, ...]
    kappa_files: tuple[str, ...]
    failures: tuple[FailureRecord, ...]
    resumed: int
    planned_mib: float | None
    elapsed: float
    executor: str
    workers: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "run_dir": str(self.run_dir),
            "shell_files": list(self.shell_files),
            "kappa_files": list(self.kappa_files),
            "failures": [f.to_dict() for f in self.failures],
            "resumed": self.resumed,
            "planned_mib": self.planned_mib,
            "elapsed": self.elapsed,
            "executor": self.executor,
            "workers": self.workers,
            "notes": list(self.notes),
        }


def _input_nside(section: LightconeSection, plan: LightconePlan) -> int:
    if section.shells.source != "maps":
        return section.shells.nside
    first = next(iter(plan.shell_sets.values())).files[0]
    return int(read_healpix_header(first).get("NSIDE", section.kappa.nside))


_HINTS = {
    "shells": "lower lightcone.shells.nside or lightcone.shells.per_task (or "
    "shells.particles.chunk_size), use fewer workers (--workers), or raise "
    "resources.memory_limit_mb",
    "kappa": "lower lightcone.kappa.nside, store the shells at a lower nside, use fewer "
    "workers (--workers), or raise resources.memory_limit_mb",
}


def plan_memory(
    ctx: ManagerContext, runner: TaskRunner, section: LightconeSection, plan: LightconePlan
) -> float | None:
    """Refuse a plan whose stages cannot fit under the job's memory limit; its peak in MiB.

    Each stage runs ``min(workers, tasks)`` tasks at once, counting the workers on this host
    (:func:`._memory_plan.place_workers`); a worker process also starts as a copy of this
    process (its resident memory now), an MPI rank as a fresh interpreter. Returns ``None``
    when there is no limit.

    Raises:
        ResourceError: a stage would need more than the limit, naming what to change.
    """
    limit = ctx.resource.memory_limit
    if limit is None:
        return None
    used = (ctx.resource.get_current_usage().memory_mb or 0.0) * _MIB
    placed = place_workers(runner)
    copies = 0.0 if runner.runs_in_this_process else placed.start_bytes(used)
    stages = [
        ("shells", shell_task_bytes(section), len(plan.shell_tasks)),
        ("kappa", kappa_task_bytes(section, _input_nside(section, plan)), len(plan.kappa_tasks)),
    ]
    peak = used
    for stage, per_task, n_tasks in stages:
        if n_tasks == 0:
            continue
        at_once = min(placed.here, n_tasks)
        need = used + at_once * (per_task + copies)
        peak = max(peak, need)
        if need > limit.limit_mb * _MIB:
            start = "at start" if placed.fresh else "as a copy of this process"
            copy = f" plus {copies / _MIB:.0f} MiB {start}" if copies else ""
            raise ResourceError(
                f"the {stage} stage needs about {need / _MIB:.0f} MiB: {at_once} task(s) at "
                f"once of {per_task / _MIB:.0f} MiB each{copy}, and {used / _MIB:.0f} MiB in "
                f"this process; more than the memory limit of {limit.limit_mb:.0f} MiB "
                f"({limit.source})",
                value=limit.limit_mb,
                hint=_HINTS[stage],
            )
    return peak / _MIB


def _failures(stage: str, result: MapResult[Any]) -> list[FailureRecord]:
    records = []
    for failure in result.failures:
        _log.error("%s %s failed: %s", stage, failure.key, failure.message)
        records.append(FailureRecord(stage, failure.key, failure.error_type, failure.message))
    return records


def _warm_compiled_loop() -> None:
    """Compile the binning loop here, once, before worker processes are forked from us."""
    import numpy as np

    from lensing_ssc.analysis.lightcone import ShellCounter
    from lensing_ssc.analysis.shells import Background, ShellTable

    table = ShellTable.from_distance_edges([1.0, 2.0], Background())
    for dtype in (np.float32, np.float64):
        ShellCounter(table, [0], 1).add(np.ones((1, 3), dtype=dtype))


def run_lightcone(
    config: PipelineConfig | ProcessingConfig | None = None,
    *,
    executor: str | None = None,
    workers: int | None = None,
    resume: bool = True,
    fresh_kappa: bool = False,
    stages: Sequence[Stage] = ("shells", "kappa"),
) -> LightconeRun:
    """Make the shells and κ maps of ``config.lightcone``; resumable.

    Args:
        config: The run's configuration (its ``lightcone`` section; the ``pipeline``
            section's executor, workers and retries).
        executor: ``"serial"``, ``"threads"``, ``"processes"`` or ``"dask"``; default
            ``config.pipeline.executor``.
        workers: Tasks at once; default ``config.pipeline.workers``, else the usable CPUs.
        resume: Continue what an earlier run in the same run directory finished (default);
            ``False`` makes everything again.
        fresh_kappa: Keep the shells, make the κ maps again (after a change of the
            ``kappa`` settings, which resuming otherwise refuses).
        stages: ``("shells",)`` stops after the shells; the default runs both.

    Raises:
        InterruptedRunError: a signal or a memory breach stopped the run; rerun to continue.
        ConfigError: invalid settings, missing inputs, a run directory of other settings
            (naming each change), a κ map in it made under other κ settings.
        ResourceError: the plan cannot fit under the memory limit.
        AnalysisError: shell ranges with gaps or overlaps, or shells failed, so no κ.

    Example:
        >>> config = PipelineConfig.from_file("examples/shells_demo.yaml")  # doctest: +SKIP
        >>> run = run_lightcone(config)  # doctest: +SKIP
        >>> run.kappa_files[0]  # doctest: +SKIP
        '.../runs/shells_demo/kappa/kappa_zs0.5_s0.fits'
    """
    started = time.perf_counter()
    config = absolute_paths(
        PipelineConfig() if config is None else PipelineConfig.from_config(config)
    )
    section = config.lightcone
    layout = RunDir.from_config(config)
    run_dir = layout.path
    plan = plan_lightcone(section, run_dir)
    # Held from the claim until the context holds it too: a run refused because another
    # runs in the directory changes none of its files, lightcone.json included.
    with RunLock(layout.lock_file):
        claim = claim_lightcone(
            layout,
            section,
            plan,
            resume=resume,
            fresh_kappa=fresh_kappa,
            kappa="kappa" in stages,
        )
        context = ManagerContext(
            config=config,
            description="light cone",
            executor=executor or config.pipeline.executor,
            max_workers=workers if workers is not None else config.pipeline.workers,
            retries=config.pipeline.retries,
        )
    with context as ctx:
        for note in claim.notes:
            _log.info("%s", note)
        runner = ctx.runner_for()
        planned = plan_memory(ctx, runner, section, plan)
        ctx.check_resources()
        failures: list[FailureRecord] = []
        resumed = 0
        if plan.shell_tasks and "shells" in stages:
            if runner.forks_workers and section.shells.source == "particles":
                _warm_compiled_loop()
            made = ctx.map(
                ShellWorker(section, plan.shell_sets, plan.shell_dir),
                plan.shell_tasks,
                name="shells",
                key=lambda t: t.key,
                resume=resume,
            )
            resumed += made.skipped
            failures += _failures("shells", made)
            ctx.check_resources()
            _log_shells(made.results)
            if failures:
                raise AnalysisError(
                    f"{len(failures)} shell task(s) failed, so no κ map is made: "
                    f"{failures[0].key}: {failures[0].message}",
                    value=[f.key for f in failures],
                    hint="fix the cause and rerun: finished shells are kept",
                )
        kappa_files: list[str] = []
        if "kappa" in stages:
            maps = ctx.map(
                KappaWorker(section, plan.shell_sets, plan.kappa_dir, claim.kappa_fingerprint),
                plan.kappa_tasks,
                name="kappa",
                key=lambda t: t.key,
                resume=resume,
            )
            resumed += maps.skipped
            failures += _failures("kappa", maps)
            summaries: list[KappaSummary | None] = list(maps.results)
            kappa_files = [s.file for s in summaries if s is not None]
            if maps.skipped:  # the journal's word is not enough: the file must say so too
                check_kappa_maps(run_dir, kappa_files, claim.kappa_fingerprint)
        executor_kind, n_workers = runner.executor_kind, runner.worker_count()
    return LightconeRun(
        run_dir=run_dir,
        shell_files=tuple(f for s in plan.shell_sets.values() for f in s.files),
        kappa_files=tuple(kappa_files),
        failures=tuple(failures),
        resumed=resumed,
        planned_mib=planned,
        elapsed=time.perf_counter() - started,
        executor=executor_kind,
        workers=n_workers,
        notes=claim.notes,
    )


def _log_shells(results: Sequence[ShellSummary | None]) -> None:
    for summary in results:
        if summary is not None and summary.particles:
            _log.info(
                "shells %s: %s particles",
                ", ".join(Path(f).name for f in summary.files),
                ", ".join(str(n) for n in summary.particles),
            )
