"""ProgressManager's public API: the README's examples, status, bad input, lifecycle, pausing,
callbacks and iterables. Displays, rates, persistence, settings and concurrency have their
own test_progress_* files."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from lensing_ssc.core.base.exceptions import ConfigError, ProgressError
from lensing_ssc.processing.managers import ProgressManager
from lensing_ssc.processing.managers.progress import _manager as module
from lensing_ssc.processing.managers.progress._manager import ProgressSnapshot


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


# -- the README's examples ----------------------------------------------------------------
def test_readme_basic_example_counts_and_reports_in_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's basic example works as written and, off a terminal, writes start and end."""
    with ProgressManager(total=1000, description="Processing items") as pm:
        for _ in range(1000):
            pm.update(1)
    err = capsys.readouterr().err
    assert pm.get_status()["current"] == 1000
    assert "Processing items: started, total 1000" in err
    assert "Processing items: done, 1000/1000 100.0%" in err


def test_readme_nested_example_shows_subtasks_while_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's nested example works; each subtask is listed only while its block runs."""
    seen: list[list[str]] = []
    with ProgressManager(total=10, description="Main task") as pm:
        for i in range(10):
            with pm.subprogress(f"subtask_{i}", total=100) as sub:
                for _ in range(100):
                    sub.update(1)
                seen.append([child["name"] for child in pm.get_status()["children"]])
                assert pm.get_status()["children"][0]["current"] == 100
            pm.update(1)
        assert pm.get_status()["children"] == []
    assert seen == [[f"subtask_{i}"] for i in range(10)]
    assert pm.current == 10
    capsys.readouterr()


def test_module_exports_exactly_its_public_names() -> None:
    """progress_manager exports the manager, its task and snapshot types and the env switch."""
    assert module.__all__ == sorted(module.__all__)
    assert module.__all__ == [
        "ENV_ENABLED",
        "ProgressManager",
        "ProgressReporter",
        "ProgressSnapshot",
        "ProgressTask",
    ]


# -- status -----------------------------------------------------------------------------
def test_get_status_is_json_ready_with_every_documented_key() -> None:
    """get_status() has current, total, percentage, rate, eta, elapsed and survives json.dumps."""
    clock = FakeClock()
    with quiet(total=200, description="maps", clock=clock) as pm:
        clock.advance(10)
        pm.update(50)
        with pm.subprogress("patches", total=4) as sub:
            sub.update(1)
            status = pm.get_status()
    assert json.loads(json.dumps(status)) == status
    assert status["current"] == 50
    assert status["total"] == 200
    assert status["percentage"] == pytest.approx(25.0)
    assert status["rate"] == pytest.approx(5.0)
    assert status["eta"] == pytest.approx(30.0)
    assert status["elapsed"] == pytest.approx(10.0)
    assert status["display"] == "disabled"
    assert status["children"][0]["name"] == "patches"
    assert status["children"][0]["percentage"] == pytest.approx(25.0)


def test_snapshot_is_a_frozen_value() -> None:
    """snapshot() returns an immutable ProgressSnapshot whose to_dict() is the status."""
    with quiet(total=3) as pm:
        pm.update()
        snap = pm.snapshot()
    assert isinstance(snap, ProgressSnapshot)
    with pytest.raises(AttributeError):
        snap.current = 5  # type: ignore[misc]
    assert snap.to_dict()["current"] == 1


def test_unknown_total_has_no_percentage_or_eta_but_a_rate() -> None:
    """Without a total, percentage and eta are None while rate and current are reported."""
    clock = FakeClock()
    with quiet(clock=clock) as pm:
        clock.advance(4)
        pm.update(8)
        status = pm.get_status()
    assert (status["total"], status["percentage"], status["eta"]) == (None, None, None)
    assert status["rate"] == pytest.approx(2.0)


def test_set_total_changes_percentage() -> None:
    """set_total() fixes a total learnt late."""
    with quiet() as pm:
        pm.update(5)
        pm.set_total(20)
        assert pm.get_status()["percentage"] == pytest.approx(25.0)


# -- bad input --------------------------------------------------------------------------
def test_negative_total_is_a_progress_error() -> None:
    """A negative total raises ProgressError naming the value."""
    with pytest.raises(ProgressError, match=r"total must be a finite number >= 0, got -5") as info:
        ProgressManager(total=-5, enabled=False)
    assert info.value.value == -5


@pytest.mark.parametrize("bad", ["ten", None, [1]])
def test_non_numeric_total_is_a_progress_error(bad: object) -> None:
    """A total that is not a number raises ProgressError."""
    with pytest.raises(ProgressError, match="total must be a number or None"):
        quiet(total=bad) if bad is not None else quiet().set_total("x")


