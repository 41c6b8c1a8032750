"""LogManager's public surface: the README's examples, loggers, hygiene, config, stats, errors."""

from __future__ import annotations

import ast
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.core.base.exceptions import ConfigError, LoggingError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _manager as log_manager_module
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._timing import EXACT_SAMPLES, TimingRecorder

SRC = Path(log_manager_module.__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


def read_json(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_readme_example_works_as_written(tmp_path: Path) -> None:
    """The README's LogManager example runs and writes JSON lines with context and timings."""
    log_mgr = LogManager(
        level="INFO", file_path=tmp_path / "logs/processing.log", format_type="json", console=False
    )
    logger = log_mgr.get_logger("my_module")
    logger.info("Processing started")
    with log_mgr.log_context(operation="data_processing", step="validation"):
        logger.info("Validating input data")

    @log_mgr.performance.time_function("expensive_operation")
    def expensive_operation() -> str:
        return "done"

    assert expensive_operation() == "done"
    with log_mgr.performance.time_operation("batch_processing"):
        pass
    log_mgr.close()

    lines = read_json(tmp_path / "logs/processing.log")
    by_message = {line["message"]: line for line in lines}
    assert by_message["Processing started"]["logger"] == "lensing_ssc.my_module"
    validating = by_message["Validating input data"]
    assert (validating["operation"], validating["step"]) == ("data_processing", "validation")
    assert "operation" not in by_message["Processing started"]
    timers = {line["timer"] for line in lines if "timer" in line}
    assert timers == {"expensive_operation", "batch_processing"}


def test_get_logger_names_and_identity(tmp_path: Path) -> None:
    """Plain names go under lensing_ssc, package and captured names stay, repeats are one logger."""
    with LogManager(console=False, capture=("mypipeline",)) as log_mgr:
        assert log_mgr.get_logger("my_module").name == "lensing_ssc.my_module"
        assert log_mgr.get_logger("lensing_ssc.analysis").name == "lensing_ssc.analysis"
        assert log_mgr.get_logger("mypipeline.stage").name == "mypipeline.stage"
        assert log_mgr.get_logger().name == "lensing_ssc"
        assert log_mgr.get_logger("x") is log_mgr.get_logger("x")


def test_get_logger_twice_writes_each_record_once(tmp_path: Path) -> None:
    """Calling get_logger twice adds no handler: one call, one line."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False) as log_mgr:
        log_mgr.get_logger("dup")
        log_mgr.get_logger("dup").info("once")
    assert path.read_text().count("once") == 1


def test_second_manager_takes_over_without_duplicates(tmp_path: Path) -> None:
    """Two open managers never write a record twice; closing the newer one hands back."""
    first_path, second_path = tmp_path / "a.log", tmp_path / "b.log"
    first = LogManager(file_path=first_path, console=False)
    second = LogManager(file_path=second_path, console=False)
    logger = first.get_logger("takeover")
    logger.info("while both open")
    second.close()
    logger.info("after the second closed")
    first.close()
    assert "while both open" not in first_path.read_text()
    assert second_path.read_text().count("while both open") == 1
    assert first_path.read_text().count("after the second closed") == 1
    assert "after the second closed" not in second_path.read_text()


def test_close_restores_package_logger(tmp_path: Path) -> None:
    """After the last manager closes, the lensing_ssc logger is as it was before."""
    package = logging.getLogger("lensing_ssc")
    before = (list(package.handlers), package.level, package.propagate)
    LogManager(level="DEBUG", console=False).close()
    assert (list(package.handlers), package.level, package.propagate) == before


def test_root_and_other_libraries_untouched(tmp_path: Path) -> None:
    """A manager changes neither the root logger nor other libraries' loggers, nor writes theirs."""
    root = logging.getLogger()
    other = logging.getLogger("otherlib")
    before = (list(root.handlers), root.level, list(other.handlers), other.level, other.propagate)
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False):
        during = (
            list(root.handlers),
            root.level,
            list(other.handlers),
            other.level,
            other.propagate,
        )
        other.warning("from another library")
    assert during == before
    assert "from another library" not in path.read_text()


@pytest.mark.parametrize(
    "asked",
    [{"capture_root": True}, {"capture": "root"}, {"capture": ["mypipeline", "root"]}],
    ids=["capture_root=True", "capture='root'", "'root' among the names"],
)
def test_capture_root_writes_every_library_then_restores(
    tmp_path: Path, asked: dict[str, Any]
) -> None:
    """Capturing the root writes other libraries' records once and puts the root back on close."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False, **asked) as log_mgr:
        logging.getLogger("otherlib").info("from another library")
        log_mgr.get_logger("mine").info("from the package")
        assert log_mgr.get_logger("otherlib").name == "otherlib"
    text = path.read_text()
    assert text.count("from another library") == 1
    assert text.count("from the package") == 1
    assert (list(root.handlers), root.level) == before


def test_capture_named_logger(tmp_path: Path) -> None:
    """A captured logger's records (and its children's) are written, once each."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False, capture=("mypipeline",)):
        logging.getLogger("mypipeline.stage").info("stage record")
    assert path.read_text().count("stage record") == 1


