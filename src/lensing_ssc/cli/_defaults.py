"""The settings ``lensing-ssc run`` starts from, with or without a config file.

A batch job's run directory keeps one log format, and its terminal stays for the
command's own lines: the run logs JSON lines to its log file (not the terminal) and stops
gracefully on a memory breach. A config file overrides any of these; ``lensing-ssc config
show`` prints the result, so ``config show > config.yaml`` runs like the built-in default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lensing_ssc.pipelines import PipelineConfig

__all__ = ["RUN_DEFAULTS", "load_run_config"]

RUN_DEFAULTS: dict[str, Any] = {
    "logging": {"format": "json", "console": False},
    "resources": {"graceful_stop": True},
}
"""What the command line changes from ``PipelineConfig()``'s defaults."""


def load_run_config(path: Path | None) -> PipelineConfig:
    """``RUN_DEFAULTS``, then the file's settings, then ``LENSING_SSC_*`` variables."""
    # Imported here: the pipeline (numpy, the analysis) would slow every other command.
    from lensing_ssc.pipelines import PipelineConfig

    if path is None:
        return PipelineConfig.from_dict(RUN_DEFAULTS, source="the built-in default run", env=True)
    return PipelineConfig.from_file(path, env=True, defaults=RUN_DEFAULTS)