def test_negative_increment_is_rejected_and_changes_nothing() -> None:
    """update(-1) raises ProgressError and leaves the count alone."""
    with quiet(total=10) as pm:
        pm.update(3)
        with pytest.raises(ProgressError, match=r"increment must be a finite number >= 0, got -1"):
            pm.update(-1)
        assert pm.current == 3


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (float("nan"), "finite number >= 0"),
        (float("inf"), "finite number >= 0"),
        ("1", "must be a number, got str"),
        (None, "must be a number, got NoneType"),
    ],
)
def test_invalid_increments_are_progress_errors(bad: object, message: str) -> None:
    """NaN, infinity, strings and None are refused with ProgressError."""
    with quiet() as pm, pytest.raises(ProgressError, match=message):
        pm.update(bad)  # type: ignore[arg-type]


def test_duplicate_open_subtask_name_is_a_progress_error() -> None:
    """Opening a subtask whose name is already open under the same parent raises ProgressError."""
    with (
        quiet(total=2, description="main") as pm,
        pm.subprogress("map_1", total=3),
        pytest.raises(ProgressError, match=r"a subtask named 'map_1' is already open under 'main'"),
    ):
        pm.subprogress("map_1", total=3)


def test_subtask_name_can_be_reused_after_closing() -> None:
    """A closed subtask's name is free again (e.g. one 'load' subtask per iteration)."""
    with quiet() as pm:
        for _ in range(2):
            with pm.subprogress("load", total=1) as sub:
                sub.update()
        assert pm.get_status()["children"] == []


@pytest.mark.parametrize("bad", ["", 3])
def test_invalid_subtask_name_is_a_progress_error(bad: object) -> None:
    """Empty or non-string subtask names raise ProgressError."""
    with (
        quiet() as pm,
        pytest.raises(ProgressError, match="subtask name must be a non-empty string"),
    ):
        pm.subprogress(bad)  # type: ignore[arg-type]


def test_updates_past_the_total_are_counted_but_the_percentage_stops_at_100() -> None:
    """Going past the total counts every item, shows 100 % (not more) and an ETA of zero."""
    out = io.StringIO()
    with ProgressManager(total=10, description="over", file=out) as pm:
        sub = pm.subprogress("inner", total=4)
        sub.update(6)
        pm.update(15)
        status = pm.get_status()
    assert status["current"] == 15
    assert status["percentage"] == 100.0
    assert status["children"][0]["current"] == 6
    assert status["children"][0]["percentage"] == 100.0
    assert status["eta"] == 0.0
    assert "over: done, 15/10 100.0%" in out.getvalue()