def test_records_do_not_reach_root_handlers_unless_propagate(tmp_path: Path) -> None:
    """By default the root's handlers (e.g. basicConfig) do not repeat our records."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    collect = Collect()
    logging.getLogger().addHandler(collect)
    try:
        with LogManager(console=False) as log_mgr:
            log_mgr.get_logger("p").warning("not propagated")
        with LogManager(console=False, propagate=True) as log_mgr:
            log_mgr.get_logger("p").warning("propagated")
    finally:
        logging.getLogger().removeHandler(collect)
    assert seen == ["propagated"]


def test_package_modules_log_under_lensing_ssc() -> None:
    """Every logger the package names in its source is under lensing_ssc (or __name__)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not node.args[0].value.startswith("lensing_ssc")
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_manager_records_use_package_loggers(tmp_path: Path) -> None:
    """Timing, operation, metric and error records come from lensing_ssc.* loggers."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log_mgr.performance.record("t", 0.5)
        log_mgr.log_operation_start("op")
        log_mgr.log_operation_end("op")
        log_mgr.log_performance_metric("rate", 2.0, unit="maps/s")
        log_mgr.log_error("bad thing")
    loggers = {line["logger"] for line in read_json(path)}
    assert loggers == {"lensing_ssc.performance", "lensing_ssc.operations", "lensing_ssc.errors"}


def test_below_level_records_are_not_written(tmp_path: Path) -> None:
    """DEBUG records are skipped at INFO and written at DEBUG."""
    path = tmp_path / "run.log"
    with LogManager(level="info", file_path=path, console=False) as log_mgr:
        log_mgr.get_logger("lvl").debug("hidden")
        log_mgr.get_logger("lvl").info("shown")
    with LogManager(level=logging.DEBUG, file_path=path, console=False) as log_mgr:
        log_mgr.get_logger("lvl").debug("now shown")
    text = path.read_text()
    assert "hidden" not in text
    assert "shown" in text
    assert "now shown" in text


def test_config_gives_defaults_and_arguments_override(tmp_path: Path) -> None:
    """Without arguments the config's logging section applies; explicit arguments win."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run", logging={"level": "DEBUG", "format": "json", "console": False}
    )
    with LogManager(config=config) as log_mgr:
        log_mgr.get_logger("cfg").debug("from config")
        status = log_mgr.get_status()
    assert status["file"] == str(tmp_path / "run/logs/lensing_ssc.log")
    assert (status["level"], status["format"], status["console"]) == ("DEBUG", "json", False)
    assert read_json(config.log_file)[0]["message"] == "from config"
    other = tmp_path / "other.log"
    with LogManager(
        level="WARNING", file_path=other, format_type="standard", config=config
    ) as log_mgr:
        status = log_mgr.get_status()
    assert (status["level"], status["format"], status["file"]) == (
        "WARNING",
        "standard",
        str(other),
    )


def test_writer_and_capture_settings_come_from_the_config_unless_given(tmp_path: Path) -> None:
    """logging.capture and the writer's settings are read from the config; arguments win."""
    config = ProcessingConfig(
        run_dir=tmp_path, logging={"console": False, "capture": ["mine"], "queue_size": 50}
    )
    with LogManager(config=config) as log_mgr:
        assert log_mgr.get_status()["loggers"] == ["lensing_ssc", "mine"]
        assert log_mgr.get_logger("mine.sub").name == "mine.sub"
    with LogManager(capture=("other",), config=config) as log_mgr:
        assert log_mgr.get_status()["loggers"] == ["lensing_ssc", "other"]
    with LogManager(console=False) as log_mgr:
        assert log_mgr.get_status()["loggers"] == ["lensing_ssc"]


def test_a_level_number_is_a_level_in_the_config_too(tmp_path: Path) -> None:
    """A level may be a number (logging.DEBUG + 5) in the config as in the constructor."""
    config = ProcessingConfig(run_dir=tmp_path, logging={"level": 15, "console": False})
    with LogManager(config=config) as log_mgr:
        assert log_mgr.get_status()["level"] == "Level 15"
    with LogManager(level=logging.ERROR, console=False) as log_mgr:
        assert log_mgr.get_status()["level"] == "ERROR"


