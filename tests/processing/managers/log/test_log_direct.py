"""The callers' fast path: loggers from get_logger skip the LogRecord, and nothing else changes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._direct import DirectLogger


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


@pytest.fixture
def records_made() -> Iterator[list[str]]:
    """Names of the loggers whose calls built a LogRecord while the test ran."""
    made: list[str] = []
    previous = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    yield made
    logging.setLogRecordFactory(previous)


class ListHandler(logging.Handler):
    """A stdlib handler that keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def read_json(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_get_logger_returns_the_registered_logger_as_a_direct_logger() -> None:
    """get_logger's logger is logging.getLogger's object, a Logger that skips LogRecords."""
    with LogManager(console=False) as log_mgr:
        logger = log_mgr.get_logger("direct")
        assert logger is logging.getLogger("lensing_ssc.direct")
        assert isinstance(logger, DirectLogger)
        assert isinstance(logger, logging.Logger)


def test_an_existing_logger_and_a_chosen_logger_class_are_kept() -> None:
    """A logger created before keeps its class; so does a new one under setLoggerClass."""

    class AppLogger(logging.Logger):
        pass

    before = logging.getLogger("lensing_ssc.made_before")
    with LogManager(console=False) as log_mgr:
        assert log_mgr.get_logger("made_before") is before
        assert type(before) is logging.Logger
        logging.setLoggerClass(AppLogger)
        try:
            assert type(log_mgr.get_logger("made_under_app_class")) is AppLogger
        finally:
            logging.setLoggerClass(logging.Logger)
        assert type(logging.getLogger("lensing_ssc.made_after")) is logging.Logger


def test_a_call_builds_no_log_record(tmp_path: Path, records_made: list[str]) -> None:
    """An INFO call with extras and context reaches the file without a LogRecord."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        with log_mgr.log_context(step="fit"):
            log_mgr.get_logger("direct").info("item %d of %d", 3, 10, extra={"npix": 3072})
        log_mgr.flush()
        assert records_made == []
    (line,) = read_json(path)
    del line["time"]
    assert line == {
        "level": "INFO",
        "logger": "lensing_ssc.direct",
        "message": "item 3 of 10",
        "step": "fit",
        "npix": 3072,
    }


@pytest.mark.parametrize("format_type", ["json", "standard"])
def test_direct_and_stdlib_loggers_write_the_same_line(tmp_path: Path, format_type: str) -> None:
    """A direct logger's line equals a plain captured logger's line, but for name and time."""
    path = tmp_path / "run.log"
    plain = logging.getLogger("plainpkg.same")
    with (
        LogManager(
            file_path=path, format_type=format_type, console=False, capture=("plainpkg",)
        ) as log_mgr,
        log_mgr.log_context(run="r1", level="bin 2"),
    ):
        for logger in (log_mgr.get_logger("lensing_ssc.same"), plain):
            logger.warning(
                "map %s: %.1f%%", "κ", 12.5, extra={"tags": {"b", "a"}, "nan": float("nan")}
            )
            logger.info({"not": "a string"})
    assert type(plain) is logging.Logger
    ours, ours_obj, theirs, theirs_obj = path.read_text(encoding="utf-8").splitlines()
    if format_type == "json":
        assert {**json.loads(ours), "time": "", "logger": ""} == {
            **json.loads(theirs),
            "time": "",
            "logger": "",
        }
        assert json.loads(ours_obj)["message"] == json.loads(theirs_obj)["message"]
    else:
        assert ours.split("lensing_ssc.same")[1] == theirs.split("plainpkg.same")[1]
        assert ours_obj.split("lensing_ssc.same")[1] == theirs_obj.split("plainpkg.same")[1]


def test_a_mapping_argument_and_a_bad_format_render_as_in_the_stdlib(tmp_path: Path) -> None:
    """'%(a)s' with a dict fills by name; a wrong format is written, never raised."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        logger = log_mgr.get_logger("direct")
        logger.info("a=%(a)s", {"a": 1})
        logger.info("count %d", "not a number")
    named, bad = (line["message"] for line in read_json(path))
    assert named == "a=1"
    assert bad.startswith("<unformattable message 'count %d': TypeError(")


def test_extras_are_copied_at_the_call(tmp_path: Path) -> None:
    """Changing the extra dict after the call does not change the line, as with a LogRecord."""
    path = tmp_path / "run.log"
    extra = {"item": 1}
    with LogManager(
        file_path=path, format_type="json", console=False, flush_interval=60
    ) as log_mgr:
        log_mgr.get_logger("direct").info("first", extra=extra)
        extra["item"] = 2
    assert read_json(path)[0]["item"] == 1


def test_a_reserved_extra_name_raises_as_in_the_stdlib() -> None:
    """extra={'message': ...} raises the stdlib's KeyError, so a typo is not silently kept."""
    with (
        LogManager(console=False) as log_mgr,
        pytest.raises(KeyError, match="Attempt to overwrite 'message' in LogRecord"),
    ):
        log_mgr.get_logger("direct").info("x", extra={"message": "y"})


def test_exceptions_filters_and_disabled_loggers_behave_as_in_the_stdlib(
    tmp_path: Path, records_made: list[str]
) -> None:
    """exc_info goes the LogRecord way with its traceback; filters and disabled still drop."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        logger = log_mgr.get_logger("direct")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("failed")
        logger.addFilter(lambda record: "secret" not in record.getMessage())
        logger.info("secret")
        logger.info("public")
        logger.filters.clear()
        logger.disabled = True
        logger.info("while disabled")
        logger.disabled = False
    failed, public = read_json(path)
    assert failed["exc_type"] == "ZeroDivisionError"
    assert public["message"] == "public"
    assert records_made == ["lensing_ssc.direct"] * 3  # exception, and both filtered calls


def test_other_handlers_in_the_way_get_log_records(tmp_path: Path) -> None:
    """A handler on the logger itself, or on the root with propagate=True, gets every record."""
    path = tmp_path / "run.log"
    own, root = ListHandler(), ListHandler()
    logging.getLogger().addHandler(root)
    try:
        with LogManager(
            file_path=path, format_type="json", console=False, propagate=True
        ) as log_mgr:
            logger = log_mgr.get_logger("direct")
            logger.addHandler(own)
            logger.info("to all", extra={"n": 1})
            logger.removeHandler(own)
    finally:
        logging.getLogger().removeHandler(root)
    assert [r.getMessage() for r in own.records] == ["to all"]
    assert [r.n for r in root.records] == [1]  # type: ignore[attr-defined]
    assert read_json(path)[0]["n"] == 1


def test_added_handler_gets_records_queued_before_it(tmp_path: Path) -> None:
    """A record queued as a tuple, then written after add_handler, reaches the handler."""
    handler = ListHandler()
    with LogManager(
        file_path=tmp_path / "run.log", format_type="json", console=False, flush_interval=60
    ) as log_mgr:
        with log_mgr.log_context(step="fit"):
            log_mgr.get_logger("direct").warning("queued", extra={"n": 1})
        log_mgr.add_handler(handler)
        log_mgr.get_logger("direct").info("after")
    queued, after = handler.records
    assert (queued.getMessage(), queued.levelname, queued.name) == (
        "queued",
        "WARNING",
        "lensing_ssc.direct",
    )
    assert queued.n == 1  # type: ignore[attr-defined]
    assert after.getMessage() == "after"
    counts = log_mgr.get_stats().records
    assert (counts["WARNING"], counts["INFO"]) == (1, 1)


def test_detailed_format_names_the_callers_line(tmp_path: Path) -> None:
    """The detailed format needs LogRecords, and its file:line is the caller's, not ours."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="detailed", console=False) as log_mgr:
        log_mgr.get_logger("direct").info("here")

        def helper() -> None:
            log_mgr.get_logger("direct").info("one up", stacklevel=2)

        helper()
    here, one_up = path.read_text().splitlines()
    assert "test_log_direct.py:" in here
    assert "in test_detailed_format_names_the_callers_line: here" in here
    assert "in test_detailed_format_names_the_callers_line: one up" in one_up
