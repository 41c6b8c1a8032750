"""Configuration of a run: :class:`ProcessingConfig` and its typed sections.

Load with :meth:`ProcessingConfig.from_file` (YAML, TOML or JSON) or build in code; the
environment overrides fields (``LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB=4000``). Every
invalid input raises :class:`~lensing_ssc.core.base.exceptions.ConfigError`. Managers resolve
their arguments over a section with :func:`resolve_settings` (:data:`NOT_GIVEN` marks an
argument left to the config).

Layers above extend the model rather than this package knowing them: a pipeline subclasses
:class:`ProcessingConfig` with a section built on :class:`Section` and the number types
(:data:`Integer`, :data:`Real`, ... which refuse ``True`` for ``1``).
"""

from lensing_ssc.core.config._model import ProcessingConfig
from lensing_ssc.core.config._numbers import Integer, IntegerOrNone, Real, RealOrNone
from lensing_ssc.core.config._resolve import (
    NOT_GIVEN,
    NotGiven,
    ReadOnlySettings,
    resolve_settings,
)
from lensing_ssc.core.config._sections import (
    CacheSection,
    CheckpointSection,
    LoggingSection,
    ProgressSection,
    ResourcesSection,
    Section,
)

# Plain sorted order (tests/test_public_api.py), not isort's constants-first order.
__all__ = [  # noqa: RUF022
    "CacheSection",
    "CheckpointSection",
    "Integer",
    "IntegerOrNone",
    "LoggingSection",
    "NOT_GIVEN",
    "NotGiven",
    "ProcessingConfig",
    "ProgressSection",
    "ReadOnlySettings",
    "Real",
    "RealOrNone",
    "ResourcesSection",
    "Section",
    "resolve_settings",
]
