"""One way for every manager to resolve its settings: argument, else config, else default.

:func:`resolve_settings` takes a manager's constructor arguments and a
:class:`~lensing_ssc.core.config.ProcessingConfig`, and returns the validated section the
manager runs with. An explicit argument wins; an argument not given takes the config's
section; without a config, the section's default. Every value goes through the section
model, so each bound is stated once, in :mod:`._sections`, and a bad argument raises the
same :class:`~lensing_ssc.core.base.exceptions.ConfigError` as a bad config file, naming the
field (``resources.memory_limit_mb``), the value and the allowed range.

Arguments from code are validated strictly: ``"8000"`` is not a number and ``"yes"`` not a
boolean there (text is parsed only where it is text, in files and the environment, see
:mod:`._loading`). :data:`NOT_GIVEN` marks an argument left to the config where ``None``
is a value of its own (``cache_dir=None`` is memory only, ``max_bytes=None`` never
rotates). Values derived from settings (bytes from MiB, the codec ``"auto"`` picks, the
watched directory) are computed by each manager, not here.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from typing import Any, ClassVar, Final, TypeVar, cast

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config._errors import _types_of, translate_validation_error
from lensing_ssc.core.config._model import ProcessingConfig
from lensing_ssc.core.config._sections import Section

__all__ = ["NOT_GIVEN", "NotGiven", "ReadOnlySettings", "resolve_settings"]

S = TypeVar("S", bound=Section)


class NotGiven(enum.Enum):
    """Type of :data:`NOT_GIVEN` (an enum, so that ``x is NOT_GIVEN`` narrows its type)."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven.NOT_GIVEN
"""An argument left to the config's section (else its default), where ``None`` means more."""


def resolve_settings(
    kind: type[S],
    config: ProcessingConfig | None,
    /,
    *,
    none_is_not_given: bool = False,
    **explicit: Any,
) -> S:
    """The section ``kind`` of ``config`` with every explicit argument applied, validated.

    Args:
        kind: The section model, e.g. :class:`~lensing_ssc.core.config.CacheSection`.
        config: The run's config; ``None`` for the section's defaults.
        none_is_not_given: ``None`` means "not given" for every field, including those that
            take ``None`` (for managers whose arguments have always read ``None`` so).
        **explicit: The manager's arguments, by field name. :data:`NOT_GIVEN` is not given;
            so is ``None`` for a field that does not take ``None``.

    Returns:
        A validated copy of the section, an instance of ``kind`` that cannot be assigned to
        (the manager was built with it; the caller's config is never changed).

    Raises:
        ConfigError: A bad value, naming the field (``cache.max_size_mb``), the value and the
            allowed range; an unknown name, with the closest field.

    Example:
        >>> from lensing_ssc.core.config import CacheSection, ProcessingConfig
        >>> config = ProcessingConfig(cache={"max_entries": 10})
        >>> settings = resolve_settings(CacheSection, config, max_size_mb=64, max_entries=None)
        >>> settings.max_size_mb, settings.max_entries, settings.eviction_policy
        (64.0, 10, 'lru')
    """
    key = _config_key(kind)
    section: Section = getattr(config, key) if config is not None else kind()
    fields = kind.model_fields
    given = {
        name: value
        for name, value in explicit.items()
        if _is_given(fields.get(name), value, none_is_not_given=none_is_not_given)
    }
    holder = _holder(kind)
    try:
        resolved = holder.model_validate({key: {**section.model_dump(), **given}}, strict=True)
    except ValidationError as exc:
        raise translate_validation_error(exc, holder) from exc
    return cast(S, getattr(resolved, key))


def _is_given(field: FieldInfo | None, value: Any, *, none_is_not_given: bool) -> bool:
    if value is NOT_GIVEN:
        return False
    if value is None and field is not None:
        return not none_is_not_given and type(None) in _types_of(field.annotation)
    return True


@functools.cache
def _config_key(kind: type[Section]) -> str:
    """The field of :class:`ProcessingConfig` that holds a ``kind``: ``"cache"``."""
    for name, field in ProcessingConfig.model_fields.items():
        if field.annotation is kind:
            return name
    raise TypeError(f"{kind.__name__} is not a section of ProcessingConfig")


@functools.cache
def _holder(kind: type[Section]) -> type[BaseModel]:
    """A model holding one frozen ``kind`` under its config key, so errors read ``cache.x``."""
    key = _config_key(kind)
    return create_model(f"{kind.__name__}Arguments", **{key: (_frozen(kind), ...)})  # type: ignore[call-overload]


@functools.cache
def _frozen(kind: type[S]) -> type[S]:
    """``kind`` with assignment refused; its instances pickle as ``kind``'s values."""
    namespace = {
        "model_config": ConfigDict(frozen=True),
        "__module__": kind.__module__,
        "__qualname__": kind.__qualname__,
        "__reduce__": _reduce,
    }
    return cast(type[S], type(kind.__name__, (kind,), namespace))


def _reduce(self: Section) -> tuple[Any, ...]:
    # The frozen class is made at run time and cannot be found by name; rebuild it instead.
    return (_refreeze, (type(self).__mro__[1], self.model_dump()))


def _refreeze(kind: type[Section], data: dict[str, Any]) -> Section:
    return _frozen(kind).model_validate(data)


class ReadOnlySettings:
    """Base of a manager whose settings, shown as attributes, are fixed once it is built.

    A manager builds its parts from its settings; assigning one afterwards would change
    nothing they do, so it is refused. ``_read_only`` maps each such attribute to the config
    field it comes from (``None`` for an argument only) and the hint saying how to give it.

    Example:
        >>> class Manager(ReadOnlySettings):
        ...     _read_only = {"limit": ("cache.max_size_mb", "pass limit=... to Manager(...)")}
        ...     def __init__(self) -> None:
        ...         self.limit = 1
        >>> Manager().limit = 2
        Traceback (most recent call last):
        ...
        lensing_ssc.core.base.exceptions.ConfigError: Manager.limit is read-only ...
    """

    _read_only: ClassVar[Mapping[str, tuple[str | None, str]]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        spec = self._read_only.get(name)
        if spec is not None and name in self.__dict__:
            field, hint = spec
            raise ConfigError(
                f"{type(self).__name__}.{name} is read-only after construction: assigning it "
                "would change nothing the manager already built",
                value=value,
                hint=hint,
                field=field,
            )
        super().__setattr__(name, value)
