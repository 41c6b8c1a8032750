"""Log line formats (standard, detailed, json) and context fields across blocks, threads, tasks."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._context import CONTEXT_ATTR
from lensing_ssc.processing.managers.log._format import JsonFormatter
from lensing_ssc.processing.managers.log._manager import (
    bind_context,
    current_context,
    log_context,
)


@pytest.fixture(autouse=True)
def _no_leaked_managers() -> Iterator[None]:
    """Close every manager a test left open and restore the loggers it touched."""
    yield
    for manager in _log_process._live():
        manager.close()
    _log_loggers.reset()


def _strict_json(line: str) -> dict[str, Any]:
    def reject(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=reject)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [_strict_json(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_json_line_carries_the_documented_keys(tmp_path: Path) -> None:
    """JSON lines have UTC ISO time, level, logger, message, and context and extras on top."""
    path = tmp_path / "run.log"
    with (
        LogManager(file_path=path, format_type="json", console=False) as log_mgr,
        log_mgr.log_context(map_id=7, step="smooth"),
    ):
        log_mgr.get_logger("fmt").warning("κ map %s done", "A", extra={"npix": 3072})
    (line,) = _lines(path)
    stamp = datetime.fromisoformat(line.pop("time").replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=1)
    assert line == {
        "level": "WARNING",
        "logger": "lensing_ssc.fmt",
        "message": "κ map A done",
        "map_id": 7,
        "step": "smooth",
        "npix": 3072,
    }


def test_json_exception_has_type_message_traceback(tmp_path: Path) -> None:
    """logger.exception writes the exception type, message and full traceback."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log_mgr.get_logger("fmt").exception("failed")
    (line,) = _lines(path)
    assert (line["exc_type"], line["exc_message"]) == ("ZeroDivisionError", "division by zero")
    assert line["traceback"].startswith("Traceback (most recent call last):")
    assert "1 / 0" in line["traceback"]


def test_json_never_crashes_on_odd_extras(tmp_path: Path) -> None:
    """Unserialisable, non-finite, circular and unprintable extras become strings."""

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    circular: list[Any] = []
    circular.append(circular)
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log_mgr.get_logger("fmt").info(
            "odd",
            extra={
                "obj": Path("/x"),
                "nan": math.nan,
                "inf": -math.inf,
                "tags": {"b", "a"},
                "raw": b"\x00",
                "loop": circular,
                "bad": Unprintable(),
                "tuple_key": {(1, 2): 3},
            },
        )
        log_mgr.get_logger("fmt").info("after")
    odd, after = _lines(path)
    assert (odd["obj"], odd["nan"], odd["inf"], odd["tags"]) == ("/x", "nan", "-inf", ["a", "b"])
    assert odd["raw"] == "b'\\x00'"
    assert odd["bad"] == "<unprintable Unprintable: RuntimeError>"
    assert odd["tuple_key"] == "{(1, 2): 3}"
    assert odd["loop"].startswith("[[")
    assert after["message"] == "after"


def test_field_named_like_a_fixed_key_keeps_both(tmp_path: Path) -> None:
    """A context field called 'level' is written as 'level_' and the real level stays."""
    path = tmp_path / "run.log"
    with (
        LogManager(file_path=path, format_type="json", console=False) as log_mgr,
        log_mgr.log_context(level="tomographic bin 2"),
    ):
        log_mgr.get_logger("fmt").info("clash")
    (line,) = _lines(path)
    assert (line["level"], line["level_"]) == ("INFO", "tomographic bin 2")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(), inner, max_size=3)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(st.text(min_size=1), json_values, max_size=5), message=st.text())
