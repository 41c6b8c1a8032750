"""What a manifest may contain: the type and range of every field, and how deep its state.

A manifest's checksum covers only itself, so anyone can write one that passes it: a file
copied from elsewhere, or crafted. :func:`check_manifest` runs on every manifest read,
before any field is used, so a field of the wrong type or out of range, a state nested
deeper than :data:`._encode.MAX_DEPTH`, or a blob list that is not one makes the whole
checkpoint *damaged* (:class:`._format.DamagedError`): listed as such, skipped by loading,
never counted by retention, and never a ``TypeError`` (or worse) in a listing or a save.

Fields absent from a manifest keep their defaults (an older writer may not have had
them); fields this version does not know are ignored. The state tree's node formats are
checked where they are decoded (:mod:`._decode`); this module bounds only its depth.
"""

from __future__ import annotations

import math
from typing import Any

from lensing_ssc.core.io import parse_digest
from lensing_ssc.processing.managers.checkpoint._encode import MAX_DEPTH
from lensing_ssc.processing.managers.checkpoint._format import BLOB_HEADER_SIZE, DamagedError

__all__ = ["check_manifest"]

_MAX_SIZE = 2**63  # bytes, and pids: beyond what any file, array or process has
_MAX_CREATED = 253402300800.0  # 10000-01-01T00:00:00Z: the first time datetime cannot show
_LAYOUTS = frozenset({"native", "json"})
_TEXT_FIELDS = ("description", "package_version", "python", "numpy", "host", "compression")
_COUNT_FIELDS = ("pid", "data_bytes", "blob_bytes_written")
_TEXT_LIST_FIELDS = ("tags", "pickled")
_CONTAINER_TAGS = frozenset({"$tuple", "$set", "$frozenset", "$dict"})


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _MAX_SIZE


def _field_problem(manifest: dict[str, Any], checkpoint_id: str) -> str | None:
    if manifest.get("id") != checkpoint_id:
        return f"'id' is {_describe(manifest.get('id'))}, not the file's name"
    created = manifest.get("created")
    if (
        isinstance(created, bool)
        or not isinstance(created, (int, float))
        or not (math.isfinite(created) and 0 <= created < _MAX_CREATED)
    ):
        return f"'created' is {_describe(created)}, not a time in seconds since 1970"
    if "state" not in manifest:
        return "it has no 'state'"
    for name in _TEXT_FIELDS:
        if name in manifest and type(manifest[name]) is not str:
            return f"{name!r} is {_describe(manifest[name])}, not a string"
    for name in _TEXT_LIST_FIELDS:
        value = manifest.get(name, [])
        if type(value) is not list or any(type(item) is not str for item in value):
            return f"{name!r} is {_describe(value)}, not a list of strings"
    for name in _COUNT_FIELDS:
        if name in manifest and not _count(manifest[name]):
            return f"{name!r} is {_describe(manifest[name])}, not a count"
    step = manifest.get("step")
    if step is not None and type(step) is not int:
        return f"'step' is {_describe(step)}, not an integer"
    layout = manifest.get("layout", "native")
    if type(layout) is not str or layout not in _LAYOUTS:
        return f"'layout' is {_describe(manifest.get('layout'))}, not one of native, json"
    return _blobs_problem(manifest.get("blobs"))


def _blobs_problem(blobs: Any) -> str | None:
    if type(blobs) is not dict:
        return f"'blobs' is {_describe(blobs)}, not a mapping"
    for digest, sizes in blobs.items():
        try:
            parse_digest(digest)
        except ValueError:
            return f"'blobs' names {_describe(digest)}, which is not a digest"
        if (
            type(sizes) is not list
            or len(sizes) != 2
            or not all(_count(size) for size in sizes)
            or sizes[1] < BLOB_HEADER_SIZE
        ):
            return f"'blobs' gives {_describe(sizes)} for {digest}, not [raw size, file size]"
    return None


def _too_deep(tree: Any) -> bool:
    """Whether ``tree`` nests containers deeper than :data:`MAX_DEPTH`, counted as the
    encoder counts them: plain lists and dicts, and the bodies of ``$tuple``, ``$set``,
    ``$frozenset`` and ``$dict`` nodes. Leaf nodes (``$array``, ``$bytes``...) are not
    entered: decoding hands their bodies to numpy or base64, never back to itself."""
    pending: list[tuple[Any, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        kind = type(node)
        if kind is dict:
            tag = next(iter(node)) if len(node) == 1 else ""
            if tag.startswith("$"):
                body = node[tag]
                if type(body) is not list:
                    continue
                if tag == "$complex":  # two numbers, decoded as a list of the same depth
                    pending.extend((item, depth) for item in body)
                    continue
                if tag not in _CONTAINER_TAGS:
                    continue
                children: Any = body
                if tag == "$dict":
                    children = [part for pair in body if type(pair) is list for part in pair]
            else:
                children = node.values()
        elif kind is list:
            children = node
        else:
            continue
        if depth + 1 > MAX_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in children if type(child) in (list, dict))
    return False


def check_manifest(manifest: dict[str, Any], checkpoint_id: str, what: str) -> None:
    """Check every field of a parsed manifest named ``checkpoint_id``.

    Raises:
        DamagedError: A field is missing, of the wrong type or out of range (the reason
            names it and its value), or the state is nested too deep.
    """
    problem = _field_problem(manifest, checkpoint_id)
    if problem is None and _too_deep(manifest["state"]):
        problem = f"its state is nested more than {MAX_DEPTH} levels deep"
    if problem is not None:
        raise DamagedError(what, f"invalid manifest: {problem}")
