"""ResourceManager: the documented API, check_limits, each limit and warning, settings.

Most tests script the samples (a fake sampler) so every limit can be crossed on purpose;
the README examples use the real sampler. Callbacks, stop, history and the monitor thread
are in ``test_resource_monitor.py``.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ConfigError, ResourceError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ResourceManager
from lensing_ssc.processing.managers.resource._manager import (
    MONITOR_THREAD_NAME,
    LimitReport,
    ReplaySampler,
    ResourceUsage,
)


def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)


# -- the README's examples -----------------------------------------------------------------
def test_readme_basic_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's context-manager example checks limits and prints the job's memory."""
    with ResourceManager(memory_limit_mb=8000) as rm:
        rm.check_limits()  # Raises exception if exceeded
        usage = rm.get_current_usage()
        print(f"Memory: {usage.memory_mb:.1f}MB")
    assert capsys.readouterr().out.startswith("Memory: ")
    assert usage.memory_mb is not None
    assert 0 < usage.memory_mb < 8000


def test_readme_callback_example_warns_from_the_monitor(isolated: dict[str, Any]) -> None:
    """A warning callback registered as in the README is called by the monitor thread."""
    seen: list[tuple[ResourceUsage, dict[str, str], str]] = []

    def on_warning(usage, warnings):
        seen.append((usage, warnings, threading.current_thread().name))

    sampler = ReplaySampler({"memory_mb": 3300.0})
    rm = ResourceManager(memory_limit_mb=4000, monitor_interval=0.01, sampler=sampler, **isolated)
    rm.add_warning_callback(on_warning)
    rm.start_monitoring()
    try:
        wait_until(lambda: seen)
    finally:
        rm.close()
    usage, warnings, thread_name = seen[0]
    assert usage.memory_mb == 3300.0
    assert warnings == {
        "memory": "job memory 3300.0 MB is 82% of the 4000.0 MB limit (user): warning at 80%"
    }
    assert thread_name == MONITOR_THREAD_NAME


# -- check_limits ------------------------------------------------------------------------
def test_check_limits_raises_naming_the_figure_limit_and_source(isolated) -> None:
    """An exceeded memory limit raises ResourceError with the figures and the offending sample."""
    sampler = ReplaySampler({"memory_mb": 4100.0})
    rm = ResourceManager(memory_limit_mb=4000, sampler=sampler, **isolated)
    with rm, pytest.raises(ResourceError) as caught:
        rm.check_limits()
    message = str(caught.value)
    assert message.startswith(
        "job memory 4100.0 MB is 102% of the 4000.0 MB limit (user): limit exceeded"
    )
    assert "set graceful_stop=True to checkpoint and stop in time" in message  # the hint
    assert isinstance(caught.value.value, ResourceUsage)
    assert caught.value.value.memory_mb == 4100.0


def test_check_limits_without_raising_returns_the_report(isolated) -> None:
    """raise_on_exceed=False returns a report listing the exceeded resources instead."""
    sampler = ReplaySampler({"memory_mb": 4100.0})
    with ResourceManager(memory_limit_mb=4000, sampler=sampler, **isolated) as rm:
        report = rm.check_limits(raise_on_exceed=False)
    assert isinstance(report, LimitReport)
    assert not report.ok
    assert set(report.exceeded) == {"memory"}
    assert report.usage.memory_fraction == pytest.approx(4100 / 4000)


def test_limit_report_is_true_when_a_limit_is_exceeded(isolated) -> None:
    """A report with an exceeded limit is true, so ``if rm.check_limits(...)`` means exceeded."""
    sampler = ReplaySampler({"memory_mb": 4100.0})
    with ResourceManager(memory_limit_mb=4000, sampler=sampler, **isolated) as rm:
        report = rm.check_limits(raise_on_exceed=False)
        status = rm.get_status()
    assert bool(report) is True
    assert status["exceeded"] == dict(report.exceeded)


def test_limit_report_is_false_under_the_limits_even_with_warnings(isolated) -> None:
    """A report with only warnings, or nothing to report, is false and its status still shows."""
    with ResourceManager(
        memory_limit_mb=4000, sampler=ReplaySampler({"memory_mb": 3300.0}), **isolated
    ) as rm:
        warned = rm.check_limits(raise_on_exceed=False)
        status = rm.get_status()
    with ResourceManager(
        memory_limit_mb=4000, sampler=ReplaySampler({"memory_mb": 100.0}), **isolated
    ) as rm:
        quiet = rm.check_limits(raise_on_exceed=False)
    assert set(warned.warnings) == {"memory"}
    assert bool(warned) is False
    assert status["current"]["memory_mb"] == 3300.0
    assert status["warnings"] == dict(warned.warnings)
    assert bool(quiet) is False
    assert quiet.ok


