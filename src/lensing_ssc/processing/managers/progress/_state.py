"""Saved progress: the checkpointable form of a task tree and its validation.

``ProgressManager.export_state()`` returns :meth:`SavedTask.to_state` of its root — a
JSON-ready ``dict`` that checkpoints store — and ``import_state()`` reads it back through
:func:`parse_state`, which rejects anything malformed with a ``ProgressError`` that names
the offending field. Applying a saved tree to live tasks is the tasks' business
(``_task``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lensing_ssc.core.base.exceptions import ProgressError
from lensing_ssc.processing.managers.progress._clock import Number, check_amount, check_total

__all__ = ["STATE_FORMAT", "STATE_VERSION", "SavedTask", "parse_state"]

STATE_FORMAT = "lensing_ssc.progress"
STATE_VERSION = 1


@dataclass(frozen=True)
class SavedTask:
    """One task as saved in a checkpoint: counts and active seconds, not rates."""

    name: str
    current: Number
    total: Number | None
    elapsed: float
    children: tuple[SavedTask, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """This task and its subtasks as plain JSON values."""
        return {
            "name": self.name,
            "current": self.current,
            "total": self.total,
            "elapsed": self.elapsed,
            "children": [child.to_dict() for child in self.children],
        }

    def to_state(self) -> dict[str, Any]:
        """The whole saved tree with its format tag and version, as ``export_state`` returns."""
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "root": self.to_dict()}


def _bad(path: str, message: str, value: Any) -> ProgressError:
    return ProgressError(
        f"saved progress state is invalid at {path}: {message}",
        value=value,
        hint="pass the dict returned by ProgressManager.export_state(), unchanged",
    )


def _parse_task(data: Any, path: str) -> SavedTask:
    if not isinstance(data, Mapping):
        raise _bad(path, f"expected a mapping, got {type(data).__name__}", data)
    missing = [key for key in ("name", "current", "total", "elapsed") if key not in data]
    if missing:
        raise _bad(path, f"missing {', '.join(missing)}", dict(data))
    name = data["name"]
    if not isinstance(name, str):
        raise _bad(f"{path}.name", "expected a string", name)
    try:
        current = check_amount(data["current"])
        total = check_total(data["total"])
        elapsed = float(check_amount(data["elapsed"]))
    except ProgressError as exc:
        raise _bad(path, exc.message, exc.value) from exc
    children_data = data.get("children", [])
    if not isinstance(children_data, list):
        raise _bad(f"{path}.children", "expected a list", children_data)
    children = tuple(
        _parse_task(child, f"{path}.children[{index}]") for index, child in enumerate(children_data)
    )
    names = [child.name for child in children]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _bad(f"{path}.children", f"duplicate subtask names {duplicates}", duplicates)
    return SavedTask(name, current, total, elapsed, children)


def parse_state(state: Any) -> SavedTask:
    """Validate an exported state and return its root task.

    Raises:
        ProgressError: not a mapping, another format or version, or a malformed task
            (negative counts, non-numeric totals, duplicate subtask names), naming where.
    """
    if not isinstance(state, Mapping):
        raise _bad("top level", f"expected a mapping, got {type(state).__name__}", state)
    if state.get("format") != STATE_FORMAT:
        raise _bad("format", f"expected {STATE_FORMAT!r}", state.get("format"))
    if state.get("version") != STATE_VERSION:
        raise _bad("version", f"expected {STATE_VERSION}", state.get("version"))
    return _parse_task(state.get("root"), "root")
