"""The exception tree: one root, builtin bases, values and hints that survive pickling."""

from __future__ import annotations

import pickle

import pytest

from lensing_ssc.core.base import exceptions
from lensing_ssc.core.base.exceptions import (
    AnalysisError,
    CacheError,
    CheckpointError,
    ConfigError,
    InterruptedRunError,
    LensingSSCError,
    LoggingError,
    ProgressError,
    ResourceError,
)

AREA_ERRORS = [
    (ConfigError, ValueError),
    (ResourceError, RuntimeError),
    (CheckpointError, OSError),
    (ProgressError, ValueError),
    (CacheError, RuntimeError),
    (LoggingError, ValueError),
    (AnalysisError, ValueError),
    (InterruptedRunError, RuntimeError),
]


@pytest.mark.parametrize(("error", "builtin"), AREA_ERRORS)
def test_each_area_error_is_caught_by_the_root_and_its_builtin(
    error: type[LensingSSCError], builtin: type[Exception]
) -> None:
    """Callers can catch every area error as LensingSSCError and as its natural builtin."""
    with pytest.raises(LensingSSCError):
        raise error("boom")
    with pytest.raises(builtin):
        raise error("boom")


def test_all_lists_exactly_the_public_errors() -> None:
    """__all__ names every exception class of the module and nothing else."""
    classes = {
        name
        for name, obj in vars(exceptions).items()
        if isinstance(obj, type) and issubclass(obj, Exception) and not name.startswith("_")
    }
    assert sorted(exceptions.__all__) == exceptions.__all__
    assert set(exceptions.__all__) == classes


def test_tree_in_docstring_names_every_error() -> None:
    """The module docstring's tree drawing mentions every public error."""
    doc = exceptions.__doc__ or ""
    for name in exceptions.__all__:
        assert name in doc


def test_message_carries_value_and_hint() -> None:
    """The hint is appended to the message and the offending value is kept."""
    err = ResourceError("memory_limit_mb must be > 0", value=-5, hint="use e.g. 8000")
    assert str(err) == "memory_limit_mb must be > 0 (use e.g. 8000)"
    assert err.value == -5
    assert err.hint == "use e.g. 8000"


@pytest.mark.parametrize(("error", "builtin"), AREA_ERRORS)
def test_errors_survive_pickling_with_their_fields(
    error: type[LensingSSCError], builtin: type[Exception]
) -> None:
    """Errors sent back from worker processes keep type, message, value and hint."""
    original = error("bad thing", value={"k": 1}, hint="do this")
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is error
    assert str(copy) == str(original)
    assert copy.value == {"k": 1}
    assert copy.hint == "do this"


def test_config_error_keeps_field_and_source_across_pickling() -> None:
    """ConfigError's field and source travel with it."""
    err = ConfigError("bad", value=3, field="cache.max_entries", source="run.yaml")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.field, copy.source, copy.value) == ("cache.max_entries", "run.yaml", 3)


def test_interrupted_run_error_names_the_signal() -> None:
    """A graceful-stop error says which signal asked for it."""
    err = InterruptedRunError("stop requested", signal_name="SIGTERM")
    assert err.signal_name == "SIGTERM"
    assert pickle.loads(pickle.dumps(err)).signal_name == "SIGTERM"
