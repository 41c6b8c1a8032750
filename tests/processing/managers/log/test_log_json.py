"""What a value becomes in a JSON line, and that orjson and the stdlib write the same JSON."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.processing.managers.log import _json
from lensing_ssc.processing.managers.log._format import JsonFormatter, record_of

needs_orjson = pytest.mark.skipif(_json.orjson is None, reason="orjson (the fast extra) missing")

ENCODERS = [
    pytest.param(_json.encode_stdlib, id="stdlib"),
    pytest.param(_json.encode_orjson, id="orjson", marks=needs_orjson),
]


class Colour(enum.Enum):
    RED = "red"
    BLUE = (0, 0, 1)


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


Pair = collections.namedtuple("Pair", "a b")


#: Characters JSON may hold raw in a string that other readers end a line at.
SEPARATORS = "\u2028\u2029\x85"


def strict(line: bytes) -> Any:
    """The line parsed, refusing NaN and Infinity, which strict JSON does not have."""
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1

    def reject(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=reject)


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize(
    ("value", "written"),
    [
        (np.int64(3), 3),
        (np.float32(0.5), 0.5),
        (np.float64(2.5), 2.5),
        (np.bool_(True), True),
        (np.float64("nan"), "nan"),
        (np.float32("-inf"), "-inf"),
        ([1.0, math.nan, {"x": math.inf}], [1.0, "nan", {"x": "inf"}]),
        ({math.nan: 1}, {"nan": 1}),
        (np.arange(3), "[0 1 2]"),
        (Colour.BLUE, [0, 0, 1]),
        (Level.HIGH, 3),
        (Pair(1, "b"), [1, "b"]),
        (collections.OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
        ({3, 1, 2}, [1, 2, 3]),
        (datetime(2026, 5, 9, 17, 55, tzinfo=timezone.utc), "2026-05-09 17:55:00+00:00"),
        (Point(1), "Point(x=1)"),
        (Path("/x"), "/x"),
        (2**70, 2**70),
        (
            {2: "a", None: "b", True: "c", 0.5: "d"},
            {"2": "a", "null": "b", "true": "c", "0.5": "d"},
        ),
        ({(1, 2): 3}, "{(1, 2): 3}"),
        (None, None),
        ("κ ≥ 0 \x00 \u2028", "κ ≥ 0 \x00 \u2028"),
    ],
)
def test_each_kind_of_value_is_written_as_documented(
    encode: Any, value: object, written: object
) -> None:
    """Numpy scalars as numbers, non-finite floats as names, the rest as the docstring says."""
    assert strict(encode({"message": "m", "field": value})) == {"message": "m", "field": written}


@pytest.mark.parametrize("encode", ENCODERS)
def test_lone_surrogate_is_kept_as_an_escape(encode: Any) -> None:
    """A string with a lone surrogate (a bad file name) is written, as its \\udcxx escape."""
    line = encode({"path": "caf\udce9"})
    assert b"caf\\udce9" in line
    assert json.loads(line) == {"path": "caf\udce9"}


@pytest.mark.parametrize("encode", ENCODERS)
def test_unprintable_and_circular_fields_do_not_take_the_line_with_them(encode: Any) -> None:
    """A field whose __str__ raises, or that contains itself, becomes a string; others stay."""

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    loop: list[Any] = []
    loop.append(loop)
    data = strict(encode({"bad": Unprintable(), "loop": loop, "n": 1}))
    assert data["bad"] == "<unprintable Unprintable: RuntimeError>"
    assert data["loop"].startswith("[[")
    assert data["n"] == 1


leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.text(alphabet=st.sampled_from("a\u2028\u2029\x85"))
    | st.sampled_from(["\udce9", "a\ud800b"])
    | st.binary(max_size=4)
    | st.builds(np.int64, st.integers(-(2**63), 2**63 - 1))
    | st.builds(np.float32, st.floats(width=32))
    | st.builds(np.float64, st.floats())
    | st.builds(np.bool_, st.booleans())
    | st.sampled_from([Colour.RED, Colour.BLUE, Level.HIGH, Point(2), Pair(1, 2)])
    | st.datetimes()
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=3)
        | st.dictionaries(st.integers() | st.floats() | st.none(), inner, max_size=2)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=8,
)


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(st.text(min_size=1), values, max_size=5), message=st.text())
def test_orjson_and_stdlib_write_the_same_json(fields: dict[str, Any], message: str) -> None:
    """Whatever the fields hold, both encoders write one strict line that parses the same."""
    data = {"time": "2026-05-09T17:55:25.123456Z", "message": message, **fields}
    fast, stdlib = _json.encode_orjson(data), _json.encode_stdlib(data)
    assert strict(fast) == strict(stdlib)
    assert not any(ch.encode() in line for ch in SEPARATORS for line in (fast, stdlib))


@needs_orjson
def test_plain_records_are_written_by_orjson() -> None:
    """A record of plain values is orjson's own output (the stdlib spells 1e-07, orjson 1e-7)."""
    assert _json.encode is _json.encode_orjson
    assert _json.encode_orjson({"tiny": 1e-7}) == b'{"tiny":1e-7}\n'
    assert _json.encode_stdlib({"tiny": 1e-7}) == b'{"tiny":1e-07}\n'


@needs_orjson
def test_formatter_lines_are_the_same_json_with_either_encoder() -> None:
    """A queued record and its LogRecord give the same JSON lines with orjson and without."""
    item = (
        1778349325.123456,
        30,
        "lensing_ssc.fmt",
        "κ map done",
        {"npix": np.int64(3072), "chi2": math.nan, "level": "bin 2", "tags": {"b", "a"}},
        {"run": "r17"},
    )
    stdlib, fast = JsonFormatter(encode=_json.encode_stdlib), JsonFormatter()
    lines = [fmt.tuple_line(item) for fmt in (stdlib, fast)]
    lines += [fmt.line(record_of(item)) for fmt in (stdlib, fast)]
    parsed = [strict(line) for line in lines]
    assert parsed[0] == {
        "time": "2026-05-09T17:55:25.123456Z",
        "level": "WARNING",
        "logger": "lensing_ssc.fmt",
        "message": "κ map done",
        "run": "r17",
        "npix": 3072,
        "chi2": "nan",
        "level_": "bin 2",
        "tags": ["a", "b"],
    }
    assert all(data == parsed[0] for data in parsed)


@pytest.mark.parametrize("encode", ENCODERS)
def test_line_separators_are_written_as_escapes(encode: Any) -> None:
    """U+2028, U+2029 and NEL are escaped, so a line-splitting reader sees one line."""
    data = {"message": "a\u2028b", "field": "c\u2029d\x85e", "k\u2028": 1}
    line = encode(data)
    assert b"\\u2028" in line
    assert b"\\u2029" in line
    assert b"\\u0085" in line
    assert len(line.decode("utf-8").splitlines()) == 1
    assert strict(line) == data


separated_text = st.text(alphabet=st.sampled_from('aκ\n"\\\x00\x7f' + SEPARATORS) | st.characters())


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        separated_text,
        separated_text | st.integers(-(2**63), 2**63 - 1) | st.booleans() | st.none(),
        max_size=5,
    ),
    message=separated_text,
)
def test_orjson_and_stdlib_write_the_same_bytes_for_text(
    fields: dict[str, Any], message: str
) -> None:
    """Records of text, integers and booleans are byte for byte the same with either encoder,
    and neither writes a raw line separator."""
    data = {"message": message, **fields}
    fast, stdlib = _json.encode_orjson(data), _json.encode_stdlib(data)
    assert fast == stdlib
    assert len(fast.decode("utf-8").splitlines()) == 1
