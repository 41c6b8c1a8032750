"""Property tests: the cache behaves like a dict within its limits, and like its policy beyond."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache._keys import encode_key

KEYS = st.one_of(
    st.integers(-3, 8),
    st.sampled_from(["a", "b", "kappa", "../x"]),
    st.tuples(st.sampled_from(["map", "cl"]), st.integers(0, 3)),
)
VALUES = st.one_of(
    st.integers(),
    st.text(max_size=20),
    st.lists(st.floats(allow_nan=False), max_size=5),
    st.builds(lambda n, x: np.full(n, x), st.integers(0, 40), st.floats(-1e3, 1e3)),
)
TAGS = st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), KEYS, VALUES, TAGS),
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("delete"), KEYS),
        st.tuples(st.just("contains"), KEYS),
        st.tuples(st.just("invalidate"), TAGS),
        st.tuples(st.just("shrink"), st.floats(0, 1)),
    ),
    max_size=40,
)


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        return (
            isinstance(left, np.ndarray)
            and isinstance(right, np.ndarray)
            and (left.dtype == right.dtype and np.array_equal(left, right))
        )
    return bool(left == right)


def _run_against_dict(cache: CacheManager, ops: list[tuple[Any, ...]], disk: bool) -> None:
    model: dict[Any, tuple[Any, tuple[str, ...]]] = {}
    for op in ops:
        if op[0] == "put":
            _, key, value, tags = op
            cache.put(key, value, tags=tags)
            model[key] = (value, tuple(tags))
        elif op[0] == "get":
            expected = model.get(op[1], (None,))[0]
            assert _same(cache.get(op[1]), expected)
        elif op[0] == "delete":
            assert cache.delete(op[1]) == (op[1] in model)
            model.pop(op[1], None)
        elif op[0] == "contains":
            assert (op[1] in cache) == (op[1] in model)
        elif op[0] == "invalidate":
            doomed = [key for key, (_, tags) in model.items() if set(tags) & set(op[1])]
            assert cache.invalidate_by_tags(op[1]) == len(doomed)
            for key in doomed:
                del model[key]
        elif op[0] == "shrink":
            cache.shrink(fraction=op[1])
            if not disk:  # memory only: shrinking forgets; mirror what survived
                model = {key: item for key, item in model.items() if key in cache}
    for key, (value, _) in model.items():
        assert _same(cache.get(key), value)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, policy=st.sampled_from(["lru", "lfu", "fifo"]))
def test_memory_cache_matches_a_dict_within_limits(ops: list[tuple[Any, ...]], policy: str) -> None:
    """Within its limits, a memory cache answers every operation as a dict would."""
    with CacheManager(max_entries=1000, eviction_policy=policy) as cache:
        _run_against_dict(cache, ops, disk=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, policy=st.sampled_from(["lru", "lfu", "fifo"]))
def test_two_tier_cache_matches_a_dict_and_persists(
    ops: list[tuple[Any, ...]], policy: str
) -> None:
    """With a disk tier, operations match a dict, shrink loses nothing, and all persists."""
    with tempfile.TemporaryDirectory() as directory:
        with CacheManager(max_entries=1000, eviction_policy=policy, cache_dir=directory) as cache:
            _run_against_dict(cache, ops, disk=True)
            survivors = {key: cache.get(key) for key in _keys_of(ops) if key in cache}
        with CacheManager(cache_dir=Path(directory)) as reopened:
            for key, value in survivors.items():
                assert _same(reopened.get(key), value)


def _keys_of(ops: list[tuple[Any, ...]]) -> set[Any]:
    return {op[1] for op in ops if op[0] in {"put", "get", "delete", "contains"}}


class _PolicyModel:
    """A naive reference of each policy: O(n), obviously right."""

    def __init__(self, policy: str, capacity: int) -> None:
        self.policy = policy
        self.capacity = capacity
        self.items: dict[Any, Any] = {}
        self.uses: dict[Any, int] = {}
        self.stamp: dict[Any, int] = {}
        self.clock = 0

    def _tick(self, key: Any) -> None:
        self.clock += 1
        self.stamp[key] = self.clock

    def get(self, key: Any) -> Any:
        if key not in self.items:
            return None
        if self.policy == "lru":
            self._tick(key)
        elif self.policy == "lfu":
            self.uses[key] += 1
            self._tick(key)
        return self.items[key]

    def put(self, key: Any, value: Any) -> None:
        self.delete(key)
        if len(self.items) >= self.capacity:
            if self.policy == "lfu":
                victim = min(self.items, key=lambda k: (self.uses[k], self.stamp[k]))
            else:
                victim = min(self.items, key=lambda k: self.stamp[k])
            self.delete(victim)
        self.items[key] = value
        self.uses[key] = 1
        self._tick(key)

    def delete(self, key: Any) -> None:
        if key in self.items:
            del self.items[key], self.uses[key], self.stamp[key]


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from(["lru", "lfu", "fifo"]),
    capacity=st.integers(1, 6),
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "put", "get", "delete"]), st.integers(0, 10)),
        max_size=80,
    ),
)
def test_eviction_follows_the_policy_exactly(
    policy: str, capacity: int, ops: list[tuple[str, int]]
) -> None:
    """Beyond its entry limit the cache keeps exactly the keys its policy says."""
    model = _PolicyModel(policy, capacity)
    with CacheManager(max_entries=capacity, eviction_policy=policy) as cache:
        for step, (action, key) in enumerate(ops):
            if action == "put":
                cache.put(key, step)
                model.put(key, step)
            elif action == "get":
                assert cache.get(key) == model.get(key)
            else:
                cache.delete(key)
                model.delete(key)
            assert set(cache._memory.values) == set(model.items)
        assert cache.get_stats().entries <= capacity


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 400_000), max_size=30), cap_mb=st.floats(0.2, 2.0))
def test_bytes_never_exceed_the_limit(sizes: list[int], cap_mb: float) -> None:
    """Whatever is put, the memory tier's bytes stay within max_size_mb, and are exact."""
    with CacheManager(max_size_mb=cap_mb, max_entries=10) as cache:
        for i, size in enumerate(sizes):
            cache.put(i, bytes(size))
            stats = cache.get_stats()
            assert stats.bytes <= cap_mb * 1024 * 1024
            assert stats.entries <= 10
        held = sum(len(value) + 33 for value in cache._memory.values.values())
        assert cache.get_stats().bytes == held