def test_json_formatter_always_emits_one_valid_line(fields: dict[str, Any], message: str) -> None:
    """Whatever the message and fields, the JSON formatter writes one strict-JSON line."""
    record = logging.LogRecord("lensing_ssc.h", logging.INFO, __file__, 1, message, None, None)
    record.__dict__[CONTEXT_ATTR] = fields
    text = JsonFormatter()(record)
    assert text.endswith("\n")
    assert text.count("\n") == 1
    data = _strict_json(text)
    assert data["message"] == message
    fixed = {"time", "level", "logger", "message"}
    assert fixed <= set(data)
    assert len(data) == len(fixed) + len(fields)  # no field lost or merged into another


def test_standard_format(tmp_path: Path) -> None:
    """Standard lines: local time, level, logger, message, then [name=value ...]."""
    path = tmp_path / "run.log"
    with (
        LogManager(file_path=path, console=False) as log_mgr,
        log_mgr.log_context(operation="data_processing", note="two words"),
    ):
        log_mgr.get_logger("fmt").info("Validating input data")
    line = path.read_text().rstrip("\n")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO     lensing_ssc\.fmt: Validating input data "
        r'\[operation=data_processing note="two words"\]',
        line,
    ), line


def test_standard_format_leaves_nested_data_to_json(tmp_path: Path) -> None:
    """Standard lines show scalar fields only; a nested snapshot stays in the JSON format."""
    path = tmp_path / "run.log"
    extra = {"progress": {"current": 3, "total": 10}, "step": "fit"}
    with LogManager(file_path=path, console=False) as log_mgr:
        log_mgr.get_logger("fmt").info("3/10 done", extra=extra)
    line = path.read_text().rstrip("\n")
    assert line.endswith("lensing_ssc.fmt: 3/10 done [step=fit]"), line
    json_path = tmp_path / "run.jsonl"
    with LogManager(file_path=json_path, format_type="json", console=False) as log_mgr:
        log_mgr.get_logger("fmt").info("3/10 done", extra=extra)
    assert _lines(json_path)[0]["progress"] == {"current": 3, "total": 10}


def test_detailed_format_has_process_thread_and_place(tmp_path: Path) -> None:
    """Detailed lines add pid, thread name and file:line of the call, and the traceback."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="detailed", console=False) as log_mgr:
        try:
            raise ValueError("bad map")
        except ValueError:
            log_mgr.get_logger("fmt").error("oops", exc_info=True)
    first, *rest = path.read_text().splitlines()
    assert f"[pid {os.getpid()} MainThread]" in first
    assert "test_log_format.py:" in first
    assert "in test_detailed_format_has_process_thread_and_place: oops" in first
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: bad map"


def test_arguments_are_rendered_when_logged(tmp_path: Path) -> None:
    """A mutable argument changed after the call shows its value at the time of the call."""
    path = tmp_path / "run.log"
    state = ["a"]
    with LogManager(file_path=path, console=False, flush_interval=60) as log_mgr:
        log_mgr.get_logger("fmt").info("state %s", state)
        state.append("b")
    assert "state ['a']" in path.read_text()


def test_bad_format_string_is_written_not_raised(tmp_path: Path) -> None:
    """A wrong %-format never raises into the caller; the line says what was wrong."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, console=False) as log_mgr:
        log_mgr.get_logger("fmt").info("count %d", "not a number")
    assert "unformattable message 'count %d'" in path.read_text()


def test_context_nests_and_restores() -> None:
    """Inner blocks add and override fields; leaving (also by exception) restores them."""
    with log_context(a=1, b=1):
        with log_context(b=2, c=3):
            assert current_context() == {"a": 1, "b": 2, "c": 3}
        assert current_context() == {"a": 1, "b": 1}
        with pytest.raises(RuntimeError), log_context(d=4):
            raise RuntimeError
        assert current_context() == {"a": 1, "b": 1}
    assert current_context() == {}


