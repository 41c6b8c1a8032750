"""The results file the plotting tests draw: one tiny synthetic run, shared by the modules."""

from __future__ import annotations

import pytest

from lensing_ssc.core.config._loading import merge
from lensing_ssc.pipelines import PipelineConfig, ResultsFile, read_results

TINY = {
    "executor": "serial",
    "retries": 0,
    "figures": False,
    "synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2},
}


@pytest.fixture(scope="session")
def results(tmp_path_factory: pytest.TempPathFactory) -> ResultsFile:
    """The results file of one tiny synthetic run, read back."""
    from lensing_ssc.pipelines import run_patch_statistics

    config = PipelineConfig(
        run_dir=tmp_path_factory.mktemp("plot") / "run",
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
        pipeline=merge(TINY, {}),
    )
    return read_results(run_patch_statistics(config).results_file)
