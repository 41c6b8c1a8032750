"""Rebuilding a checkpoint state from its JSON tree: the inverse of :mod:`._encode`.

:func:`decode_state` reads the tree :func:`._encode.encode_state` wrote, asking a
:class:`PieceReader` (a :class:`._reading.BlobReader`) for blob-backed arrays and bytes, and
refuses pickled pieces unless allowed. Malformed trees raise :class:`TreeError` naming the
key path; they only come from damaged or foreign files, because manifests are checksummed.
:func:`blob_paths` maps blobs to the key paths that use them, for damage reports.
"""

from __future__ import annotations

import ast
import base64
import binascii
import math
import pickle
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.managers.checkpoint._encode import ROOT, TreeError, key_path

__all__ = ["PieceReader", "blob_paths", "decode_state"]

_MAX_DIMS = 64  # numpy's limit (NPY_MAXDIMS)
_MAX_BYTES = 2**63  # no array can be larger (numpy's sizes are signed 64-bit)


class PieceReader(Protocol):
    """Where :func:`decode_state` gets the content of blob-backed nodes."""

    def read_array(
        self, digest: str, dtype: np.dtype[Any], shape: tuple[int, ...], order: str, path: str
    ) -> np.ndarray[Any, Any]:
        """Return the array stored in blob ``digest`` with this dtype, shape and order."""
        ...

    def read_bytes(self, digest: str, path: str) -> bytes:
        """Return the bytes stored in blob ``digest``."""
        ...


# What numpy and ast raise for a dtype, shape or value that does not make an array: a
# stored tree only holds such things when damaged or crafted.
_NOT_AN_ARRAY = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    SyntaxError,
    OverflowError,
    MemoryError,
    RecursionError,
)


def _shown(spec: Any) -> str:
    text = repr(spec)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _dtype_from_json(spec: Any, path: str) -> np.dtype[Any]:
    try:
        descr = ast.literal_eval(spec["fields"]) if isinstance(spec, dict) else spec
        dtype = np.lib.format.descr_to_dtype(descr)
    except _NOT_AN_ARRAY as exc:
        raise TreeError(path, f"invalid dtype {_shown(spec)}") from exc
    if dtype.hasobject:
        raise TreeError(path, f"dtype {_shown(spec)} holds Python objects")
    return dtype


def _shape(spec: Any, dtype: np.dtype[Any], path: str) -> tuple[int, ...]:
    if (
        type(spec) is not list
        or len(spec) > _MAX_DIMS
        or any(type(n) is not int or n < 0 for n in spec)
        or math.prod(spec) * max(dtype.itemsize, 1) >= _MAX_BYTES
    ):
        raise TreeError(path, f"invalid shape {_shown(spec)}")
    return tuple(spec)