PLAIN_KEYS = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.binary(max_size=5),
    ),
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=300)
@given(left=PLAIN_KEYS, right=PLAIN_KEYS)
def test_key_encoding_agrees_with_dict_equality(left: Any, right: Any) -> None:
    """Two keys encode alike exactly when a dict treats them as one key."""
    same_key = left == right and hash(left) == hash(right)
    assert (encode_key(left) == encode_key(right)) == same_key


LARGE_ARRAYS = st.builds(
    lambda dtype, rows, cols, order, seed: np.asarray(
        np.random.default_rng(seed).integers(-1000, 1000, (rows, cols)).astype(dtype),
        order=order,
    ),
    st.sampled_from(["<f8", ">f4", "<i2", "<c16", "u1"]),
    st.integers(300, 700),
    st.integers(230, 300),
    st.sampled_from(["C", "F"]),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=LARGE_ARRAYS, durable=st.booleans(), memory_map=st.sampled_from([False, "verify"]))
def test_large_arrays_read_back_exactly_however_written_and_read(
    value: np.ndarray, durable: bool, memory_map: Any
) -> None:
    """Value-file arrays return exactly (dtype, shape, order, bytes), however written or read."""
    with tempfile.TemporaryDirectory() as directory:
        with CacheManager(cache_dir=directory) as cache:
            cache.put("v", value, durable=durable)
        with CacheManager(cache_dir=directory, memory_map=memory_map) as reopened:
            back = reopened.get("v")
            assert back.dtype == value.dtype
            assert back.shape == value.shape
            assert back.flags.f_contiguous == value.flags.f_contiguous
            assert back.tobytes(order="A") == value.tobytes(order="A")
            del back
