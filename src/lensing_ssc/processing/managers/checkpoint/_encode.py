"""A checkpoint state as a JSON tree plus raw pieces: plain data never goes through pickle.

:func:`encode_state` walks a state and returns a JSON-ready tree in which dicts with string
keys, lists, strings, finite floats, ints, bools and ``None`` appear as themselves, and
everything else as a one-key object whose key starts with ``$``::

    {"$tuple": [...]}  {"$set": [...]}  {"$frozenset": [...]}  {"$float": "nan"}
    {"$int": "-0x1f..."}  {"$complex": [re, im]}  {"$dict": [[key, value], ...]}
    {"$bytes": "<base64>" | {"nbytes": n, "blob": digest}}   ($bytearray likewise)
    {"$array": {"dtype": "<f8", "shape": [...], "order": "F", "values"|"b64"|"blob": ...}}
    {"$scalar": {"dtype": "<f4", "value": 1.5}}   numpy scalars keep their type
    {"$pickle": {"type": "pkg.Class", "b64"|"blob": ...}}   anything else

A dict whose keys are not all strings (``{3: ...}``, ``{(1, 2): ...}``), or whose only key
starts with ``$``, is stored as ``$dict`` pairs, so keys come back with their type and
insertion order. Arrays and bytes larger than ``inline_limit`` become *pieces*: raw byte
runs that :mod:`._store` writes as content-addressed blobs and names in the node
(``"blob"``). :func:`decode_state` inverts all of this given a :class:`PieceReader`.

A state may nest containers (dicts, lists, tuples, sets) :data:`MAX_DEPTH` deep, no more:
reading it back recurses a few frames per level, and a deeper state, though it would
save, could not be loaded from a caller already deep in its own stack. It is refused at
save instead, and a deeper stored tree is damage (:mod:`._schema`).

Decoding is in :mod:`._decode`; files, compression and checksums in :mod:`._store` and
:mod:`._format`.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import CheckpointError

__all__ = [
    "MAX_DEPTH",
    "ROOT",
    "EncodedState",
    "Piece",
    "TreeError",
    "encode_state",
    "exact_values",
    "key_path",
]

ROOT = "state"
# Containers a state may nest. Loading spends at most 4 frames of the recursion limit
# (1000 by default) per level, and parsing the manifest 3: at 100 levels a caller keeps
# half the limit for itself, where a state 248 tuples deep needed nearly all of it.
MAX_DEPTH = 100
_BIG_INT_BITS = 8192  # beyond this, ints are stored as hex (JSON readers choke on huge numbers)
_EXACT_LIST_KINDS = frozenset("biuf")
_PICKLE_PROTOCOL = 5


class TreeError(ValueError):
    """A stored tree is malformed at ``path`` (damage or a foreign file)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(eq=False)
class Piece:
    """A run of bytes stored as a blob: an array's memory, a bytes value or a pickle."""

    kind: str  # "array", "bytes" or "pickle"
    data: Any  # a flat uint8 array or bytes: exactly the bytes to store
    path: str  # where it sits in the state, for messages
    node: dict[str, Any]  # the tree node that receives the blob's digest
    buffer: bool = False  # data is a snapshot buffer from the allocator (reusable after)

    @property
    def nbytes(self) -> int:
        """Length of the data in bytes."""
        return int(self.data.nbytes) if isinstance(self.data, np.ndarray) else len(self.data)


@dataclass
class EncodedState:
    """The outcome of :func:`encode_state`."""

    tree: Any
    pieces: list[Piece] = field(default_factory=list)
    pickled: list[str] = field(default_factory=list)
    data_bytes: int = 0


def key_path(path: str, key: Any) -> str:
    """The path of ``key`` inside the mapping at ``path``: ``state["results"][3]``."""
    if type(key) is str:
        return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
    return f"{path}[{key!r}]"


def _b64(data: Any) -> str:
    return base64.b64encode(data).decode("ascii")