@pytest.mark.parametrize("name", ["level", "timing_level"])
@pytest.mark.parametrize("level", ["VERBOSE", "", -1, True, 2.5])
def test_unknown_level_is_a_config_error(name: str, level: object) -> None:
    """An unknown level raises ConfigError naming the field and value, listing the levels."""
    with pytest.raises(ConfigError) as info:
        LogManager(console=False, **{name: level})  # type: ignore[arg-type]
    assert str(info.value).startswith(f"invalid value {level!r} for 'logging.{name}': ")
    levels = "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (any case), or a level number"
    assert f"{levels} at least 0" in str(info.value)
    assert (info.value.field, info.value.value) == (f"logging.{name}", level)


def test_unknown_format_is_a_config_error() -> None:
    """An unknown format raises ConfigError naming the field and listing the three formats."""
    with pytest.raises(
        ConfigError,
        match=r"^invalid value 'xml' for 'logging\.format': "
        r"Input should be 'standard', 'json' or 'detailed'$",
    ) as info:
        LogManager(format_type="xml", console=False)
    assert (info.value.field, info.value.value) == ("logging.format", "xml")


@pytest.mark.parametrize("name", ["file", "dir"])
def test_unwritable_path_fails_at_construction(tmp_path: Path, name: str) -> None:
    """A log path that cannot be opened raises LoggingError when the manager is built."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    path = blocker / "run.log" if name == "file" else tmp_path
    with pytest.raises(LoggingError, match="cannot open log file") as info:
        LogManager(file_path=path, console=False)
    assert info.value.value == str(path)
    assert _attached_handlers() == []


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"max_bytes": 0}, "max_bytes", r"\(use a whole number greater than 0, or null\)$"),
        ({"backup_count": -1}, "backup_count", r"\(use a whole number at least 0\)$"),
        ({"flush_interval": 0}, "flush_interval", r"\(use a number greater than 0\)$"),
        ({"queue_size": 0}, "queue_size", r"\(use a whole number at least 1\)$"),
        ({"queue_size": 2.5}, "queue_size", r"valid integer \(use a whole number at least 1\)$"),
        (
            {"retention_days": -2},
            "retention_days",
            r"\(use a number greater than 0, or null for the default\)$",
        ),
        ({"capture": "mypipeline"}, "capture", r"a list of names or .root., not one string$"),
        ({"capture_root": "yes"}, "capture_root", r"Input should be a valid boolean$"),
        ({"propagate": 1}, "propagate", r"Input should be a valid boolean$"),
        ({"handle_sigterm": "no"}, "handle_sigterm", r"Input should be a valid boolean$"),
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict, field: str, message: str) -> None:
    """Each invalid setting raises ConfigError naming the field, the value and the range."""
    ((_, value),) = kwargs.items()
    with pytest.raises(ConfigError, match=message) as info:
        LogManager(console=False, **kwargs)
    assert str(info.value).startswith(f"invalid value {value!r} for 'logging.{field}': ")
    assert (info.value.field, info.value.value) == (f"logging.{field}", value)


def test_non_string_logger_name_is_a_logging_error() -> None:
    """get_logger with a non-string name raises LoggingError."""
    with (
        LogManager(console=False) as log_mgr,
        pytest.raises(LoggingError, match="logger name must be a string, got 42"),
    ):
        log_mgr.get_logger(42)  # type: ignore[arg-type]


def test_sigterm_option_needs_main_thread() -> None:
    """handle_sigterm=True from another thread raises LoggingError before attaching anything."""
    errors: list[BaseException] = []

    def build() -> None:
        try:
            LogManager(console=False, handle_sigterm=True)
        except LoggingError as exc:
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "needs the main thread" in str(errors[0])
    assert _attached_handlers() == []


def test_timing_statistics_are_exact_below_the_cap(tmp_path: Path) -> None:
    """count, total, mean, p50, p95, max of recorded timings match the exact values."""
    with LogManager(console=False, timing_level="DEBUG") as log_mgr:
        for ms in range(1, 101):
            log_mgr.performance.record("step", ms / 1000)
        stats = log_mgr.get_stats().timings["step"]
    assert stats.count == 100
    assert stats.total_s == pytest.approx(5.05)
    assert stats.mean_s == pytest.approx(0.0505)
    assert stats.p50_s == pytest.approx(0.0505)
    assert stats.p95_s == pytest.approx(0.09505)
    assert (stats.min_s, stats.max_s) == (0.001, 0.1)
    assert stats.exact_percentiles


def test_timing_statistics_stay_bounded_past_the_cap() -> None:
    """Past EXACT_SAMPLES timings, count/total/max stay exact and percentiles stay close."""
    recorder = TimingRecorder()
    n = EXACT_SAMPLES * 3
    for i in range(n):
        recorder.add("op", i / n)
    stats = recorder.snapshot()["op"]
    assert stats.count == n
    assert stats.max_s == (n - 1) / n
    assert not stats.exact_percentiles
    assert stats.p50_s == pytest.approx(0.5, abs=0.03)
    assert stats.p95_s == pytest.approx(0.95, abs=0.02)


def test_failed_operations_are_counted_and_reraised(tmp_path: Path) -> None:
    """A timed block that raises re-raises, and counts as a failure in the stats."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        with pytest.raises(KeyError), log_mgr.performance.time_operation("load"):
            raise KeyError("missing")
        stats = log_mgr.get_stats().timings["load"]
    assert (stats.count, stats.failures) == (1, 1)
    line = read_json(path)[0]
    assert (line["success"], line["error"]) == (False, "KeyError")


