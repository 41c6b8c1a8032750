"""ProgressManager persistence: exporting and importing the task tree for checkpoints."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ProgressError
from lensing_ssc.processing.managers import ProgressManager
from lensing_ssc.processing.managers.progress._manager import ProgressTask


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def quiet(**kwargs: object) -> ProgressManager:
    """A manager that draws nothing, for API tests."""
    return ProgressManager(enabled=False, **kwargs)  # type: ignore[arg-type]


# -- persistence ------------------------------------------------------------------------
def test_export_import_round_trip_through_json() -> None:
    """The exported tree survives JSON and restores counts, totals and nesting."""
    clock = FakeClock()
    with quiet(total=1000, description="maps", clock=clock) as pm:
        clock.advance(60)
        pm.update(420)
        outer = pm.subprogress("map_042", total=100)
        outer.update(37)
        inner = outer.subprogress("smoothing", total=4)
        inner.update(1)
        state = json.loads(json.dumps(pm.export_state()))
    with quiet(total=1000, description="maps", clock=clock) as resumed:
        resumed.import_state(state)
        status = resumed.get_status()
        assert (status["current"], status["resumed_from"]) == (420, 420)
        assert status["elapsed"] == pytest.approx(60.0)
        with resumed.subprogress("map_042", total=100) as again:
            assert again.current == 37
            assert again.subprogress("smoothing", total=4).current == 1
        assert resumed.export_state()["root"]["current"] == 420


def test_import_announces_resumed_at_in_the_log() -> None:
    """After import_state the log says 'resumed at 420/1000'."""
    state = {
        "format": "lensing_ssc.progress",
        "version": 1,
        "root": {"name": "maps", "current": 420, "total": 1000, "elapsed": 12.5, "children": []},
    }
    out = io.StringIO()
    with ProgressManager(total=1000, description="maps", file=out) as pm:
        pm.import_state(state)
    assert "maps: resumed at 420/1000" in out.getvalue()


def test_import_takes_saved_total_only_when_none_was_given() -> None:
    """A total passed to the constructor wins over the saved one; None adopts it."""
    with quiet(total=10) as pm:
        pm.update(2)
        state = pm.export_state()
    with quiet() as unknown:
        unknown.import_state(state)
        assert unknown.total == 10
    with quiet(total=50) as grown:
        grown.import_state(state)
        assert (grown.total, grown.current) == (50, 2)


def test_restored_subtask_can_be_started_afresh() -> None:
    """subprogress(..., resume=False) ignores a restored count."""
    with quiet(total=2) as pm:
        pm.subprogress("map_1", total=10).update(7)
        state = pm.export_state()
    with quiet(total=2) as again:
        again.import_state(state)
        assert again.subprogress("map_1", total=10, resume=False).current == 0


def test_unclaimed_restored_subtasks_are_kept_in_the_next_export() -> None:
    """A restored subtask not yet reopened is not shown but survives the next checkpoint."""
    with quiet(total=2) as pm:
        pm.subprogress("map_1", total=10).update(7)
        state = pm.export_state()
    with quiet(total=2) as again:
        again.import_state(state)
        assert again.get_status()["children"] == []
        children = again.export_state()["root"]["children"]
    assert [(c["name"], c["current"]) for c in children] == [("map_1", 7)]


@pytest.mark.parametrize(
    ("state", "where"),
    [
        ([1, 2], "top level: expected a mapping"),
        ({"format": "other", "version": 1, "root": {}}, "at format"),
        ({"format": "lensing_ssc.progress", "version": 9, "root": {}}, "at version"),
        ({"format": "lensing_ssc.progress", "version": 1, "root": {"name": "x"}}, "missing"),
        (
            {
                "format": "lensing_ssc.progress",
                "version": 1,
                "root": {"name": "x", "current": -3, "total": None, "elapsed": 0},
            },
            "at root: progress increment must be a finite number >= 0, got -3",
        ),
        (
            {
                "format": "lensing_ssc.progress",
                "version": 1,
                "root": {
                    "name": "x",
                    "current": 1,
                    "total": None,
                    "elapsed": 0,
                    "children": [
                        {"name": "a", "current": 0, "total": 1, "elapsed": 0},
                        {"name": "a", "current": 0, "total": 1, "elapsed": 0},
                    ],
                },
            },
            "root.children: duplicate subtask names",
        ),
    ],
)
def test_malformed_state_is_a_progress_error_naming_where(state: object, where: str) -> None:
    """import_state() refuses malformed dicts with ProgressError naming the field; counts stay."""
    with quiet(total=5) as pm:
        pm.update(2)
        with pytest.raises(ProgressError, match="saved progress state is invalid") as info:
            pm.import_state(state)  # type: ignore[arg-type]
        assert where in str(info.value)
        assert pm.current == 2


tree = st.recursive(
    st.builds(lambda c: {"current": c, "children": []}, st.integers(0, 10**6)),
    lambda kids: st.builds(
        lambda c, ks: {"current": c, "children": ks},
        st.integers(0, 10**6),
        st.lists(kids, max_size=3),
    ),
    max_leaves=8,
)


def _open(task: ProgressTask, spec: dict[str, object]) -> None:
    task.update(spec["current"])  # type: ignore[arg-type]
    for index, child in enumerate(spec["children"]):  # type: ignore[arg-type]
        _open(task.subprogress(f"t{index}"), child)


@settings(max_examples=40, deadline=None)
@given(tree)
def test_any_tree_round_trips_through_export_and_import(spec: dict[str, object]) -> None:
    """Every tree of counts exports and imports back to the same export."""
    with quiet() as pm:
        _open(pm, spec)
        state = pm.export_state()
    with quiet() as again:
        again.import_state(json.loads(json.dumps(state)))
        assert again.export_state()["root"]["children"] == state["root"]["children"]
        assert again.current == spec["current"]