def test_update_after_close_is_ignored_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Updating a closed manager or subtask counts nothing, draws nothing, logs one warning each."""
    out = io.StringIO()
    pm = ProgressManager(total=5, description="late", file=out)
    sub = pm.subprogress("inner", total=2)
    pm.update(3)
    sub.update(1)
    pm.close()
    written = out.getvalue()
    with caplog.at_level(logging.WARNING, logger="lensing_ssc.processing.managers.progress"):
        pm.update(1)
        pm.update(2)
        sub.update(1)
        sub.update(1)
    pm.refresh()
    pm.close()
    assert out.getvalue() == written
    assert pm.current == 3
    assert sub.current == 1
    assert pm.get_status()["finished"] is True
    assert [record.getMessage() for record in caplog.records] == [
        "progress task 'late' is closed: update(1) and any later ones are ignored",
        "progress task 'inner' is closed: update(1) and any later ones are ignored",
    ]


def test_invalid_description_and_logger_are_refused() -> None:
    """A non-string description is a ProgressError, a non-Logger logger a ConfigError."""
    with pytest.raises(ProgressError, match="description must be a string"):
        ProgressManager(description=5, enabled=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"logger must be a logging\.Logger, got str"):
        ProgressManager(logger="log", enabled=False)  # type: ignore[arg-type]


# -- lifecycle --------------------------------------------------------------------------
def test_refresher_thread_is_named_daemon_and_joined_on_close() -> None:
    """A displaying manager runs one daemon thread 'lensing_ssc-progress', gone after close()."""
    pm = ProgressManager(total=3, file=io.StringIO())
    threads = [t for t in threading.enumerate() if t.name == "lensing_ssc-progress"]
    assert len(threads) == 1
    assert threads[0].daemon
    pm.close()
    pm.close()
    assert not threads[0].is_alive()


def test_close_marks_tree_finished_and_freezes_elapsed() -> None:
    """After close() the status says finished and elapsed no longer grows."""
    clock = FakeClock()
    pm = quiet(total=2, clock=clock)
    clock.advance(5)
    pm.close()
    clock.advance(100)
    status = pm.get_status()
    assert status["finished"] is True
    assert status["elapsed"] == pytest.approx(5.0)


def test_exception_in_block_is_reported_in_the_end_line() -> None:
    """Leaving the with-block by an exception writes 'failed (...)' instead of 'done'."""
    out = io.StringIO()

    def job() -> None:
        with ProgressManager(total=4, description="job", file=out) as pm:
            pm.update(1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        job()
    assert "job: failed (RuntimeError), 1/4 25.0%" in out.getvalue()


def test_stopping_early_says_stopped() -> None:
    """Closing below the total writes 'stopped', not 'done'."""
    out = io.StringIO()
    with ProgressManager(total=4, description="job", file=out) as pm:
        pm.update(2)
    assert "job: stopped, 2/4 50.0%" in out.getvalue()


# -- pausing ----------------------------------------------------------------------------
def test_pause_excludes_time_and_is_announced() -> None:
    """Paused seconds are left out of elapsed; pause and resume each write one line."""
    clock, out = FakeClock(), io.StringIO()
    with ProgressManager(total=10, description="job", file=out, clock=clock) as pm:
        clock.advance(2)
        pm.update(2)
        pm.pause()
        pm.pause()
        assert pm.is_paused
        clock.advance(300)
        pm.resume()
        pm.resume()
        clock.advance(2)
        pm.update(2)
        status = pm.get_status()
    assert status["elapsed"] == pytest.approx(4.0)
    assert status["rate"] == pytest.approx(1.0)
    text = out.getvalue()
    assert text.count("job: paused at 2/10") == 1
    assert text.count("job: running again after a pause of 0:05:00") == 1


# -- callbacks --------------------------------------------------------------------------
def test_callbacks_get_snapshots_when_work_was_done_and_at_close() -> None:
    """A callback runs on refresh only after progress, and once more with finished=True."""
    got: list[ProgressSnapshot] = []
    with quiet(total=3, refresh_per_second=0.01) as pm:
        pm.add_callback(got.append)
        pm.update()
        pm.refresh()
        pm.refresh()
        pm.update()
        pm.refresh()
    assert [s.current for s in got] == [1, 2, 2]
    assert [s.finished for s in got] == [False, False, True]


def test_failing_callback_is_logged_and_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in one callback is logged; the next callback and the job go on."""
    got: list[int] = []

    def broken(snapshot: ProgressSnapshot) -> None:
        raise KeyError("bad callback")

    with quiet(total=3, refresh_per_second=0.01) as pm:
        pm.add_callback(broken)
        pm.add_callback(lambda s: got.append(int(s.current)))
        pm.update()
        with caplog.at_level(logging.ERROR):
            pm.refresh()
        pm.remove_callback(broken)
    assert got == [1, 1]
    assert "progress callback" in caplog.text
    assert "KeyError" in caplog.text


def test_non_callable_callback_is_refused() -> None:
    """add_callback() with a non-callable raises ProgressError."""
    with quiet() as pm, pytest.raises(ProgressError, match="callback must be callable"):
        pm.add_callback(42)  # type: ignore[arg-type]


# -- iterables --------------------------------------------------------------------------
def test_track_takes_total_from_len_and_counts_each_item() -> None:
    """track() over a list sets the total from len() and counts every finished item."""
    with quiet() as pm:
        items = list(pm.track(["a", "b", "c"]))
        status = pm.get_status()
    assert items == ["a", "b", "c"]
    assert (status["current"], status["total"]) == (3, 3)


def test_track_generator_without_len_has_unknown_total() -> None:
    """A generator has no len(): the total stays unknown unless given."""
    with quiet() as pm:
        for _ in pm.track(x for x in range(4)):
            pass
        assert (pm.current, pm.total) == (4, None)
        for _ in pm.track((x for x in range(2)), total=2):
            pass
        assert (pm.current, pm.total) == (6, 2)


def test_track_counts_only_finished_items_when_the_loop_breaks() -> None:
    """An item whose loop body broke out is not counted."""
    with quiet() as pm:
        for item in pm.track(range(10)):
            if item == 3:
                break
        assert pm.current == 3


def test_track_with_name_uses_a_subtask_closed_at_the_end() -> None:
    """track(name=...) counts on a new subtask that disappears when the loop ends."""
    with quiet(total=1) as pm:
        names = []
        for _ in pm.track(range(5), name="patches"):
            names = [c["name"] for c in pm.get_status()["children"]]
        assert names == ["patches"]
        assert pm.get_status()["children"] == []
        assert pm.current == 0
