"""``memoize`` keys what a function carries besides its arguments, or refuses to memoize it.

Closure cells, defaults, a bound ``self``, a partial's arguments and the code itself (two
lambdas on one line share their source) all decide a result; a key that left one out served
one function's results for another (#22, point 5).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.processing.managers import CacheManager


def _make_scaler(cache: CacheManager, factor: Any) -> Any:
    @cache.memoize
    def scale(x: int) -> Any:
        return x * factor

    return scale


def test_closures_over_different_values_do_not_share_results() -> None:
    """``make(2)`` and ``make(3)`` are two functions: ``by3(10)`` is 30, not ``by2``'s 20."""
    with CacheManager() as cache:
        by2, by3 = _make_scaler(cache, 2), _make_scaler(cache, 3)
        assert (by2(10), by3(10)) == (20, 30)
        assert by2.cache_key(10) != by3.cache_key(10)
        assert _make_scaler(cache, 2).cache_key(10) == by2.cache_key(10)


def test_closure_results_on_disk_are_found_by_the_same_closure_only(tmp_path: Path) -> None:
    """Across managers on one directory (as across runs) ``by3`` finds its own results."""
    with CacheManager(cache_dir=tmp_path) as cache:
        assert _make_scaler(cache, 2)(10) == 20
    with CacheManager(cache_dir=tmp_path) as cache:
        by3 = _make_scaler(cache, 3)
        assert by3(10) == 30
        assert cache.get_stats().disk.hits == 0
    with CacheManager(cache_dir=tmp_path) as cache:
        assert _make_scaler(cache, 3)(10) == 30
        assert cache.get_stats().disk.hits == 1


def test_two_lambdas_on_one_line_do_not_share_results() -> None:
    """Lambdas whose source line is the same but whose code differs get their own keys."""
    with CacheManager() as cache:
        double, triple = cache.memoize(lambda x: x * 2), cache.memoize(lambda x: x * 3)
        assert (double(10), triple(10)) == (20, 30)


def test_defaults_replaced_after_decoration_change_the_key() -> None:
    """Assigning ``__defaults__`` after decorating is seen: the new default is computed."""
    with CacheManager() as cache:

        def power(x: int, n: int = 2) -> int:
            return int(x**n)

        memoized = cache.memoize(power)
        assert memoized(3) == 9
        power.__defaults__ = (3,)
        assert memoized(3) == 27


def test_a_captured_name_rebound_after_decoration_changes_the_key() -> None:
    """A ``nonlocal`` rebinding of a captured value gives the calls after it a new key."""
    with CacheManager() as cache:
        offset = 1

        @cache.memoize
        def shifted(x: int) -> int:
            return x + offset

        assert shifted(10) == 11
        offset = 5
        assert shifted(10) == 15


@dataclass(frozen=True)
class _Lens:
    redshift: float

    def distance(self, scale: float) -> float:
        return self.redshift * scale


def test_bound_methods_of_different_objects_do_not_share_results() -> None:
    """``self`` is part of a bound method's key, like any argument."""
    with CacheManager() as cache:
        near, far = cache.memoize(_Lens(0.5).distance), cache.memoize(_Lens(2.0).distance)
        assert (near(10.0), far(10.0)) == (5.0, 20.0)


def _weighted(weight: float, x: float) -> float:
    return weight * x


def test_partials_with_different_arguments_do_not_share_results() -> None:
    """A partial's bound arguments are keyed; an equal partial made again shares its key."""
    with CacheManager() as cache:
        half = cache.memoize(functools.partial(_weighted, 0.5))
        twice = cache.memoize(functools.partial(_weighted, 2.0))
        assert (half(4.0), twice(4.0)) == (2.0, 8.0)
        again = cache.memoize(functools.partial(_weighted, 0.5))
        assert again.cache_key(4.0) == half.cache_key(4.0)


