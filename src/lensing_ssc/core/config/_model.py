"""``ProcessingConfig``: the whole configuration of a run, validated on construction.

The sections are in :mod:`._sections`, file and environment handling in :mod:`._loading`,
error translation in :mod:`._errors`. What a pipeline computes is not here: a pipeline
extends this model with its own section (``lensing_ssc.pipelines.PipelineConfig``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import Self

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config._errors import translate_validation_error
from lensing_ssc.core.config._loading import (
    SUFFIXES,
    check_document,
    dump_text,
    env_overrides,
    merge,
    read_file,
)
from lensing_ssc.core.config._sections import (
    CacheSection,
    CheckpointSection,
    LoggingSection,
    ProgressSection,
    ResourcesSection,
    RunPath,
)

__all__ = ["ProcessingConfig"]

# Where the data being validated came from, for error messages: (file, {field: env var}).
# Set by ``from_dict`` around construction, read by ``__init__`` when validation fails.
_ORIGIN: ContextVar[tuple[str | None, Mapping[str, str]]] = ContextVar(
    "lensing_ssc_config_origin", default=(None, {})
)


class ProcessingConfig(BaseModel):
    """Settings of a run: one run directory and a typed section per manager.

    Every directory lives under ``run_dir`` unless a section names its own. Paths are taken
    as written, with ``~`` expanded to the home directory; an empty path or one holding a NUL
    character is refused.

    Args:
        run_dir: The run's directory: ``checkpoints/``, ``cache/``, ``logs/`` and
            ``status.json`` go under it.
        resources, checkpoint, cache, logging, progress: Section models or plain dicts.

    Example:
        >>> config = ProcessingConfig(run_dir="runs/example", resources={"memory_limit_mb": 8000})
        >>> config.checkpoint_dir
        PosixPath('runs/example/checkpoints')

    Raises:
        ConfigError: naming the field, the offending value and its source.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run_dir: RunPath = Path("runs/default")
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    cache: CacheSection = Field(default_factory=CacheSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    progress: ProgressSection = Field(default_factory=ProgressSection)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            source, field_sources = _ORIGIN.get()
            raise translate_validation_error(
                exc, type(self), source=source, field_sources=field_sources
            ) from exc

    def __setattr__(self, name: str, value: object) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise translate_validation_error(exc, type(self)) from exc

    # -- derived locations -------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        """Directory of checkpoints: ``checkpoint.dir`` or ``run_dir/checkpoints``."""
        return self.checkpoint.dir or self.run_dir / "checkpoints"

    @property
    def cache_dir(self) -> Path | None:
        """Directory of the disk cache, or ``None`` when ``cache.disk`` is off."""
        if not self.cache.disk:
            return None
        return self.cache.dir or self.run_dir / "cache"

    @property
    def log_file(self) -> Path:
        """The log file: ``logging.file`` or ``run_dir/logs/lensing_ssc.log``."""
        return self.logging.file or self.run_dir / "logs" / "lensing_ssc.log"

    @property
    def status_file(self) -> Path:
        """The run's ``status.json``, refreshed while the run is alive."""
        return self.run_dir / "status.json"

    # -- loading -----------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str | None = None,
        env: Mapping[str, str] | bool = False,
        defaults: Mapping[str, Any] | None = None,
    ) -> Self:
        """Validate ``data``, optionally overridden by environment variables.

        Args:
            data: Nested mapping of sections.
            source: Where ``data`` came from, named in errors.
            env: ``True`` to apply ``os.environ``, a mapping to apply that, ``False`` for none.
            defaults: Settings that ``data`` overrides, in place of the models' own defaults
                (a command's built-in settings).
        """
        where = source or "the config"
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where} must hold a mapping of sections, not {type(data).__name__}",
                value=type(data).__name__,
                hint="write the settings as sections: run_dir: ..., resources: {...}",
                source=source,
            )
        odd = [key for key in data if not isinstance(key, str)]
        if odd:
            raise ConfigError(
                f"{where} has a key that is not a name: {str(odd[0])[:80]!r}",
                value=str(odd[0])[:80],
                hint=f"top-level keys are {', '.join(sorted(cls.model_fields))}",
                source=source,
            )
        check_document(data, where)
        environ: Mapping[str, str] = os.environ if env is True else (env or {})
        overrides, field_sources = env_overrides(
            environ, top_level={"run_dir"}, sections=set(cls.model_fields) - {"run_dir"}
        )
        token = _ORIGIN.set((source, field_sources))
        try:
            return cls(**merge(merge(defaults or {}, data), overrides))
        finally:
            _ORIGIN.reset(token)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        env: Mapping[str, str] | bool = True,
        defaults: Mapping[str, Any] | None = None,
    ) -> Self:
        """Read a YAML, TOML or JSON file (by suffix), then apply environment overrides.

        ``defaults`` are settings the file overrides (see :meth:`from_dict`).

        Example:
            >>> config = ProcessingConfig.from_file("config.yaml")  # doctest: +SKIP
        """
        return cls.from_dict(read_file(path), source=str(path), env=env, defaults=defaults)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Defaults overridden by ``LENSING_SSC_*`` environment variables."""
        return cls.from_dict(
            {}, source="the environment", env=os.environ if environ is None else environ
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> Self:
        """``from_file(path)`` when a path is given, else ``from_env()``."""
        return cls.from_env() if path is None else cls.from_file(path)

    # -- output ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, unset ones included."""
        return self.model_dump(mode="json")

    def to_text(self, kind: str = "yaml") -> str:
        """The configuration as ``yaml``, ``toml`` or ``json`` text."""
        if kind not in {"yaml", "toml", "json"}:
            raise ConfigError(
                f"unknown config format {kind!r}", value=kind, hint="use yaml, toml or json"
            )
        return dump_text(self.to_dict(), kind)

    def to_file(self, path: str | Path) -> Path:
        """Write the configuration atomically, in the format its suffix names."""
        from lensing_ssc.core.io import atomic_write

        path = Path(path)
        kind = SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ConfigError(
                f"cannot tell the format for {str(path)!r} from its suffix",
                value=path.suffix,
                hint=f"use one of {', '.join(sorted(SUFFIXES))}",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.to_text(kind).encode("utf-8"))
        return path

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON schema of the configuration (for editors and validators)."""
        schema = cls.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"lensing_ssc {cls.__name__}"
        return schema

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