def test_context_is_per_thread_and_bind_context_carries_it(tmp_path: Path) -> None:
    """A plain thread starts without fields; bind_context brings the caller's into it."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log = log_mgr.get_logger("ctx")
        with log_mgr.log_context(step="fit"):
            plain = threading.Thread(target=log.info, args=("plain thread",))
            bound = threading.Thread(target=bind_context(log.info), args=("bound thread",))
            for thread in (plain, bound):
                thread.start()
                thread.join()
    lines = {line["message"]: line for line in _lines(path)}
    assert "step" not in lines["plain thread"]
    assert lines["bound thread"]["step"] == "fit"


def test_bound_function_runs_on_many_threads_at_once(tmp_path: Path) -> None:
    """One bind_context wrapper runs concurrently in an executor, fields set inside stay inside."""

    def work(i: int) -> dict[str, Any]:
        with log_context(item=i):
            return current_context()

    with log_context(run="r1"):
        task = bind_context(work)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(task, range(40)))
    assert results == [{"run": "r1", "item": i} for i in range(40)]
    assert current_context() == {}


def test_context_is_per_asyncio_task(tmp_path: Path) -> None:
    """Concurrent tasks each log their own fields."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type="json", console=False) as log_mgr:
        log = log_mgr.get_logger("tasks")

        async def job(name: str) -> None:
            with log_context(task=name):
                await asyncio.sleep(0.01)
                log.info("from %s", name)

        async def main() -> None:
            await asyncio.gather(job("a"), job("b"), job("c"))

        asyncio.run(main())
    assert {line["message"]: line["task"] for line in _lines(path)} == {
        "from a": "a",
        "from b": "b",
        "from c": "c",
    }


def test_context_captured_at_call_not_at_write(tmp_path: Path) -> None:
    """A record keeps the fields in force when it was logged, even if written later."""
    path = tmp_path / "run.log"
    with LogManager(
        file_path=path, format_type="json", console=False, flush_interval=60
    ) as log_mgr:
        log = log_mgr.get_logger("late")
        with log_context(phase="one"):
            log.info("first")
        with log_context(phase="two"):
            log.info("second")
    assert [line["phase"] for line in _lines(path)] == ["one", "two"]


FORGED = "\n2026-05-09 19:55:25,123 CRITICAL lensing_ssc.auth: forged"


@pytest.mark.parametrize("format_type", ["standard", "detailed"])
def test_plain_text_record_is_one_line_whatever_it_holds(tmp_path: Path, format_type: str) -> None:
    """A line break in the message, a field's name or value, or the logger's name is written
    as its escape: the record stays one line for any line-splitting reader."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type=format_type, console=False) as log_mgr:
        log_mgr.get_logger("x\ny").info(
            "done" + FORGED,
            extra={"note" + FORGED: 1, "value": "a\u2028b\x85c\rd", "pad": "e\u2029f"},
        )
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 1
    assert len(text.splitlines()) == 1
    assert "lensing_ssc.x\\ny" in text
    assert "done\\n2026-05-09 19:55:25,123 CRITICAL lensing_ssc.auth: forged" in text
    assert '"note\\n2026-05-09 19:55:25,123 CRITICAL lensing_ssc.auth: forged"=1' in text
    assert 'value="a\\u2028b\\u0085c\\rd"' in text
    assert 'pad="e\\u2029f"' in text


@pytest.mark.parametrize("format_type", ["standard", "detailed"])
def test_traceback_lines_cannot_pass_for_a_record(tmp_path: Path, format_type: str) -> None:
    """An exception message with a line that starts like a record is indented under the
    traceback, which otherwise stays as Python prints it; only a record's line starts with
    its date."""
    path = tmp_path / "run.log"
    with LogManager(file_path=path, format_type=format_type, console=False) as log_mgr:
        try:
            raise ValueError("bad map" + FORGED + "\u2028\rend")
        except ValueError:
            log_mgr.get_logger("fmt").exception("oops")
    first, *rest = path.read_text(encoding="utf-8").split("\n")[:-1]
    assert first[:4].isdigit()
    assert first.endswith("oops")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-2:] == [
        "ValueError: bad map",
        "  2026-05-09 19:55:25,123 CRITICAL lensing_ssc.auth: forged\\u2028\\rend",
    ]
    assert not any(line[:1].isdigit() for line in rest)
