"""Configuration of a run: :class:`ProcessingConfig` and its typed sections.

Load with :meth:`ProcessingConfig.from_file` (YAML, TOML or JSON) or build in code; the
environment overrides fields (``LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB=4000``). Every
invalid input raises :class:`~lensing_ssc.core.base.exceptions.ConfigError`.
"""

from lensing_ssc.core.config._model import ProcessingConfig
from lensing_ssc.core.config._pipeline import PipelineSection
from lensing_ssc.core.config._sections import (
    CacheSection,
    CheckpointSection,
    LoggingSection,
    ProgressSection,
    ResourcesSection,
)

__all__ = [
    "CacheSection",
    "CheckpointSection",
    "LoggingSection",
    "PipelineSection",
    "ProcessingConfig",
    "ProgressSection",
    "ResourcesSection",
]
