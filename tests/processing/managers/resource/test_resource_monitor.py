"""ResourceManager over time: callbacks, graceful stop, history and peaks, the monitor thread.

Samples are scripted (a fake sampler) so each state is entered on purpose.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time

import pytest

from lensing_ssc.core.base.exceptions import ResourceError
from lensing_ssc.processing.managers import ResourceManager
from lensing_ssc.processing.managers.resource._manager import MONITOR_THREAD_NAME, ReplaySampler


def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)


# -- callbacks ---------------------------------------------------------------------------
def test_callbacks_fire_when_a_figure_enters_the_state_not_every_sample(isolated) -> None:
    """Warning and limit callbacks fire on entering warning or breach, not again while in it.

    A figure that rises from the warning band past the limit does not warn a second time.
    """
    sampler = ReplaySampler(
        *[{"memory_mb": m} for m in (850.0, 860.0, 1100.0, 1200.0, 100.0, 900.0)]
    )
    warnings: list[dict[str, str]] = []
    breaches: list[dict[str, str]] = []
    rm = ResourceManager(memory_limit_mb=1000, sampler=sampler, **isolated)
    rm.add_warning_callback(lambda usage, w: warnings.append(w))
    rm.add_limit_callback(lambda usage, e: breaches.append(e))
    with rm:
        for _ in range(6):
            rm.get_current_usage()
    assert [list(w) for w in warnings] == [["memory"], ["memory"]]
    assert "850.0 MB" in warnings[0]["memory"]
    assert "900.0 MB" in warnings[1]["memory"]
    assert len(breaches) == 1
    assert "1100.0 MB" in breaches[0]["memory"]


def test_a_jump_straight_past_the_limit_still_calls_warning_callbacks(isolated) -> None:
    """A spike from far below to above the limit within one sample warns as well as breaches."""
    sampler = ReplaySampler({"memory_mb": 100.0}, {"memory_mb": 1500.0})
    warned: list[dict[str, str]] = []
    breached: list[dict[str, str]] = []
    rm = ResourceManager(memory_limit_mb=1000, sampler=sampler, **isolated)
    rm.add_warning_callback(lambda usage, w: warned.append(w))
    rm.add_limit_callback(lambda usage, e: breached.append(e))
    rm.get_current_usage()
    assert warned == []
    rm.get_current_usage()
    rm.close()
    assert warned == breached
    assert list(warned[0]) == ["memory"]


def test_failing_callback_is_logged_and_never_kills_the_monitor(
    isolated, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged with its traceback; later callbacks and samples go on."""
    sampler = ReplaySampler({"memory_mb": 900.0}, {"memory_mb": 100.0}, {"memory_mb": 900.0})
    later: list[float] = []

    def broken(usage, warnings):
        raise RuntimeError("callback bug")

    rm = ResourceManager(memory_limit_mb=1000, monitor_interval=0.01, sampler=sampler, **isolated)
    rm.add_warning_callback(broken)
    rm.add_warning_callback(lambda usage, warnings: later.append(usage.memory_mb))
    with caplog.at_level("ERROR", logger="lensing_ssc.processing.managers.resource"), rm:
        wait_until(lambda: len(later) >= 2 and sampler.calls >= 5)
        assert rm.is_monitoring
    failures = [r for r in caplog.records if "callback" in r.getMessage()]
    assert len(failures) >= 2
    assert failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == "callback bug"


# -- graceful stop -----------------------------------------------------------------------
def test_graceful_stop_on_breach_sets_flag_and_calls_stop_callbacks_once(isolated) -> None:
    """With graceful_stop, a breach requests a stop once: flag, reason and stop callbacks."""
    reasons: list[str] = []
    sampler = ReplaySampler({"memory_mb": 1100.0}, {"memory_mb": 10.0}, {"memory_mb": 1300.0})
    rm = ResourceManager(memory_limit_mb=1000, graceful_stop=True, sampler=sampler, **isolated)
    rm.add_stop_callback(reasons.append)
    assert not rm.stop_requested
    for _ in range(3):
        rm.get_current_usage()
    assert rm.stop_requested
    assert rm.get_status()["stop_requested"] is True
    rm.close()
    assert reasons == ["resource limit exceeded: memory"]
    assert rm.stop_reason == "resource limit exceeded: memory"


