"""Honest rate and ETA: the estimator on the three workloads the issue names, on a fake clock,
plus the active clock and estimator it is built from."""

from __future__ import annotations

import io

import pytest

from lensing_ssc.processing.managers import ProgressManager
from lensing_ssc.processing.managers.progress._clock import ActiveClock, estimate_rate


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_paused_time_is_excluded_from_rate_eta_and_elapsed() -> None:
    """Ten minutes of pause in the middle of a 1 item/s job leave rate 1/s and ETA = items left."""
    clock = FakeClock()
    with ProgressManager(total=100, enabled=False, clock=clock) as pm:
        for _ in range(40):
            clock.advance(1.0)
            pm.update()
        pm.pause()
        clock.advance(600.0)
        pm.resume()
        for _ in range(10):
            clock.advance(1.0)
            pm.update()
        status = pm.get_status()
    assert status["rate"] == pytest.approx(1.0)
    assert status["eta"] == pytest.approx(50.0)
    assert status["elapsed"] == pytest.approx(50.0)


def test_rate_and_eta_stand_still_while_paused() -> None:
    """While paused, the clock stops: two reads an hour apart give the same rate and ETA."""
    clock = FakeClock()
    with ProgressManager(total=10, enabled=False, clock=clock) as pm:
        clock.advance(2.0)
        pm.update(2)
        pm.pause()
        before = pm.get_status()
        clock.advance(3600.0)
        after = pm.get_status()
    assert (after["rate"], after["eta"], after["elapsed"]) == (
        before["rate"],
        before["eta"],
        before["elapsed"],
    )
    assert after["paused"] is True


def test_items_restored_from_a_checkpoint_do_not_inflate_the_rate() -> None:
    """Resumed at 900/1000, ten new items in ten seconds give 1 item/s and 90 s left, not 91/s."""
    clock = FakeClock()
    with ProgressManager(total=1000, enabled=False, clock=clock) as first:
        clock.advance(900.0)
        first.update(900)
        state = first.export_state()
    clock.advance(5000.0)  # the job was down for a while
    with ProgressManager(total=1000, enabled=False, clock=clock) as pm:
        pm.import_state(state)
        assert pm.get_status()["rate"] is None
        for _ in range(10):
            clock.advance(1.0)
            pm.update()
        status = pm.get_status()
    assert status["current"] == 910
    assert status["rate"] == pytest.approx(1.0)
    assert status["eta"] == pytest.approx(90.0)
    assert status["elapsed"] == pytest.approx(910.0)


def test_items_an_earlier_run_finished_count_as_resumed_not_as_this_runs_rate() -> None:
    """count_restored(300) then 10 items in 10 s: 1/s, ETA 690 s, heartbeat "(resumed at 300)"."""
    clock = FakeClock()
    lines = io.StringIO()
    with (
        ProgressManager(description="job", file=lines, heartbeat_interval=5.0, clock=clock) as pm,
        pm.subprogress("patches", total=1000) as task,
    ):
        task.count_restored(300)  # what a journal held: no time passed for them in this run
        assert (task.snapshot().rate, task.snapshot().eta) == (None, None)
        for _ in range(10):
            clock.advance(1.0)
            task.update()
        pm.refresh()
        status = task.snapshot()
    assert (status.current, status.resumed_from) == (310, 300)
    assert (status.rate, status.eta) == (pytest.approx(1.0), pytest.approx(690.0))
    line = "job [patches] (resumed at 300): 310/1000 31.0% | 1/s | elapsed 0:00:10 | eta 0:11:30"
    assert line in lines.getvalue()


def test_one_slow_item_in_a_hundred_moves_the_estimate_by_at_most_s_over_n() -> None:
    """A tenfold-slow 50th item of 100 keeps elapsed+ETA within the documented 1 + s/N bound.

    The estimated total duration is sampled every 0.25 s, as the display would, once 20 items
    are done (before that an ordinary 1 s item still moves it by up to 1/N). With the typical
    item at 1 s the typical total is 100 s; for s=10 at N=50 the estimate must stay within
    [100 s, 120 s] during the slow item and for the rest of the run (the job really takes 109 s).
    """
    clock = FakeClock()
    slow, position, typical, warm_up = 10.0, 50, 100.0, 20
    before: list[float] = []
    from_slow_on: list[float] = []
    with ProgressManager(total=100, enabled=False, clock=clock) as pm:
        for item in range(100):
            duration = slow if item == position else 1.0
            for _ in range(int(duration / 0.25)):
                clock.advance(0.25)
                status = pm.get_status()
                if item < warm_up:
                    continue
                estimate = (status["elapsed"] + status["eta"]) / typical
                (before if item < position else from_slow_on).append(estimate)
            pm.update()
        final = pm.get_status()["elapsed"]
    assert final == pytest.approx(typical + slow - 1)
    assert 1.0 - 1e-9 <= min(before) <= max(before) <= 1 + 1 / warm_up + 1e-9
    assert 1.0 - 1e-9 <= min(from_slow_on) <= max(from_slow_on) <= 1 + slow / position + 1e-9
    assert max(from_slow_on) == pytest.approx(1 + slow / position, rel=1e-3)  # the bound is tight


def test_slow_item_swings_a_short_window_rate_far_beyond_the_bound() -> None:
    """The same workload through a 5-second sliding-window rate would swing without limit."""
    slow, position = 10.0, 50
    finish_times, t = [], 0.0
    for item in range(100):
        t += slow if item == position else 1.0
        finish_times.append(t)
    during_slow_item = finish_times[position - 1] + 6.0
    done_in_window = sum(1 for f in finish_times if during_slow_item - 5.0 < f <= during_slow_item)
    assert done_in_window == 0  # windowed rate 0 → ETA infinite, while ours stays within 20 %


def test_active_clock_counts_only_running_time() -> None:
    """ActiveClock adds up running stretches and ignores paused ones and repeated calls."""
    clock = FakeClock()
    active = ActiveClock(clock)
    clock.advance(5)
    assert active.pause() is True
    assert active.pause() is False
    clock.advance(100)
    assert active.now() == pytest.approx(5.0)
    assert active.resume() is True
    assert active.resume() is False
    clock.advance(2)
    assert active.now() == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0, 10, 0, 5.0), (None, None)),  # nothing done yet
        ((5, None, 5, 5.0), (1.0, None)),  # unknown total
        ((10, 10, 10, 5.0), (2.0, 0.0)),  # done
        ((12, 10, 12, 6.0), (2.0, 0.0)),  # past the total
        ((5, 10, 0, 5.0), (None, None)),  # only restored items
        ((5, 10, 5, 0.0), (None, None)),  # no active time yet
    ],
)
def test_estimate_rate_edge_cases(
    args: tuple[int, int | None, int, float], expected: tuple[float | None, float | None]
) -> None:
    """estimate_rate returns None rather than guessing, and ETA 0 once the total is reached."""
    assert estimate_rate(*args) == expected
