"""``ResourceManager``: the job's own memory, CPU and disk against the limits that apply.

Covers sampling (the job's process tree and the machine, see :mod:`._sampling`),
the effective memory limit (the lowest of the user's, every cgroup's on the path to the
root, and the rlimits, see :mod:`._limits`), warnings and limits with callbacks,
a background monitor thread, a graceful-stop request, a ring buffer of samples and peaks.

It does not save state or exit: on a breach with ``graceful_stop`` it only raises a flag
and calls stop callbacks; :class:`~lensing_ssc.processing.managers.ManagerContext`
checkpoints and stops. User documentation: ``docs/resource_manager.md``.

Example:
    >>> from lensing_ssc.processing.managers import ResourceManager
    >>> with ResourceManager(memory_limit_mb=8000) as rm:
    ...     report = rm.check_limits()        # raises ResourceError when a limit is exceeded
    ...     usage = rm.get_current_usage()
    >>> usage.memory_mb > 0
    True
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lensing_ssc.core.base.exceptions import ResourceError
from lensing_ssc.core.config import ReadOnlySettings, ResourcesSection, resolve_settings
from lensing_ssc.processing.managers.resource._alerts import CallbackList
from lensing_ssc.processing.managers.resource._limits import (
    CgroupReader,
    MemoryLimit,
    rlimit_memory_limits,
    user_memory_limits,
)
from lensing_ssc.processing.managers.resource._monitor import PeriodicThread
from lensing_ssc.processing.managers.resource._replay import ReplaySampler
from lensing_ssc.processing.managers.resource._report import render_report
from lensing_ssc.processing.managers.resource._sampling import Sampler, UsageSampler
from lensing_ssc.processing.managers.resource._settings import watched_directory
from lensing_ssc.processing.managers.resource._usage import (
    LimitReport,
    ResourceUsage,
    Thresholds,
    evaluate,
    fold_peak,
)

if TYPE_CHECKING:
    from types import TracebackType

    from lensing_ssc.core.config import ProcessingConfig

__all__ = [
    "CgroupReader",
    "LimitReport",
    "MemoryLimit",
    "ReplaySampler",
    "ResourceManager",
    "ResourceUsage",
    "Sampler",
    "Thresholds",
]

_log = logging.getLogger("lensing_ssc.processing.managers.resource")


AlertCallback = Callable[[ResourceUsage, dict[str, str]], object]
StopCallback = Callable[[str], object]
MONITOR_THREAD_NAME = "lensing_ssc-resource-monitor"


class ResourceManager(ReadOnlySettings):
    """Watch this job's memory, CPU, disk and swap against its real limits.

    Args:
        memory_limit_mb: Your own limit on the job's resident memory, in MiB. The effective
            limit is the lowest of it, ``memory_limit_percent`` and the system's limits.
        memory_limit_percent: A limit in percent of the memory the system gives the job
            (its lowest cgroup or rlimit, else the machine's physical memory).
        cpu_limit_percent: Limit on the job's CPU, in percent of one core.
        disk_limit_percent: Limit on the used space of the watched filesystem, in percent.
        disk_min_free_gb: Least free space (GiB) the watched filesystem must keep.
        swap_limit_percent: Limit on the machine's swap use, in percent.
        monitor_interval: Seconds between the monitor's samples (default 1.0).
        warning_fraction: Warn when a figure passes this fraction of its limit (default 0.8).
        history_size: Samples kept in the ring buffer (default 3600).
        graceful_stop: On a breach, request a stop (``stop_requested``, stop callbacks)
            so the main thread can checkpoint and exit before the OOM killer strikes.
        disk_path: Directory whose filesystem is watched; default ``resources.disk_path``,
            else the config's ``run_dir`` (or the current directory), or its nearest
            existing parent.
        config: Settings read from ``config.resources``; explicit arguments win, and
            arguments left ``None`` come from it (else from the section's defaults).
        cgroup_root: Where the cgroup filesystems are mounted.
        proc_cgroup: The file listing this process's cgroups.
        sampler: Takes the samples (closed by :meth:`close`); the built-in one reads
            ``/proc`` and psutil, :class:`ReplaySampler` replays chosen figures in tests.

    Entering a ``with`` block starts the monitor; leaving it closes the manager. All
    methods are thread-safe.

    Example:
        >>> rm = ResourceManager(memory_limit_mb=4000, graceful_stop=True)
        >>> rm.add_limit_callback(lambda usage, exceeded: print(exceeded))
        >>> rm.start_monitoring()
        >>> rm.stop_requested      # poll in the main loop; checkpoint and stop when True
        False
        >>> rm.close()

    Raises:
        ConfigError: for a limit <= 0, a warning fraction outside (0, 1), an interval
            <= 0 or a ``disk_path`` that does not exist, naming the field
            (``resources.memory_limit_mb``), the value and the allowed range.
    """

    _read_only: ClassVar[Mapping[str, tuple[str | None, str]]] = {
        "settings": (
            "resources",
            "pass the settings as arguments (monitor_interval=..., ...) to ResourceManager(...) "
            "or set them in the config's resources section",
        ),
    }

    def __init__(
        self,
        memory_limit_mb: float | None = None,
        *,
        memory_limit_percent: float | None = None,
        cpu_limit_percent: float | None = None,
        disk_limit_percent: float | None = None,
        disk_min_free_gb: float | None = None,
        swap_limit_percent: float | None = None,
        monitor_interval: float | None = None,
        warning_fraction: float | None = None,
        history_size: int | None = None,
        graceful_stop: bool | None = None,
        disk_path: str | Path | None = None,
        config: ProcessingConfig | None = None,
        cgroup_root: str | Path = "/sys/fs/cgroup",
        proc_cgroup: str | Path = "/proc/self/cgroup",
        sampler: Sampler | None = None,
    ) -> None:
        settings = resolve_settings(
            ResourcesSection,
            config,
            none_is_not_given=True,
            memory_limit_mb=memory_limit_mb,
            memory_limit_percent=memory_limit_percent,
            cpu_limit_percent=cpu_limit_percent,
            disk_limit_percent=disk_limit_percent,
            disk_min_free_gb=disk_min_free_gb,
            swap_limit_percent=swap_limit_percent,
            monitor_interval=monitor_interval,
            warning_fraction=warning_fraction,
            history_size=history_size,
            graceful_stop=graceful_stop,
            disk_path=disk_path,
        )
        watched = watched_directory(settings.disk_path, config)
        self.settings = settings.model_copy(update={"disk_path": watched})
        self._cgroups = CgroupReader(cgroup_root, proc_cgroup)
        self._sampler: Sampler = UsageSampler(watched) if sampler is None else sampler
        self._sample_lock = threading.Lock()  # one sample at a time, recorded in order
        self._lock = threading.Lock()  # guards the recorded state below
        self._history: deque[ResourceUsage] = deque(maxlen=self.settings.history_size)
        self._peak: ResourceUsage | None = None
        self._report: LimitReport | None = None
        self._pending_breach: LimitReport | None = None
        self._sampled_at = float("-inf")
        self._samples = 0
        self._warned: frozenset[str] = frozenset()
        self._breached: frozenset[str] = frozenset()
        self._on_warning = CallbackList("warning")
        self._on_limit = CallbackList("limit")
        self._on_stop = CallbackList("stop")
        self._stop_lock = threading.RLock()  # re-entrant: request_stop may run in a signal handler
        self._stop_reason: str | None = None
        self._monitor = PeriodicThread(
            self._take_sample, self.settings.monitor_interval, MONITOR_THREAD_NAME
        )
        self._closed = False
        self._memory_limits: tuple[MemoryLimit, ...] = ()
        self._memory_limit: MemoryLimit | None = None
        self._thresholds = Thresholds()
        self.refresh_limits()

    # -- limits --------------------------------------------------------------------------
    def refresh_limits(self) -> MemoryLimit | None:
        """Re-read the system's memory limits (done at construction); return the effective one."""
        s = self.settings
        system = (*self._cgroups.memory_limits(), *rlimit_memory_limits())
        self._memory_limits = (
            user_memory_limits(system, s.memory_limit_mb, s.memory_limit_percent) + system
        )
        effective = min(self._memory_limits, key=lambda limit: limit.limit_mb, default=None)
        self._memory_limit = effective
        self._thresholds = Thresholds(
            memory_limit_mb=effective.limit_mb if effective else None,
            memory_source=effective.source if effective else None,
            cpu_percent=s.cpu_limit_percent,
            disk_percent=s.disk_limit_percent,
            disk_min_free_gb=s.disk_min_free_gb,
            swap_percent=s.swap_limit_percent,
            warning_fraction=s.warning_fraction,
        )
        return effective

    @property
    def memory_limit(self) -> MemoryLimit | None:
        """The effective memory limit and its source, or ``None`` when nothing limits the job."""
        return self._memory_limit

    @property
    def thresholds(self) -> Thresholds:
        """The limits each sample is judged against, the effective memory limit included."""
        return self._thresholds

    @property
    def memory_limits(self) -> tuple[MemoryLimit, ...]:
        """Every memory limit found (user, cgroups, rlimits); the lowest is the effective one."""
        return self._memory_limits

    # -- sampling ------------------------------------------------------------------------
    def get_current_usage(self) -> ResourceUsage:
        """Take a sample now, record it and judge it (callbacks may fire)."""
        return self._take_sample().usage

    def check_limits(self, raise_on_exceed: bool = True) -> LimitReport:
        """Judge the latest sample against the limits; cheap enough to call in any loop.

        While the monitor runs this serves its latest sample; without it, a new sample is
        taken when the last is older than ``monitor_interval``. A breach the monitor saw
        since the previous call is reported even if the latest sample is back under.

        Raises:
            ResourceError: when a limit is exceeded and ``raise_on_exceed`` is true; its
                ``value`` is the offending :class:`ResourceUsage`.
        """
        report = self._report
        if report is None or (
            not self._monitor.running
            and time.monotonic() - self._sampled_at >= self.settings.monitor_interval
        ):
            report = self._take_sample()
        if self._pending_breach is not None:
            with self._lock:
                pending, self._pending_breach = self._pending_breach, None
            if pending is not None and not report.exceeded:
                report = pending
        if raise_on_exceed and report.exceeded:
            raise ResourceError(
                "; ".join(report.exceeded.values()),
                value=report.usage,
                hint="reduce the job's use (smaller chunks, fewer workers), raise the limit, "
                "or set graceful_stop=True to checkpoint and stop in time",
            )
        return report

    def _take_sample(self) -> LimitReport:
        if self._closed:
            raise ResourceError(
                "this ResourceManager is closed", hint="create a new one to keep measuring"
            )
        with self._sample_lock:
            usage = self._sampler.sample()
            if usage.memory_limit_mb is None and self._thresholds.memory_limit_mb is not None:
                usage = dataclasses.replace(usage, memory_limit_mb=self._thresholds.memory_limit_mb)
            report = evaluate(usage, self._thresholds)
            with self._lock:
                self._history.append(usage)
                self._peak = fold_peak(self._peak, usage)
                self._samples += 1
                self._report = report
                self._sampled_at = time.monotonic()
                new_warnings = report.warnings.keys() - self._warned
                new_breaches = report.exceeded.keys() - self._breached
                self._warned = frozenset(report.warnings)
                self._breached = frozenset(report.exceeded)
                if report.exceeded:
                    self._pending_breach = report
        if new_warnings:
            _log.warning("resource warning: %s", "; ".join(report.warnings.values()))
            self._on_warning.notify(usage, dict(report.warnings))
        if new_breaches:
            _log.error("resource limit exceeded: %s", "; ".join(report.exceeded.values()))
            self._on_limit.notify(usage, dict(report.exceeded))
            if self.settings.graceful_stop:
                self.request_stop("resource limit exceeded: " + ", ".join(sorted(report.exceeded)))
        return report

    # -- callbacks and graceful stop ----------------------------------------------------
    def add_warning_callback(self, callback: AlertCallback) -> None:
        """Call ``callback(usage, warnings)`` when a figure newly passes its warning fraction.

        A figure that jumps past its limit within one sample warns too. ``warnings`` maps
        resource names (``"memory"``, ``"cpu"``, ``"disk"``, ``"disk_free"``, ``"swap"``)
        to messages. Exceptions in it are logged.
        """
        self._on_warning.add(callback)

    def add_limit_callback(self, callback: AlertCallback) -> None:
        """Call ``callback(usage, exceeded)`` when a figure newly passes its limit."""
        self._on_limit.add(callback)

    def add_stop_callback(self, callback: StopCallback) -> None:
        """Call ``callback(reason)`` once, when a stop is first requested."""
        self._on_stop.add(callback)

    def request_stop(self, reason: str) -> bool:
        """Ask the main thread to stop; returns ``False`` if a stop was already requested.

        Called on a breach when ``graceful_stop`` is on; call it yourself from a signal
        handler (e.g. SLURM's ``--signal=B:USR1@120``) to stop the same way.
        """
        with self._stop_lock:
            if self._stop_reason is not None:
                return False
            self._stop_reason = reason
        _log.warning("stop requested: %s", reason)
        self._on_stop.notify(reason)
        return True

    @property
    def stop_requested(self) -> bool:
        """``True`` once a stop was requested (by a breach or :meth:`request_stop`)."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """Why the stop was requested, or ``None``."""
        return self._stop_reason

    # -- monitor thread ------------------------------------------------------------------
    def start_monitoring(self) -> None:
        """Start the background monitor (a daemon thread); no-op if it runs already."""
        if self._closed:
            raise ResourceError("cannot start monitoring: this ResourceManager is closed")
        self._monitor.start()

    def stop_monitoring(self) -> None:
        """Stop the monitor and wait for it; no-op if it is not running."""
        self._monitor.stop()

    @property
    def is_monitoring(self) -> bool:
        """Whether the background monitor is running."""
        return self._monitor.running

    # -- history and status --------------------------------------------------------------
    @property
    def history(self) -> tuple[ResourceUsage, ...]:
        """The recorded samples, oldest first (at most ``history_size``)."""
        with self._lock:
            return tuple(self._history)

    @property
    def peak_usage(self) -> ResourceUsage:
        """The worst value of each figure over all samples (taking one if there is none)."""
        peak = self._peak
        return peak if peak is not None else self._take_sample().usage

    def get_status(self) -> dict[str, Any]:
        """JSON-ready snapshot: limits, the latest sample and its judgement, peaks, stop state.

        Takes a sample when there is none yet, unless the manager is closed (then the
        figures are ``None``).
        """
        report = self._report
        if report is None and not self._closed:
            report = self._take_sample()
        peak = self._peak
        return {
            "monitoring": self.is_monitoring,
            "monitor_interval": self.settings.monitor_interval,
            "samples": self._samples,
            "disk_path": str(self.settings.disk_path),
            "memory_limit": self._memory_limit.to_dict() if self._memory_limit else None,
            "memory_limits": [limit.to_dict() for limit in self._memory_limits],
            "thresholds": self.thresholds.to_dict(),
            "current": report.usage.to_dict() if report is not None else None,
            "peak": peak.to_dict() if peak else None,
            "warnings": dict(report.warnings) if report is not None else {},
            "exceeded": dict(report.exceeded) if report is not None else {},
            "graceful_stop": self.settings.graceful_stop,
            "stop_requested": self.stop_requested,
            "stop_reason": self._stop_reason,
        }

    def get_usage_report(self) -> str:
        """A human-readable report: the memory limit and its source, current and peak figures."""
        return render_report(self.get_status())

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the monitor and release the sampler; safe to call twice."""
        if self._closed:
            return
        self.stop_monitoring()
        self._closed = True
        self._sampler.close()

    def __enter__(self) -> ResourceManager:
        """Start monitoring for the block's duration."""
        self.start_monitoring()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