def _unb64(text: Any, path: str) -> bytes:
    if type(text) is not str:
        raise TreeError(path, "inline data is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TreeError(path, "inline data is not valid base64") from exc


class _Decoder:
    def __init__(self, reader: PieceReader, *, allow_pickle: bool) -> None:
        self.reader = reader
        self.allow_pickle = allow_pickle
        self.tags: dict[str, Callable[[Any, str], Any]] = {
            "$tuple": lambda body, path: tuple(self._list(body, path)),
            "$set": lambda body, path: self._members(set, body, path),
            "$frozenset": lambda body, path: self._members(frozenset, body, path),
            "$float": self._float,
            "$int": self._int,
            "$complex": self._complex,
            "$dict": self._pairs,
            "$bytes": self._bytes,
            "$bytearray": lambda body, path: bytearray(self._bytes(body, path)),
            "$array": self._array,
            "$scalar": self._scalar,
            "$pickle": self._pickle,
        }

    def decode(self, node: Any, path: str) -> Any:
        kind = type(node)
        if node is None or kind is bool or kind is int or kind is float or kind is str:
            return node
        if kind is list:
            return self._list(node, path)
        if kind is dict:
            if len(node) == 1:
                ((key, body),) = node.items()
                if key.startswith("$"):
                    handler = self.tags.get(key)
                    if handler is None:
                        raise TreeError(path, f"unknown tag {_shown(key)}")
                    return handler(body, path)
            return {key: self.decode(item, key_path(path, key)) for key, item in node.items()}
        raise TreeError(path, f"unexpected {kind.__name__} in the tree")

    def _list(self, body: Any, path: str) -> list[Any]:
        if type(body) is not list:
            raise TreeError(path, "expected a list")
        return [self.decode(item, f"{path}[{i}]") for i, item in enumerate(body)]

    def _members(self, kind: Callable[[list[Any]], Any], body: Any, path: str) -> Any:
        items = self._list(body, path)
        try:
            return kind(items)
        except TypeError as exc:  # an unhashable member out of a damaged or foreign file
            raise TreeError(path, "a set member is not hashable") from exc

    def _float(self, body: Any, path: str) -> float:
        if body not in ("nan", "inf", "-inf"):
            raise TreeError(path, f"invalid float {_shown(body)}")
        return float(body)

    def _int(self, body: Any, path: str) -> int:
        try:
            return int(body, 16)
        except (TypeError, ValueError) as exc:
            raise TreeError(path, f"invalid int {_shown(body)}") from exc

    def _complex(self, body: Any, path: str) -> complex:
        parts = self._list(body, path)
        if len(parts) != 2 or any(type(p) is not float for p in parts):
            raise TreeError(path, "invalid complex number")
        return complex(parts[0], parts[1])

    def _pairs(self, body: Any, path: str) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for pair in self._raw_list(body, path):
            if type(pair) is not list or len(pair) != 2:
                raise TreeError(path, "invalid key/value pair")
            key = self.decode(pair[0], f"{path}<key>")
            try:
                out[key] = self.decode(pair[1], key_path(path, key))
            except TypeError as exc:  # an unhashable key out of a damaged or foreign file
                raise TreeError(path, f"unhashable key {_shown(key)}") from exc
        return out

    def _raw_list(self, body: Any, path: str) -> list[Any]:
        if type(body) is not list:
            raise TreeError(path, "expected a list")
        return body

    def _blob(self, body: dict[str, Any], path: str) -> str:
        digest = body.get("blob")
        if type(digest) is not str:
            raise TreeError(path, "no inline data and no blob")
        return digest

    def _bytes(self, body: Any, path: str) -> bytes:
        if type(body) is str:
            return _unb64(body, path)
        if type(body) is not dict:
            raise TreeError(path, "invalid bytes node")
        data = self.reader.read_bytes(self._blob(body, path), path)
        if len(data) != body.get("nbytes"):
            raise TreeError(path, "stored length differs from the recorded one")
        return data

    def _array(self, body: Any, path: str) -> np.ndarray[Any, Any]:
        if type(body) is not dict:
            raise TreeError(path, "invalid array node")
        dtype = _dtype_from_json(body.get("dtype"), path)
        shape = _shape(body.get("shape"), dtype, path)
        order = body.get("order", "C")
        if order not in ("C", "F"):
            raise TreeError(path, f"invalid order {_shown(order)}")
        if "values" in body:
            try:
                arr = np.array(body["values"], dtype=dtype).reshape(shape)
            except _NOT_AN_ARRAY as exc:
                raise TreeError(path, "inline values do not fit dtype and shape") from exc
            return np.asfortranarray(arr) if order == "F" else arr
        if "b64" in body:
            raw = bytearray(_unb64(body["b64"], path))
            count = math.prod(shape)
            if len(raw) != count * dtype.itemsize:
                raise TreeError(path, "inline data has the wrong length")
            try:
                flat = np.frombuffer(raw, dtype=dtype, count=count)
                return flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
            except _NOT_AN_ARRAY as exc:
                raise TreeError(path, "inline data does not fit dtype and shape") from exc
        return self.reader.read_array(self._blob(body, path), dtype, shape, order, path)

    def _scalar(self, body: Any, path: str) -> Any:
        if type(body) is not dict:
            raise TreeError(path, "invalid scalar node")
        dtype = _dtype_from_json(body.get("dtype"), path)
        try:
            if "value" in body:
                return np.array(body["value"], dtype=dtype)[()]
            raw = _unb64(body.get("b64"), path)
            return np.frombuffer(raw, dtype=dtype, count=1)[0]
        except _NOT_AN_ARRAY as exc:
            raise TreeError(path, "scalar value does not fit its dtype") from exc

    def _pickle(self, body: Any, path: str) -> Any:
        if type(body) is not dict:
            raise TreeError(path, "invalid pickle node")
        name = body.get("type", "object")
        if not self.allow_pickle:
            raise CheckpointError(
                f"refusing to unpickle {path} (a {name}) because allow_pickle=False",
                value=path,
                hint="load with allow_pickle=True only if you trust where the checkpoint came from",
            )
        data = _unb64(body["b64"], path) if "b64" in body else self._bytes(body, path)
        try:
            return pickle.loads(data)
        except Exception as exc:  # unpickling runs user code: report which piece failed
            raise CheckpointError(
                f"cannot unpickle {path} (a {name}): {type(exc).__name__}: {exc}",
                value=path,
                hint="make the module that defines it importable (same package versions)",
            ) from exc


def blob_paths(tree: Any) -> dict[str, list[str]]:
    """Map each blob digest named in ``tree`` to the key paths that use it (for messages)."""
    found: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if type(node) is list:
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")
        elif type(node) is dict:
            tag = next(iter(node), "") if len(node) == 1 else ""
            if not tag.startswith("$"):
                for key, item in node.items():
                    walk(item, key_path(path, key))
                return
            body = node[tag]
            if tag == "$dict" and type(body) is list:
                for pair in body:
                    if type(pair) is list and len(pair) == 2:
                        key = pair[0] if type(pair[0]) in (str, int) else "<key>"
                        walk(pair[1], key_path(path, key))
            elif type(body) is list:
                for i, item in enumerate(body):
                    walk(item, f"{path}[{i}]")
            elif type(body) is dict and type(body.get("blob")) is str:
                found.setdefault(body["blob"], []).append(path)

    walk(tree, ROOT)
    return found


def decode_state(tree: Any, reader: PieceReader, *, allow_pickle: bool) -> Any:
    """Rebuild the state :func:`encode_state` encoded as ``tree``.

    Raises:
        TreeError: The tree is malformed (names the key path).
        CheckpointError: A pickled piece is refused or cannot be unpickled.
    """
    return _Decoder(reader, allow_pickle=allow_pickle).decode(tree, ROOT)
