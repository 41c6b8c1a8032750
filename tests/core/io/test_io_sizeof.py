"""Tests of estimate_size: the bytes a value keeps alive, shared buffers counted once."""

from __future__ import annotations

import dataclasses
import sys
import timeit
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.core.io import estimate_size

MB = 1_000_000


def close_to(estimate: int, truth: float, tolerance: float = 0.05) -> bool:
    """Whether an estimate is within a relative tolerance of the truth."""
    return abs(estimate - truth) <= tolerance * truth


@pytest.fixture(scope="module")
def big() -> np.ndarray:
    """An 80 MB array owning its buffer."""
    return np.ones(10_000_000)


# --- accuracy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arr",
    [np.zeros(1000), np.ones((300, 400), dtype=np.float32), np.zeros(0), np.arange(5)],
)
def test_owning_array_counts_its_buffer(arr: np.ndarray) -> None:
    """An array that owns its data counts its bytes plus its small header."""
    size = estimate_size(arr)
    assert arr.nbytes <= size <= arr.nbytes + 256
    assert close_to(size, sys.getsizeof(arr), 0.0)


def test_view_counts_the_buffer_it_keeps_alive(big: np.ndarray) -> None:
    """A slice of an 80 MB array keeps all 80 MB alive, and is counted so (not as 112 bytes)."""
    for view in (big[:10], big[::7], big.reshape(1000, -1).T, big[5:-5]):
        assert close_to(estimate_size(view), big.nbytes)


def test_shared_buffer_is_counted_once(big: np.ndarray) -> None:
    """Two views of one buffer, with or without the base, count the buffer once."""
    assert close_to(estimate_size([big[:100], big[100:]]), big.nbytes)
    assert close_to(estimate_size({"a": big, "b": big[::2], "c": big}), big.nbytes)
    assert close_to(estimate_size((big[::2], big)), big.nbytes)


def test_frombuffer_array_counts_the_buffer_under_it() -> None:
    """Arrays made with np.frombuffer over bytes, bytearray or a memoryview count that buffer."""
    raw = bytes(4 * MB)
    mutable = bytearray(4 * MB)
    for arr in (
        np.frombuffer(raw, dtype=np.float32),
        np.frombuffer(mutable, dtype=np.uint8),
        np.frombuffer(memoryview(mutable)[: 2 * MB], dtype=np.uint16),
    ):
        assert close_to(estimate_size(arr), 4 * MB)
    assert close_to(estimate_size([np.frombuffer(raw, dtype=np.uint8), raw]), 4 * MB)


def test_dict_of_arrays_sums_distinct_buffers() -> None:
    """A dict of distinct arrays (and views of them) is within 5 % of their unique bytes."""
    maps = {f"map_{i}": np.zeros((256, 256 + i)) for i in range(20)}
    truth = sum(arr.nbytes for arr in maps.values())
    assert close_to(estimate_size(maps), truth)
    maps["view_of_0"] = maps["map_0"][::2, ::2]
    assert close_to(estimate_size(maps), truth)


def test_broadcast_view_counts_its_small_base() -> None:
    """A zero-stride view whose nbytes claims 800 MB costs only the 8 bytes behind it."""
    tiny = np.zeros(1)
    huge = np.lib.stride_tricks.as_strided(tiny, shape=(100_000_000,), strides=(0,))
    assert huge.nbytes == 800 * MB
    assert estimate_size(huge) < 1000


def test_memoryview_and_memmap_count_their_buffers(tmp_path: Path) -> None:
    """A memoryview counts the object it views; a memmap the bytes it maps."""
    data = bytearray(3 * MB)
    assert close_to(estimate_size(memoryview(data)[:10]), 3 * MB)
    path = tmp_path / "map.f64"
    mapped = np.memmap(path, dtype=np.float64, mode="w+", shape=(250_000,))
    try:
        assert close_to(estimate_size(mapped), 2 * MB)
        assert close_to(estimate_size(mapped[::4]), 2 * MB)
    finally:
        mapped._mmap.close()  # type: ignore[attr-defined]