def test_a_captured_helper_is_keyed_by_its_code_and_its_own_captures() -> None:
    """A nested helper that closes over a value keys the memoized function that calls it."""

    def make(factor: int) -> Any:
        def helper(x: int) -> int:
            return x * factor

        @cache.memoize
        def outer(x: int) -> int:
            return helper(x) + 1

        return outer

    with CacheManager() as cache:
        assert (make(2)(10), make(3)(10)) == (21, 31)


def test_captured_arrays_are_keyed_by_content() -> None:
    """Two closures over equal arrays share results; over different arrays they do not."""
    with CacheManager() as cache:
        first = _make_scaler(cache, np.arange(3.0))
        same = _make_scaler(cache, np.arange(3.0))
        other = _make_scaler(cache, np.arange(3.0) + 1)
        assert first.cache_key(2) == same.cache_key(2) != other.cache_key(2)
        np.testing.assert_array_equal(other(2), [2.0, 4.0, 6.0])


def test_a_recursive_nested_memoized_function_computes_each_value_once() -> None:
    """A nested function that calls itself through its own memoized name is keyed and works."""
    calls: list[int] = []
    with CacheManager() as cache:

        @cache.memoize
        def fibonacci(n: int) -> int:
            calls.append(n)
            return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)

        assert fibonacci(20) == 6765
        assert sorted(calls) == list(range(21))


def test_a_closure_over_an_object_without_a_key_is_refused_naming_it() -> None:
    """Capturing a lock cannot be keyed: the CacheError names the variable and the function."""
    lock = threading.Lock()

    def guarded(x: int) -> int:
        with lock:
            return x

    with CacheManager() as cache, pytest.raises(CacheError) as info:
        cache.memoize(guarded)
    message = str(info.value)
    assert "'lock'" in message
    assert "guarded" in message
    assert "of type lock" in message
    assert "argument" in info.value.hint


def test_a_callable_object_without_a_key_is_refused() -> None:
    """An instance with ``__call__`` hides its state: refused unless it can be keyed by value."""

    class Counter:
        def __init__(self) -> None:
            self.step = 1

        def __call__(self, x: int) -> int:
            return x + self.step

    with CacheManager() as cache, pytest.raises(CacheError, match="Counter"):
        cache.memoize(Counter())


@dataclass(frozen=True)
class _Scale:
    factor: float

    def __call__(self, x: float) -> float:
        return self.factor * x


def test_a_dataclass_callable_is_keyed_by_its_fields() -> None:
    """A callable dataclass instance is keyed by value: equal fields share, others do not."""
    with CacheManager() as cache:
        two, three = cache.memoize(_Scale(2.0)), cache.memoize(_Scale(3.0))
        assert (two(1.0), three(1.0)) == (2.0, 3.0)
        assert cache.memoize(_Scale(2.0)).cache_key(1.0) == two.cache_key(1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-1000, 1000))
def test_closure_keys_are_equal_exactly_when_captured_values_are(a: int, b: int, x: int) -> None:
    """For any two captured integers: equal keys iff equal values, and each result is its own."""
    with CacheManager() as cache:
        by_a, by_b = _make_scaler(cache, a), _make_scaler(cache, b)
        assert (by_a.cache_key(x) == by_b.cache_key(x)) == (a == b)
        assert (by_b(x), by_a(x)) == (x * b, x * a)


@settings(max_examples=40, deadline=None)
@given(st.integers(-20, 20), st.integers(-20, 20))
def test_lambdas_differing_only_in_a_constant_never_share(a: int, b: int) -> None:
    """Lambdas compiled from one line with different constants get different keys."""
    first, second = eval(f"(lambda x: x * {a}, lambda x: x * {b})")
    with CacheManager() as cache:
        by_a, by_b = cache.memoize(first), cache.memoize(second)
        assert (by_a.cache_key(1) == by_b.cache_key(1)) == (a == b)
        assert (by_a(7), by_b(7)) == (7 * a, 7 * b)