def test_without_graceful_stop_a_breach_requests_no_stop(isolated) -> None:
    """graceful_stop off (the default): breaches raise in check_limits but request no stop."""
    with ResourceManager(
        memory_limit_mb=1000, sampler=ReplaySampler({"memory_mb": 2e3}), **isolated
    ) as rm:
        with pytest.raises(ResourceError):
            rm.check_limits()
        assert not rm.stop_requested


def test_request_stop_by_hand_is_idempotent(isolated) -> None:
    """request_stop (e.g. from a SIGUSR1 handler) sets the flag once and keeps the first reason."""
    reasons: list[str] = []
    with ResourceManager(sampler=ReplaySampler(), **isolated) as rm:
        rm.add_stop_callback(reasons.append)
        assert rm.request_stop("SIGUSR1") is True
        assert rm.request_stop("memory") is False
        assert (rm.stop_requested, rm.stop_reason) == (True, "SIGUSR1")
    assert reasons == ["SIGUSR1"]


# -- history, peaks, status --------------------------------------------------------------
def test_history_is_a_bounded_ring_buffer_oldest_first(isolated) -> None:
    """history keeps the last history_size samples, oldest first."""
    sampler = ReplaySampler(*[{"memory_mb": float(m)} for m in range(8)])
    rm = ResourceManager(history_size=5, sampler=sampler, **isolated)
    for _ in range(8):
        rm.get_current_usage()
    history = rm.history
    rm.close()
    assert [u.memory_mb for u in history] == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_peak_usage_keeps_the_worst_of_each_figure(isolated) -> None:
    """peak_usage holds each figure's maximum, and the minimum of free space."""
    sampler = ReplaySampler(
        {"memory_mb": 100.0, "cpu_percent": 80.0, "disk_free_gb": 50.0},
        {"memory_mb": 300.0, "cpu_percent": 20.0, "disk_free_gb": 40.0},
        {"memory_mb": 200.0, "cpu_percent": None, "disk_free_gb": 45.0},
    )
    rm = ResourceManager(sampler=sampler, **isolated)
    for _ in range(3):
        rm.get_current_usage()
    peak = rm.peak_usage
    rm.close()
    assert (peak.memory_mb, peak.cpu_percent, peak.disk_free_gb) == (300.0, 80.0, 40.0)


def test_status_is_json_ready_and_names_the_limit_source(isolated) -> None:
    """get_status is a JSON-serialisable dict with the limit, its source, current and peak."""
    sampler = ReplaySampler({"memory_mb": 900.0})
    with ResourceManager(memory_limit_mb=1000, sampler=sampler, **isolated) as rm:
        status = json.loads(json.dumps(rm.get_status()))
    assert status["memory_limit"] == {"limit_mb": 1000.0, "source": "user"}
    assert status["current"]["memory_mb"] == 900.0
    assert status["current"]["memory_fraction"] == pytest.approx(0.9)
    assert status["peak"]["memory_mb"] == 900.0
    assert set(status["warnings"]) == {"memory"}
    assert status["exceeded"] == {}
    assert status["monitoring"] is True
    assert status["stop_requested"] is False


def test_usage_report_lists_limit_figures_and_warnings(isolated) -> None:
    """The text report shows the limit with its source, memory now and at peak, and warnings."""
    sampler = ReplaySampler({"memory_mb": 700.0}, {"memory_mb": 900.0}, {"memory_mb": 500.0})
    rm = ResourceManager(memory_limit_mb=1000, sampler=sampler, **isolated)
    for _ in range(3):
        rm.get_current_usage()
    report = rm.get_usage_report()
    rm.close()
    assert "memory limit : 1000.0 MB (user)" in report
    assert "job memory MB:      500.0   peak      900.0" in report
    assert "samples      : 3 (every 1 s)" in report


