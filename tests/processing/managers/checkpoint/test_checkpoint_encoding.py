"""Checkpoint state encoding: every supported type comes back with its exact type and value."""

from __future__ import annotations

import json
import math
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.managers import CheckpointManager
from lensing_ssc.processing.managers.checkpoint._decode import decode_state
from lensing_ssc.processing.managers.checkpoint._encode import encode_state


def assert_same(a: Any, b: Any, path: str = "state") -> None:
    """Deep equality that also demands equal types, dict order, float signs and array bytes."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, path
        assert a.shape == b.shape, path
        assert a.tobytes() == b.tobytes(), path
        if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous:
            assert b.flags.f_contiguous, f"{path}: lost Fortran order"
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype, path
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        ), path
    elif isinstance(a, complex):
        assert_same(a.real, b.real, path)
        assert_same(a.imag, b.imag, path)
    elif isinstance(a, dict):
        assert [type(k) for k in a] == [type(k) for k in b], path
        assert list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


class _MemoryReader:
    """Serves pieces from memory, as the blob store would from disk."""

    def __init__(self, pieces: dict[str, bytes]) -> None:
        self.pieces = pieces

    def read_array(
        self, digest: str, dtype: Any, shape: tuple[int, ...], order: str, path: str
    ) -> Any:
        flat = np.frombuffer(bytearray(self.pieces[digest]), dtype=dtype)
        return flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)

    def read_bytes(self, digest: str, path: str) -> bytes:
        return self.pieces[digest]


def round_trip(state: Any, *, inline_limit: int | None = 64) -> Any:
    encoded = encode_state(state, inline_limit=inline_limit, copy=True)
    pieces = {}
    for i, piece in enumerate(encoded.pieces):
        piece.node["blob"] = f"piece{i}"
        pieces[f"piece{i}"] = bytes(piece.data)
    tree = json.loads(json.dumps(encoded.tree, allow_nan=False))  # what the manifest keeps
    return decode_state(tree, _MemoryReader(pieces), allow_pickle=False)


_DTYPES = st.sampled_from(
    ["<f8", ">f4", "<f2", "<i8", "|u1", ">u4", "|b1", "<c16", "<M8[s]", "<m8[ms]", "<U3", "|S4"]
).map(np.dtype)
arrays = _DTYPES.flatmap(
    lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
    )
)
fortran_arrays = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=5)
).map(np.asfortranarray)
hashable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.floats(allow_nan=False),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**9000, max_value=2**9100)
    | st.floats()
    | st.complex_numbers()
    | st.text()
    | st.binary(max_size=200)
    | arrays
    | fortran_arrays
    | arrays.filter(lambda a: a.ndim == 0).map(lambda a: a[()])
)
states = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.dictionaries(hashable, inner, max_size=4)
        | st.sets(hashable, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(states)
def test_any_plain_state_round_trips_exactly(state: Any) -> None:
    """Every plain-data state (no pickle) decodes to an equal value of identical types."""
    assert_same(state, round_trip(state))


@settings(max_examples=100, deadline=None)
@given(states)
def test_json_layout_round_trips_exactly(state: Any) -> None:
    """With everything inline (the JSON format) states round-trip exactly too."""
    assert_same(state, round_trip(state, inline_limit=None))


progress_trees = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=progress_trees, int_keyed=st.dictionaries(st.integers(), st.text(max_size=3), max_size=5)
)
def test_json_ready_trees_round_trip_through_the_manager(
    tree: Any, int_keyed: dict[int, str]
) -> None:
    """A JSON-ready progress tree and an int-keyed dict survive a real save/load unchanged."""
    state = {"progress": tree, "by_index": int_keyed, "$only": {"$array": 1}}
    with tempfile.TemporaryDirectory() as directory:
        for layout in ("native", "json"):
            with CheckpointManager(Path(directory) / layout, format=layout) as ckpt:
                ckpt.save_checkpoint(state)
                assert_same(state, ckpt.load_checkpoint())


def test_encoding_keeps_plain_json_readable() -> None:
    """Plain dicts, lists and numbers appear as themselves; other types as one-key $ tags."""
    tree = encode_state(
        {"step": 1, "t": (1, 2), 3: "int key", "f": float("inf"), "s": {"$array": 1}},
        inline_limit=None,
        copy=False,
    ).tree
    pairs = tree["$dict"]
    assert pairs[0] == ["step", 1]
    assert pairs[1] == ["t", {"$tuple": [1, 2]}]
    assert pairs[2] == [3, "int key"]
    assert pairs[3] == ["f", {"$float": "inf"}]
    assert pairs[4] == ["s", {"$dict": [["$array", 1]]}]
    assert encode_state({"a": [1.5, None]}, inline_limit=None, copy=False).tree == {
        "a": [1.5, None]
    }


def test_large_pieces_become_blobs_and_small_ones_stay_inline() -> None:
    """Arrays and bytes above the inline limit become pieces; views are not copied unless asked."""
    big = np.arange(1000.0)
    encoded = encode_state(
        {"big": big, "small": np.arange(3), "raw": b"x" * 5000}, inline_limit=4096, copy=False
    )
    assert [p.kind for p in encoded.pieces] == ["array", "bytes"]
    assert np.shares_memory(encoded.pieces[0].data, big)
    copied = encode_state({"big": big}, inline_limit=4096, copy=True)
    assert not np.shares_memory(copied.pieces[0].data, big)
    assert encoded.data_bytes == big.nbytes + 3 * 8 + 5000


def test_strided_views_are_stored_compactly() -> None:
    """A strided view is stored as its own elements, and comes back equal and contiguous."""
    base = np.arange(40_000.0).reshape(200, 200)
    view = base[::2, 1::3]
    encoded = encode_state(view, inline_limit=64, copy=False)
    assert encoded.pieces[0].nbytes == view.nbytes
    restored = round_trip(view)
    np.testing.assert_array_equal(restored, view)


def test_subclasses_and_object_arrays_go_through_pickle() -> None:
    """OrderedDict, object arrays and masked arrays are pickled so their type survives."""
    state = {
        "od": OrderedDict(a=1),
        "obj": np.array([1, "a", None], dtype=object),
        "masked": np.ma.masked_array([1.0, 2.0], mask=[False, True]),
    }
    encoded = encode_state(state, inline_limit=None, copy=False)
    assert encoded.pickled == ['state["od"]', 'state["obj"]', 'state["masked"]']
    with pytest.raises(CheckpointError, match="allow_pickle=False"):
        round_trip(state)


def test_surrogate_strings_round_trip() -> None:
    """Strings holding lone surrogates (os.fsdecode of bad bytes) round-trip exactly."""
    state = {"path\udc80": "file-\udcff.fits"}
    assert_same(state, round_trip(state))