def test_plain_python_values_count_as_getsizeof() -> None:
    """Strings, bytes and numbers count their own size; lists add their items."""
    assert estimate_size("x" * MB) == sys.getsizeof("x" * MB)
    assert estimate_size(b"x" * MB) == sys.getsizeof(b"x" * MB)
    floats = [float(i) for i in range(1000)]
    assert estimate_size(floats) == sys.getsizeof(floats) + sum(map(sys.getsizeof, floats))


@dataclasses.dataclass(frozen=True)
class PatchResult:
    """A value object as the pipeline caches it."""

    power: np.ndarray
    pdf: np.ndarray
    label: str


@dataclasses.dataclass
class Slotted:
    """A slotted dataclass (no __dict__)."""

    __slots__ = ("values",)
    values: np.ndarray


def test_dataclasses_and_other_containers_are_walked() -> None:
    """Arrays inside dataclasses, deques, sets, tuples and object arrays are counted."""
    result = PatchResult(np.zeros(MB // 8), np.zeros(MB // 8), "patch-7")
    assert close_to(estimate_size(result), 2 * MB)
    assert close_to(estimate_size(Slotted(np.zeros(MB // 8))), MB)
    assert close_to(estimate_size(deque([np.zeros(MB // 8)])), MB)
    assert close_to(estimate_size(frozenset({b"x" * MB})), MB)
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = np.zeros(MB // 8), "label"
    assert close_to(estimate_size(objects), MB)


def test_other_objects_count_shallow() -> None:
    """An arbitrary object counts as sys.getsizeof says; its attributes are not followed."""

    class Opaque:
        def __init__(self) -> None:
            self.payload = np.zeros(MB)

    obj = Opaque()
    assert estimate_size(obj) == sys.getsizeof(obj)


# --- bounds ---------------------------------------------------------------------------------


def test_items_past_the_budget_are_extrapolated() -> None:
    """A million floats are estimated within 5 % while visiting only max_items of them."""
    floats = [float(i) for i in range(1_000_000)]
    truth = sys.getsizeof(floats) + 24 * len(floats)
    assert close_to(estimate_size(floats, max_items=2000), truth)


def test_extrapolation_does_not_multiply_a_shared_buffer(big: np.ndarray) -> None:
    """20 000 views of one 80 MB buffer still count it once, past the item budget."""
    views = [big[i : i + 10] for i in range(20_000)]
    size = estimate_size(views, max_items=1000)
    assert close_to(size, big.nbytes + 20_000 * (112 + 8 + 16), 0.05)


def test_walk_visits_no_more_than_max_items() -> None:
    """The walk stops sizing items once the budget is spent, whatever the container size."""
    sized: list[int] = []

    class Counted:
        def __sizeof__(self) -> int:
            sized.append(1)
            return 100

    items = [Counted() for _ in range(50_000)]
    estimate = estimate_size(items, max_items=500)
    assert len(sized) <= 501
    assert close_to(estimate, sys.getsizeof(items) + 50_000 * sys.getsizeof(items[0]), 0.05)


def test_depth_bound_and_cycles_terminate() -> None:
    """Very deep nesting and self-references finish without recursion errors."""
    deep: list[Any] = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    assert estimate_size(deep) > 0
    cycle: list[Any] = [np.zeros(1000)]
    cycle.append(cycle)
    assert close_to(estimate_size(cycle), 8000, 0.1)


def test_arrays_below_the_depth_bound_still_count_their_buffers() -> None:
    """An array nested exactly at max_depth still counts its buffer, not just its header."""
    nested = {"a": {"b": np.zeros(MB // 8)}}
    assert close_to(estimate_size(nested, max_depth=2), MB)


# --- speed ----------------------------------------------------------------------------------


def _per_call(func: Any, number: int = 20_000, repeat: int = 7) -> float:
    """The fastest of several timed batches, in seconds per call."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number


def test_plain_array_takes_under_a_microsecond() -> None:
    """Sizing a plain 64 MB ndarray costs at most 1 µs (more only if sys.getsizeof itself is
    slowed by load), so it is O(1), not proportional to the array."""
    arr = np.zeros(8 << 20)
    ours = _per_call(lambda: estimate_size(arr))
    floor = _per_call(lambda: sys.getsizeof(arr))
    assert ours <= max(1e-6, 8 * floor), f"{ours * 1e9:.0f} ns per call"