def test_assigning_settings_after_construction_is_refused(isolated) -> None:
    """Replacing rm.settings raises ConfigError saying to pass the settings to the constructor."""
    with ResourceManager(memory_limit_mb=4000, sampler=ReplaySampler(), **isolated) as rm:
        before = rm.settings
        with pytest.raises(ConfigError) as caught:
            rm.settings = before.model_copy(update={"memory_limit_mb": 9000.0})
        assert rm.settings is before
    assert str(caught.value).startswith(
        "ResourceManager.settings is read-only after construction: assigning it would change "
        "nothing the manager already built"
    )
    assert "pass the settings as arguments (monitor_interval=..., ...) to ResourceManager(...)" in (
        str(caught.value)
    )
    assert caught.value.field == "resources"


def test_check_limits_between_samples_serves_the_monitors_sample(isolated) -> None:
    """While the monitor runs, check_limits never samples and takes microseconds."""
    sampler = ReplaySampler({"memory_mb": 100.0})
    with ResourceManager(
        memory_limit_mb=4000, monitor_interval=60, sampler=sampler, **isolated
    ) as rm:
        wait_until(lambda: sampler.calls >= 1)
        timings = []
        for _ in range(2000):
            start = time.perf_counter()
            rm.check_limits()
            timings.append(time.perf_counter() - start)
        assert sampler.calls == 1
    assert sorted(timings)[len(timings) // 2] < 20e-6


def test_check_limits_without_monitor_resamples_once_per_interval(isolated) -> None:
    """Without the monitor, check_limits samples only when the last sample is an interval old."""
    sampler = ReplaySampler({"memory_mb": 100.0})
    rm = ResourceManager(memory_limit_mb=4000, monitor_interval=0.2, sampler=sampler, **isolated)
    try:
        for _ in range(100):
            rm.check_limits()
        assert sampler.calls == 1
        time.sleep(0.25)
        rm.check_limits()
        assert sampler.calls == 2
    finally:
        rm.close()


def test_breach_seen_by_monitor_raises_at_next_check_even_if_gone(isolated) -> None:
    """A breach the monitor saw makes the next check_limits raise once, though memory fell back."""
    sampler = ReplaySampler({"memory_mb": 5000.0}, {"memory_mb": 100.0})
    with ResourceManager(
        memory_limit_mb=4000, monitor_interval=0.01, sampler=sampler, **isolated
    ) as rm:
        wait_until(lambda: sampler.calls >= 3)
        with pytest.raises(ResourceError, match=r"job memory 5000\.0 MB"):
            rm.check_limits()
        assert rm.check_limits().ok


def test_breach_raises_on_every_check_while_it_lasts(isolated) -> None:
    """While the latest sample is over a limit, each check_limits call raises."""
    sampler = ReplaySampler({"memory_mb": 5000.0})
    with ResourceManager(
        memory_limit_mb=4000, monitor_interval=60, sampler=sampler, **isolated
    ) as rm:
        for _ in range(3):
            with pytest.raises(ResourceError):
                rm.check_limits()
        assert sampler.calls == 1


@pytest.mark.parametrize(
    ("kwargs", "figures", "resource", "message"),
    [
        (
            {"cpu_limit_percent": 150},
            {"cpu_percent": 190.0},
            "cpu",
            "job CPU 190% against the 150.0% limit: limit exceeded",
        ),
        (
            {"disk_limit_percent": 90},
            {"disk_percent": 95.5},
            "disk",
            "disk 95.5% used against the 90.0% limit: limit exceeded",
        ),
        (
            {"disk_min_free_gb": 10},
            {"disk_free_gb": 4.0},
            "disk_free",
            "disk has 4.00 GB free, the minimum is 10.0 GB: limit exceeded",
        ),
        (
            {"swap_limit_percent": 50},
            {"swap_percent": 75.0},
            "swap",
            "swap 75.0% used against the 50.0% limit: limit exceeded",
        ),
        (
            {"memory_limit_mb": 1000},
            {"memory_mb": 1200.0},
            "memory",
            "job memory 1200.0 MB is 120% of the 1000.0 MB limit (user): limit exceeded",
        ),
    ],
)
def test_each_limit_is_enforced(isolated, kwargs, figures, resource, message) -> None:
    """CPU, disk percent, disk free space, swap and memory limits each report their breach."""
    with ResourceManager(sampler=ReplaySampler(figures), **kwargs, **isolated) as rm:
        report = rm.check_limits(raise_on_exceed=False)
    assert report.exceeded == {resource: message}
    assert report.warnings == report.exceeded  # past the limit is past the warning level too


@pytest.mark.parametrize(
    ("fraction", "figures", "warned"),
    [
        (0.8, {"memory_mb": 850.0, "disk_free_gb": 12.0}, {"memory", "disk_free"}),
        (0.9, {"memory_mb": 850.0, "disk_free_gb": 12.0}, set()),
        (0.9, {"memory_mb": 950.0, "disk_free_gb": 11.0}, {"memory", "disk_free"}),
    ],
)
def test_warning_fraction_sets_when_figures_warn(isolated, fraction, figures, warned) -> None:
    """A figure warns once it passes warning_fraction of its limit (free space: limit/fraction)."""
    rm = ResourceManager(
        memory_limit_mb=1000,
        disk_min_free_gb=10,
        warning_fraction=fraction,
        sampler=ReplaySampler(figures),
        **isolated,
    )
    with rm:
        report = rm.check_limits()
    assert set(report.warnings) == warned
    assert report.ok


def test_unreadable_figures_are_not_judged(isolated) -> None:
    """Figures the sampler could not read (None) never warn or exceed, and never crash."""
    rm = ResourceManager(
        memory_limit_mb=1,
        cpu_limit_percent=1,
        disk_min_free_gb=1,
        sampler=ReplaySampler({}),
        **isolated,
    )
    with rm:
        report = rm.check_limits()
    assert (report.warnings, report.exceeded) == ({}, {})


# -- configuration and bad input ---------------------------------------------------------
def test_settings_come_from_config_and_explicit_arguments_win(tmp_path: Path) -> None:
    """Config values apply; an explicit argument overrides its config value."""
    config = ProcessingConfig(
        run_dir=tmp_path,
        resources={
            "memory_limit_mb": 500,
            "cpu_limit_percent": 150,
            "monitor_interval": 0.5,
            "warning_fraction": 0.7,
            "history_size": 10,
            "graceful_stop": True,
        },
    )
    rm = ResourceManager(
        memory_limit_mb=300, monitor_interval=2.0, config=config, sampler=ReplaySampler()
    )
    s = rm.settings
    rm.close()
    assert (s.memory_limit_mb, s.monitor_interval) == (300.0, 2.0)
    assert (s.cpu_limit_percent, s.warning_fraction, s.history_size, s.graceful_stop) == (
        150.0,
        0.7,
        10,
        True,
    )
    assert s.disk_path == tmp_path


def test_disk_path_defaults_to_run_dir_or_its_nearest_existing_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watched filesystem is the run directory's, even before it exists; else the cwd's."""
    config = ProcessingConfig(run_dir=tmp_path / "runs" / "new")
    rm = ResourceManager(config=config, sampler=ReplaySampler())
    assert rm.settings.disk_path == tmp_path
    rm.close()
    monkeypatch.chdir(tmp_path)
    rm = ResourceManager(sampler=ReplaySampler())
    assert rm.settings.disk_path == tmp_path
    rm.close()


def test_disk_path_comes_from_the_config_unless_given(tmp_path: Path) -> None:
    """resources.disk_path is a setting: the argument, else the config, else run_dir's."""
    (tmp_path / "scratch").mkdir()
    config = ProcessingConfig(
        run_dir=tmp_path / "run", resources={"disk_path": tmp_path / "scratch"}
    )
    with ResourceManager(config=config, sampler=ReplaySampler()) as rm:
        assert rm.settings.disk_path == tmp_path / "scratch"
    with ResourceManager(disk_path=tmp_path, config=config, sampler=ReplaySampler()) as rm:
        assert rm.settings.disk_path == tmp_path
    with ResourceManager(config=ProcessingConfig(run_dir=tmp_path), sampler=ReplaySampler()) as rm:
        assert rm.settings.disk_path == tmp_path


def test_none_leaves_a_limit_to_the_config() -> None:
    """memory_limit_mb=None (as ManagerContext passes it) keeps the config's limit."""
    config = ProcessingConfig(resources={"memory_limit_mb": 4000})
    rm = ResourceManager(None, config=config, sampler=ReplaySampler())
    rm.close()
    assert rm.settings.memory_limit_mb == 4000


POSITIVE = r"\(use a number greater than 0, or null for the default\)$"
PERCENT = r"\(use a number greater than 0 and at most 100, or null for the default\)$"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory_limit_mb": 0}, "Input should be greater than 0 " + POSITIVE),
        ({"memory_limit_mb": -5}, "Input should be greater than 0 " + POSITIVE),
        ({"memory_limit_mb": math.inf}, "Input should be a finite number " + POSITIVE),
        ({"memory_limit_mb": math.nan}, "Input should be a finite number " + POSITIVE),
        ({"memory_limit_mb": "8000"}, "Input should be a valid number " + POSITIVE),
        ({"memory_limit_mb": True}, "Input should be a number, not true or false " + POSITIVE),
        ({"memory_limit_percent": 0}, "Input should be greater than 0 " + PERCENT),
        ({"memory_limit_percent": 101}, "Input should be less than or equal to 100 " + PERCENT),
        ({"cpu_limit_percent": -1}, "Input should be greater than 0 " + POSITIVE),
        ({"disk_limit_percent": 150}, "Input should be less than or equal to 100 " + PERCENT),
        ({"disk_min_free_gb": 0}, "Input should be greater than 0 " + POSITIVE),
        ({"swap_limit_percent": -2}, "Input should be greater than 0 " + PERCENT),
        ({"monitor_interval": 0}, r"greater than 0 \(use a number greater than 0\)$"),
        ({"monitor_interval": -1.5}, r"greater than 0 \(use a number greater than 0\)$"),
        ({"warning_fraction": 0}, r"\(use a number greater than 0 and less than 1\)$"),
        ({"warning_fraction": 1}, r"less than 1 \(use a number greater than 0 and less than 1\)$"),
        ({"warning_fraction": 1.5}, r"\(use a number greater than 0 and less than 1\)$"),
        ({"history_size": 0}, r"greater than 0 \(use a whole number greater than 0\)$"),
        ({"history_size": 2.5}, r"valid integer \(use a whole number greater than 0\)$"),
        ({"graceful_stop": "yes"}, r"Input should be a valid boolean$"),
    ],
)
def test_bad_settings_raise_config_error_naming_field_and_value(kwargs, message) -> None:
    """Each invalid setting raises ConfigError naming the field, the value and the range."""
    ((name, value),) = kwargs.items()
    with pytest.raises(ConfigError, match=message) as caught:
        ResourceManager(sampler=ReplaySampler(), **kwargs)
    assert str(caught.value).startswith(f"invalid value {value!r} for 'resources.{name}': ")
    assert caught.value.field == f"resources.{name}"
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(caught.value.value)
    else:
        assert caught.value.value == value


