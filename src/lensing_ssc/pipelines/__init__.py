"""Pipelines built on the managers and the task runner: the patch-statistics job.

:func:`run_patch_statistics` is what ``lensing-ssc run`` runs: convergence maps (built-in
synthetic SSC fields, HEALPix maps or patch files) cut into patches, every statistic of
every patch as a resumable runner task, and their means, covariances and SSC covariance
ratio written to one results file with a text summary. :func:`read_results`
reads that file back as a :class:`ResultsFile` (a mapping of dataset paths with typed
views: sets, redshifts, statistics with bins and units, comparisons, the tomography across
source redshifts; ``to_xarray()``); :class:`PipelineConfig`
is a run's configuration with its ``pipeline`` section. Modules: :mod:`.patch_statistics`
(orchestration) with ``_run_setup`` (paths, executor, device), ``_patch_geometry`` (the
geometry checks) and ``_merge_stage`` (the merge stage), ``_config`` (the section),
``_inputs`` (which maps a run has) with ``_map_recipes`` and ``_healpix_maps`` (what each
map is made from) and ``_input_identity`` (what identifies an input), ``_tasks`` (the
runner tasks), ``_tomography`` (cross spectra between source redshifts:
the plan and the stage's task), ``_tomography_results`` (their joint data vectors and
comparisons), ``_merged_results`` (merging), ``_results`` (the results file),
``_memory_plan`` (the memory guard), ``_results_reading`` (reading the file back),
``_results_file`` (what its paths mean) with ``_results_views`` (its typed views),
``_xarray`` (it as an xarray Dataset), ``_units`` and ``_summary``. The figures of a run are
:mod:`lensing_ssc.plotting`'s (``draw_run_figures``), drawn by ``lensing-ssc run`` after
the run. The guide is ``docs/pipeline.md``; the science is :mod:`lensing_ssc.analysis`.
:func:`run_lightcone` (:mod:`.lightcone`) is the front half, before the patch statistics:
mass shells from light-cone particles and κ maps from shells (Born approximation), per the
config's ``lightcone`` section (``_lightcone_config``, ``_lightcone_plan``,
``_lightcone_tasks``, and ``_lightcone_record`` for what each stage was made with); its
guide is ``docs/kappa.md``.
"""

from lensing_ssc.pipelines._config import PipelineConfig, PipelineSection
from lensing_ssc.pipelines._results_file import ResultsFile
from lensing_ssc.pipelines._results_reading import read_results
from lensing_ssc.pipelines._results_views import (
    Binning,
    ComparedStatistic,
    ResultsComparison,
    StatisticSummary,
    TomographicSpectra,
    parse_statistic_key,
)
from lensing_ssc.pipelines.lightcone import LightconeRun, run_lightcone
from lensing_ssc.pipelines.patch_statistics import PipelineRun, run_patch_statistics

__all__ = [
    "Binning",
    "ComparedStatistic",
    "LightconeRun",
    "PipelineConfig",
    "PipelineRun",
    "PipelineSection",
    "ResultsComparison",
    "ResultsFile",
    "StatisticSummary",
    "TomographicSpectra",
    "parse_statistic_key",
    "read_results",
    "run_lightcone",
    "run_patch_statistics",
]
