"""Pipelines built on the managers and the task runner: the patch-statistics job.

:func:`run_patch_statistics` is what ``lensing-ssc run`` runs: convergence maps (built-in
synthetic SSC fields, HEALPix maps or patch files) cut into patches, every statistic of
every patch as a resumable runner task, and their means, covariances and SSC covariance
ratio written to one results file with a text summary. :func:`read_results`
reads that file back as a :class:`ResultsFile` (a mapping of dataset paths with typed
views: sets, redshifts, statistics with bins and units, comparisons); :class:`PipelineConfig`
is a run's configuration with its ``pipeline`` section. Modules: :mod:`.patch_statistics`
(orchestration), ``_config`` (the section), ``_inputs`` (where patches come from),
``_tasks`` (the runner tasks), ``_results`` (merging and the results file),
``_results_file`` (reading it), ``_units`` and ``_summary``. The figures of a run are
:mod:`lensing_ssc.plotting`'s (``draw_run_figures``), drawn by ``lensing-ssc run`` after
the run. The guide is ``docs/pipeline.md``; the science is :mod:`lensing_ssc.analysis`.
"""

from lensing_ssc.pipelines._config import PipelineConfig, PipelineSection
from lensing_ssc.pipelines._results_file import (
    Binning,
    ComparedStatistic,
    ResultsComparison,
    ResultsFile,
    StatisticSummary,
    parse_statistic_key,
    read_results,
)
from lensing_ssc.pipelines.patch_statistics import PipelineRun, run_patch_statistics

__all__ = [
    "Binning",
    "ComparedStatistic",
    "PipelineConfig",
    "PipelineRun",
    "PipelineSection",
    "ResultsComparison",
    "ResultsFile",
    "StatisticSummary",
    "parse_statistic_key",
    "read_results",
    "run_patch_statistics",
]