# -- the monitor thread and lifetime ---------------------------------------------------
def test_monitor_is_a_named_daemon_thread_joined_on_close(isolated) -> None:
    """The monitor runs as a named daemon thread that is gone after close()."""
    rm = ResourceManager(monitor_interval=0.01, sampler=ReplaySampler(), **isolated)
    rm.start_monitoring()
    rm.start_monitoring()  # a second start is a no-op
    threads = [t for t in threading.enumerate() if t.name == MONITOR_THREAD_NAME]
    assert len(threads) == 1
    assert threads[0].daemon
    rm.close()
    rm.close()  # idempotent
    assert not threads[0].is_alive()
    assert not rm.is_monitoring


def test_status_of_a_closed_manager_never_raises(isolated) -> None:
    """A manager closed before any sample still reports its status and text report."""
    rm = ResourceManager(memory_limit_mb=1000, sampler=ReplaySampler(), **isolated)
    rm.close()
    status = rm.get_status()
    assert (status["current"], status["peak"], status["samples"]) == (None, None, 0)
    assert "job memory MB:        n/a   peak        n/a" in rm.get_usage_report()


def test_closed_manager_refuses_to_sample_or_monitor(isolated) -> None:
    """After close(), sampling and monitoring raise ResourceError; the sampler is closed."""
    sampler = ReplaySampler()
    rm = ResourceManager(sampler=sampler, **isolated)
    rm.close()
    assert sampler.closed
    with pytest.raises(ResourceError, match="this ResourceManager is closed"):
        rm.get_current_usage()
    with pytest.raises(ResourceError, match="cannot start monitoring"):
        rm.start_monitoring()


def test_stop_monitoring_from_a_callback_does_not_deadlock(isolated) -> None:
    """A limit callback may stop the monitor it runs in."""
    sampler = ReplaySampler({"memory_mb": 2000.0})
    rm = ResourceManager(memory_limit_mb=1000, monitor_interval=0.01, sampler=sampler, **isolated)
    rm.add_limit_callback(lambda usage, exceeded: rm.stop_monitoring())
    rm.start_monitoring()
    wait_until(lambda: not rm.is_monitoring)
    calls = sampler.calls
    time.sleep(0.05)
    assert sampler.calls == calls
    rm.close()


def test_concurrent_sampling_keeps_history_consistent(isolated) -> None:
    """Threads sampling alongside the monitor all land in history, in time order."""
    rm = ResourceManager(monitor_interval=0.005, history_size=10_000, **isolated)
    with rm:
        workers = [
            threading.Thread(target=lambda: [rm.get_current_usage() for _ in range(30)])
            for _ in range(3)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    history = rm.history
    assert len(history) >= 90
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(history))
    assert all(u.memory_mb is not None for u in history)


def test_replay_sampler_replays_in_order_and_repeats_the_last(isolated) -> None:
    """ReplaySampler gives each scripted sample once, then the last one again, and is closed."""
    from lensing_ssc.processing.managers.resource._manager import ResourceUsage

    fixed = ResourceUsage(timestamp=1.0, memory_mb=7.0)
    sampler = ReplaySampler({"memory_mb": 5.0}, fixed)
    rm = ResourceManager(sampler=sampler, **isolated)
    seen = [rm.get_current_usage() for _ in range(3)]
    rm.close()
    assert [u.memory_mb for u in seen] == [5.0, 7.0, 7.0]
    # As given, but for the job's memory limit, added where it has one (an rlimit, say).
    assert dataclasses.replace(seen[1], memory_limit_mb=None) == fixed
    assert sampler.calls == 3
    assert sampler.closed