def test_disk_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    """An explicit disk_path that does not exist raises ConfigError naming the path."""
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(ConfigError) as caught:
        ResourceManager(disk_path=missing, sampler=ReplaySampler())
    assert str(caught.value).startswith(f"disk_path {str(missing)!r} does not exist")
    assert (caught.value.field, caught.value.value) == ("resources.disk_path", str(missing))


# -- properties of the judgement ---------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    memory=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=20),
    limit=st.floats(1, 1e6, allow_nan=False),
    fraction=st.floats(0.05, 0.95),
)
def test_judgement_and_peak_follow_the_figures(memory, limit, fraction) -> None:
    """Exceeded iff above the limit, warned iff at or above fraction x limit; peak is the max."""
    from lensing_ssc.processing.managers.resource._usage import Thresholds, evaluate, fold_peak

    thresholds = Thresholds(memory_limit_mb=limit, memory_source="user", warning_fraction=fraction)
    peak = None
    for value in memory:
        usage = ResourceUsage(timestamp=0.0, memory_mb=value, memory_limit_mb=limit)
        report = evaluate(usage, thresholds)
        assert ("memory" in report.exceeded) == (value > limit)
        assert ("memory" in report.warnings) == (value >= fraction * limit)
        peak = fold_peak(peak, usage)
    assert peak is not None
    assert peak.memory_mb == max(memory)


def test_resource_usage_is_frozen_and_module_exports_are_exact() -> None:
    """Samples cannot be altered after the fact, and the module exports its sorted public names."""
    import dataclasses

    from lensing_ssc.processing.managers.resource import _manager as resource_manager

    usage = ResourceUsage(timestamp=0.0, memory_mb=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.memory_mb = 2.0  # type: ignore[misc]
    assert resource_manager.__all__ == sorted(resource_manager.__all__)
    assert set(resource_manager.__all__) == {
        "CgroupReader",
        "LimitReport",
        "MemoryLimit",
        "ReplaySampler",
        "ResourceManager",
        "ResourceUsage",
        "Sampler",
        "Thresholds",
    }