def _dtype_to_json(dtype: np.dtype[Any]) -> Any:
    descr = np.lib.format.dtype_to_descr(dtype)
    return descr if isinstance(descr, str) else {"fields": repr(descr)}


def exact_values(arr: np.ndarray[Any, Any]) -> Any:
    """``arr.tolist()`` when JSON holds the values exactly, else ``None``."""
    dtype = arr.dtype
    if dtype.kind not in _EXACT_LIST_KINDS or dtype.itemsize > 8 or dtype.fields is not None:
        return None
    if dtype.kind == "f" and not bool(np.isfinite(arr).all()):
        return None
    return arr.tolist()


class _Encoder:
    def __init__(
        self, *, inline_limit: int | None, copy: bool, allocate: Callable[[int], Any]
    ) -> None:
        self.inline_limit = inline_limit
        self.copy = copy
        self.allocate = allocate
        self.out = EncodedState(tree=None)
        self._active: set[int] = set()
        self._depth = 0

    def _inline(self, nbytes: int) -> bool:
        return self.inline_limit is None or nbytes <= self.inline_limit

    def _enter(self, container: Any, path: str) -> None:
        if id(container) in self._active:
            raise CheckpointError(
                f"cannot store {path}: it contains itself (a reference cycle)",
                value=path,
                hint="break the cycle, or store the objects by index instead of by reference",
            )
        self._active.add(id(container))

    def encode(self, value: Any, path: str) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            return value if value.bit_length() <= _BIG_INT_BITS else {"$int": hex(value)}
        if kind is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if kind is dict:
            return self._container(value, path, self._dict)
        if kind is list:
            return self._container(value, path, self._items)
        if kind is tuple:
            return {"$tuple": self._container(value, path, self._items)}
        if kind is set or kind is frozenset:
            return {f"${kind.__name__}": self._container(value, path, self._members)}
        if kind is complex:
            return {"$complex": [self.encode(value.real, path), self.encode(value.imag, path)]}
        if kind is bytes or kind is bytearray:
            return {f"${kind.__name__}": self._bytes(bytes(value), path, "bytes")}
        if (kind is np.ndarray or kind is np.memmap) and not value.dtype.hasobject:
            return {"$array": self._array(value, path)}
        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return {"$scalar": self._scalar(value)}
        return {"$pickle": self._pickle(value, path)}

    def _container(self, value: Any, path: str, encode: Callable[[Any, str], Any]) -> Any:
        self._enter(value, path)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                shown = path if len(path) <= 80 else f"{path[:60]}...{path[-16:]}"
                raise CheckpointError(
                    f"cannot store {shown}: the state is nested more than {MAX_DEPTH} levels "
                    "deep, deeper than can be loaded back reliably",
                    value=shown,
                    hint="flatten it, e.g. keep deep structures as arrays or lists of records",
                )
            return encode(value, path)
        finally:
            self._depth -= 1
            self._active.discard(id(value))

    def _items(self, value: Any, path: str) -> list[Any]:
        return [self.encode(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def _members(self, value: Any, path: str) -> list[Any]:
        return [self.encode(item, f"{path}{{{item!r}}}") for item in value]

    def _dict(self, value: dict[Any, Any], path: str) -> Any:
        keys = list(value)
        plain = all(type(key) is str for key in keys)
        if plain and not (len(keys) == 1 and keys[0].startswith("$")):
            return {key: self.encode(item, key_path(path, key)) for key, item in value.items()}
        return {
            "$dict": [
                [self.encode(key, f"{path}<key {key!r}>"), self.encode(item, key_path(path, key))]
                for key, item in value.items()
            ]
        }

    def _bytes(self, data: bytes, path: str, kind: str) -> Any:
        self.out.data_bytes += len(data)
        if self._inline(len(data)):
            return _b64(data)
        node: dict[str, Any] = {"nbytes": len(data)}
        self.out.pieces.append(Piece(kind, data, path, node))
        return node

    def _array(self, arr: np.ndarray[Any, Any], path: str) -> dict[str, Any]:
        node: dict[str, Any] = {"dtype": _dtype_to_json(arr.dtype), "shape": list(arr.shape)}
        self.out.data_bytes += int(arr.nbytes)
        if self._inline(int(arr.nbytes)):
            values = exact_values(arr)
            if values is not None:
                node["values"] = values
                if arr.ndim > 1 and not arr.flags.c_contiguous and arr.flags.f_contiguous:
                    node["order"] = "F"
                return node
        source = arr
        if not arr.flags.c_contiguous and arr.flags.f_contiguous:
            source = arr.T  # stored in its own (Fortran) memory order, restored on load
            node["order"] = "F"
        if self._inline(int(arr.nbytes)):
            node["b64"] = _b64(np.ascontiguousarray(source).reshape(-1).view(np.uint8))
            return node
        if self.copy or not source.flags.c_contiguous:
            # A snapshot (or a strided view): copy once, in C order, into a flat buffer.
            flat = self.allocate(int(arr.nbytes)) if self.copy else np.empty(arr.nbytes, np.uint8)
            np.copyto(flat.view(arr.dtype).reshape(source.shape), source)
        else:
            flat = source.reshape(-1).view(np.uint8)
        self.out.pieces.append(Piece("array", flat, path, node, buffer=self.copy))
        return node

    def _scalar(self, value: np.generic) -> dict[str, Any]:
        arr = np.asarray(value)
        values = exact_values(arr)
        node: dict[str, Any] = {"dtype": _dtype_to_json(arr.dtype)}
        if values is not None:
            node["value"] = values
        else:
            node["b64"] = _b64(arr.reshape(-1).view(np.uint8))
        return node

    def _pickle(self, value: Any, path: str) -> dict[str, Any]:
        kind = type(value)
        name = f"{kind.__module__}.{kind.__qualname__}"
        try:
            data = pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
        except Exception as exc:  # pickling runs user code: any error means "cannot store"
            raise CheckpointError(
                f"cannot store {path}: a {name} object cannot be pickled "
                f"({type(exc).__name__}: {exc})",
                value=path,
                hint="convert it to plain data (dict, list, array) or make its class picklable",
            ) from exc
        self.out.pickled.append(path)
        node: dict[str, Any] = {"type": name}
        stored = self._bytes(data, path, "pickle")
        if isinstance(stored, str):
            node["b64"] = stored
        else:
            node.update(stored)
        return node


def _new_buffer(nbytes: int) -> np.ndarray[Any, Any]:
    return np.empty(nbytes, dtype=np.uint8)


def encode_state(
    state: Any,
    *,
    inline_limit: int | None,
    copy: bool,
    allocate: Callable[[int], Any] = _new_buffer,
) -> EncodedState:
    """Encode ``state`` as a JSON-ready tree plus the pieces to store as blobs.

    Args:
        state: The object to checkpoint.
        inline_limit: Arrays, bytes and pickles up to this many bytes stay in the tree;
            ``None`` keeps everything in the tree (the JSON format).
        copy: Copy array memory into the pieces (a snapshot for a background save);
            otherwise pieces view the caller's arrays.
        allocate: Returns a flat uint8 array of the given length to copy a snapshot
            array into (a pool of reused buffers saves page faults).

    Raises:
        CheckpointError: A part of the state cannot be stored; names its key path.
    """
    encoder = _Encoder(inline_limit=inline_limit, copy=copy, allocate=allocate)
    try:
        encoder.out.tree = encoder.encode(state, ROOT)
    except RecursionError as exc:
        raise CheckpointError(
            "cannot store the state: it is nested too deeply",
            hint="flatten it, e.g. keep deep structures as arrays or lists of records",
        ) from exc
    return encoder.out
