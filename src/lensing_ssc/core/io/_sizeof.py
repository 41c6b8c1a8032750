"""How many bytes of memory a value holds, for the cache's size accounting.

:func:`estimate_size` counts what keeping a value alive costs: each numpy array's header
plus the buffer it keeps alive, counted once however many arrays view it. A slice of an
80 MB array therefore costs 80 MB (dropping the slice is what frees them), two views of one
buffer cost it once, and an array made with ``np.frombuffer`` costs the bytes object under
it. ``sys.getsizeof`` gets all of these wrong (it reports a view as ~112 bytes).

Containers (dict, list, tuple, set, frozenset, deque, dataclass instances, object arrays)
are walked to ``max_depth`` levels and ``max_items`` items in all; past the item budget, a
container's remaining items are extrapolated from the median size of the ones visited, so
the walk stays fast on a list of a million floats without missing its bulk. Every object
is counted once. Other objects count as ``sys.getsizeof`` says (their ``__dict__`` is not
followed). Serialised size on disk is the codecs' concern (:mod:`._codecs`), not this one.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_ITEMS", "estimate_size"]

DEFAULT_MAX_DEPTH = 8
"""Container levels walked below the value itself."""

DEFAULT_MAX_ITEMS = 10_000
"""Items visited in all before the rest are extrapolated."""

_ndarray = np.ndarray
_getsizeof = sys.getsizeof
_UNSIZED = 64  # bytes assumed for an object whose __sizeof__ fails
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)
_SEQUENCES = (list, tuple, set, frozenset, deque)


def estimate_size(
    obj: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int = DEFAULT_MAX_ITEMS
) -> int:
    """Estimate the bytes of memory ``obj`` keeps alive, counting shared buffers once.

    Args:
        obj: Any value; numpy arrays and containers of them are measured exactly.
        max_depth: Container levels walked; deeper containers count by their own
            ``sys.getsizeof`` only (arrays still count their buffers).
        max_items: Items visited in all; the rest of a container is extrapolated.

    Example:
        >>> big = np.zeros(10_000_000)  # 80 MB
        >>> estimate_size({"a": big[:10], "b": big[10:]}) // 1_000_000
        80
    """
    # Fast path: an array that owns its buffer (the common cache value) in O(1).
    if type(obj) is _ndarray and obj.base is None and not obj.dtype.hasobject:
        size: int = _getsizeof(obj)
        nbytes: int = obj.nbytes
        return size if size >= nbytes else size + nbytes  # a buffer not owned by numpy
    return _Walk(max_depth, max_items).size(obj, 0)


def _buffer_root(arr: Any) -> Any:
    """Follow ``.base`` (arrays) and ``.obj`` (memoryviews) to the object owning the bytes.

    numpy's stride tricks put a plain holder object between a view and its array; its
    ``.base`` is followed too when it is an array.
    """
    node = arr
    while True:
        parent: Any
        if isinstance(node, _ndarray):
            parent = node.base
        elif isinstance(node, memoryview):
            parent = node.obj
        else:
            parent = getattr(node, "base", None)
            if not isinstance(parent, _ndarray):
                return node
        if parent is None:
            return node
        node = parent


class _Walk:
    """One bounded, de-duplicating walk of an object graph."""

    __slots__ = ("budget", "keep", "max_depth", "seen")

    def __init__(self, max_depth: int, max_items: int) -> None:
        self.max_depth = max_depth
        self.budget = max_items
        self.seen: set[int] = set()
        self.keep: list[Any] = []  # keeps visited temporaries alive so ids stay unique

    def size(self, obj: Any, depth: int) -> int:
        key = id(obj)
        if key in self.seen:
            return 0
        self.seen.add(key)
        self.keep.append(obj)
        if isinstance(obj, _LEAVES):
            return int(_getsizeof(obj, _UNSIZED))
        if isinstance(obj, _ndarray):
            return self._array(obj, depth)
        if isinstance(obj, memoryview):
            return int(_getsizeof(obj)) + self._buffer(_buffer_root(obj), obj.nbytes)
        own = int(_getsizeof(obj, _UNSIZED))
        if depth >= self.max_depth:
            return own
        if isinstance(obj, dict):
            return own + self._items(obj.items(), len(obj), depth, pairs=True)
        if isinstance(obj, _SEQUENCES):
            return own + self._items(obj, len(obj), depth)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            names = [field.name for field in dataclasses.fields(obj)]
            attrs = getattr(obj, "__dict__", None)
            if attrs is not None:
                own += int(_getsizeof(attrs))
            values = [getattr(obj, name) for name in names]
            return own + self._items(values, len(values), depth)
        return own

    def _array(self, arr: np.ndarray[Any, Any], depth: int) -> int:
        total = int(_getsizeof(arr))
        root = _buffer_root(arr)
        if root is not arr:
            total += self._buffer(root, arr.nbytes)
        elif total < arr.nbytes:  # base-less array over memory numpy does not own
            total += arr.nbytes
        if arr.dtype.hasobject and depth < self.max_depth:
            total += self._items(arr.flat, arr.size, depth)
        return total

    def _buffer(self, root: Any, fallback: int) -> int:
        """Bytes of the buffer owned by ``root``, or 0 if already counted."""
        key = id(root)
        if key in self.seen:
            return 0
        self.seen.add(key)
        if isinstance(root, (bytes, bytearray)):
            return int(_getsizeof(root))
        if isinstance(root, _ndarray):
            size = int(_getsizeof(root))
            return size if size >= root.nbytes else size + root.nbytes
        try:
            with memoryview(root) as view:
                return view.nbytes
        except (TypeError, ValueError, BufferError):
            return fallback

    def _items(self, items: Iterable[Any], count: int, depth: int, *, pairs: bool = False) -> int:
        total = 0
        sizes: list[int] = []
        for index, item in enumerate(items):
            if pairs:
                key, value = item
                size = self.size(key, depth + 1) + self.size(value, depth + 1)
            else:
                size = self.size(item, depth + 1)
            total += size
            sizes.append(size)
            self.budget -= 1
            if self.budget <= 0 and index + 1 < count:
                # The median ignores one-off giants (a buffer counted once, then shared).
                sizes.sort()
                return total + (count - index - 1) * sizes[len(sizes) // 2]
        return total