def test_async_function_timing(tmp_path: Path) -> None:
    """time_function times coroutine functions by awaiting them."""
    import asyncio

    with LogManager(console=False) as log_mgr:

        @log_mgr.performance.time_function()
        async def fetch() -> int:
            await asyncio.sleep(0.01)
            return 7

        assert asyncio.run(fetch()) == 7
        stats = log_mgr.get_stats().timings
    name = next(iter(stats))
    assert name.endswith("fetch")
    assert stats[name].total_s >= 0.009


def test_timers_by_token_and_name(tmp_path: Path) -> None:
    """start_timer/end_timer work by token and by name; an unknown name is a LoggingError."""
    with LogManager(console=False) as log_mgr:
        token = log_mgr.start_timer("a")
        log_mgr.start_timer("b")
        assert log_mgr.end_timer(token) >= 0
        assert log_mgr.end_timer("b") >= 0
        assert log_mgr.performance.running_timers() == []
        with pytest.raises(LoggingError, match="no timer named 'b' is running"):
            log_mgr.end_timer("b")
        assert set(log_mgr.get_stats().timings) == {"a", "b"}


def test_operations_metrics_and_errors(tmp_path: Path) -> None:
    """Operation spans, metrics and errors become queryable records and statistics."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log_mgr.log_operation_start("fit", maps=3)
        seconds = log_mgr.log_operation_end("fit", success=False, module="m")
        log_mgr.log_performance_metric("throughput", 12.5, unit="maps/s")
        try:
            {}["k"]
        except KeyError as exc:
            log_mgr.log_error(exc, "lookup failed", stage="merge")
        stats = log_mgr.get_stats()
    start, end, metric, error = read_json(path)
    assert (start["event"], start["maps"]) == ("operation_start", 3)
    assert (end["level"], end["success"], end["module_"]) == ("ERROR", False, "m")
    assert end["duration_s"] == pytest.approx(seconds, abs=1e-6)
    assert stats.timings["fit"].failures == 1
    assert (metric["value"], metric["unit"]) == (12.5, "maps/s")
    assert stats.metrics == {"throughput": {"value": 12.5, "unit": "maps/s"}}
    assert (error["message"], error["exc_type"], error["stage"]) == (
        "lookup failed",
        "KeyError",
        "merge",
    )
    assert "Traceback" in error["traceback"]


def test_stats_and_status_are_json_ready(tmp_path: Path) -> None:
    """get_stats counts records per level; get_status survives json.dumps and says the state."""
    with LogManager(file_path=tmp_path / "run.log", console=False) as log_mgr:
        log = log_mgr.get_logger("s")
        log.info("a")
        log.warning("b")
        log.error("c")
        log_mgr.log_performance_metric("obj", object())
        log_mgr.flush()
        stats = log_mgr.get_stats()
        status = json.loads(json.dumps(log_mgr.get_status()))
    assert (stats.records["INFO"], stats.records["WARNING"], stats.records["ERROR"]) == (2, 1, 1)
    assert (stats.written, stats.dropped, stats.queued) == (4, 0, 0)
    assert status["writer_alive"] is True
    assert status["closed"] is False
    assert status["stats"]["records"]["INFO"] == 2
    assert log_mgr.get_status()["closed"] is True


def test_close_is_idempotent_and_stops_the_writer(tmp_path: Path) -> None:
    """close() twice is fine; the named writer thread runs while open and is gone after."""

    def writers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "lensing_ssc-log-writer"]

    before = len(writers())
    log_mgr = LogManager(console=False)
    assert len(writers()) == before + 1
    assert all(t.daemon for t in writers())
    log_mgr.close()
    log_mgr.close()
    assert len(writers()) == before
    assert log_mgr.closed
    assert "closed" in repr(log_mgr)


def _attached_handlers() -> list[logging.Handler]:
    """Handlers on the package's logger other than its own NullHandler (``lensing_ssc``)."""
    handlers = logging.getLogger("lensing_ssc").handlers
    return [h for h in handlers if not isinstance(h, logging.NullHandler)]
