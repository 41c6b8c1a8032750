"""Stable keys for items and identities for functions, so a rerun finds its own results.

The rule (also in ``docs/runner.md``):

- Without ``key=``, an item's key is its position and a content hash of its pickle:
  ``"12-<32 hex digits>"``. Changing, inserting or reordering items changes the keys of the
  positions affected, so those are computed again; stale results are never returned.
  Items whose pickle is not deterministic (sets of strings, objects pickling a timestamp)
  get new keys every run and are always recomputed: pass ``key=`` for them.
- With ``key=``, the caller's function names each item (``key=lambda path: path.name``).
  The caller promises that equal keys mean equal work; keys must be unique in one run.

Keys name items, not code. The function's identity (module and qualified name; for a
lambda, which has no name of its own, also a digest of its code) is written into the
journal, and a journal written by another function is refused (:mod:`._journal`). The code
inside a named function is not hashed: after changing what it computes, start the journal
afresh (``resume=False``) or use another journal. What a function captures (closure cells,
a partial's arguments) is not part of its identity either: the journal's path, which the
caller chooses, stands for it (``ManagerContext.map`` names it so).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import types
from collections.abc import Callable, Sequence
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import default_hash_algorithm, hash_bytes

try:
    import xxhash
except ImportError:  # pragma: no cover - the fast extra is installed in development
    xxhash = None  # type: ignore[assignment]

__all__ = ["MAX_KEY_LENGTH", "code_digest", "function_identity", "item_keys", "same_function"]

MAX_KEY_LENGTH = 1024
"""Longest key, in characters, that a journal record holds."""


_UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError)


def _content_digest(index: int, item: Any) -> str:
    try:
        blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    except _UNPICKLABLE as exc:
        raise ConfigError(
            f"item {index} cannot be pickled, so it has no default key ({exc})",
            value=type(item).__name__,
            hint="pass key= (a function naming each item), or journal=None",
            field="key",
        ) from exc
    return hash_bytes(blob).partition(":")[2][:32]


def _hexdigest(algorithm: str) -> Callable[[bytes], str]:
    """The hex part of ``hash_bytes(blob, algorithm=algorithm)``, without its checks per call.

    Default keys are hashed once per item of every run, resumed ones included: calling the
    hash directly cuts their cost by more than half (10**6 keys: 1.3 s of CPU to 0.5 s).
    """
    if algorithm == "xxh3_128":
        return xxhash.xxh3_128_hexdigest
    return lambda blob: hashlib.blake2b(blob, digest_size=16).hexdigest()


def item_keys(items: Sequence[Any], key: Callable[[Any], Any] | None) -> list[str]:
    """Return one key per item, in input order.

    Args:
        items: The run's items.
        key: ``None`` for position + content hash, or a function returning a ``str`` or an
            ``int`` per item.

    Raises:
        ConfigError: An item cannot be pickled (without ``key=``); ``key`` returned another
            type, an over-long string, or the same key for two items.
    """
    if key is None:
        digest, dumps = _hexdigest(default_hash_algorithm()), pickle.dumps
        protocol = pickle.HIGHEST_PROTOCOL
        try:
            return [f"{i}-{digest(dumps(item, protocol))}" for i, item in enumerate(items)]
        except _UNPICKLABLE:
            for index, item in enumerate(items):
                _content_digest(index, item)  # raises ConfigError naming the first bad item
            raise
    keys: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        raw = key(item)
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise ConfigError(
                f"key= must return a str or an int, got {type(raw).__name__} for item {index}",
                value=raw,
                hint="return e.g. a file name or an id",
                field="key",
            )
        text = str(raw)
        if len(text) > MAX_KEY_LENGTH:
            raise ConfigError(
                f"key of item {index} is {len(text)} characters long; at most "
                f"{MAX_KEY_LENGTH} are allowed",
                value=text[:80] + "...",
                hint="return a shorter name, e.g. a hash of the long one",
                field="key",
            )
        first = seen.setdefault(text, index)
        if first != index:
            raise ConfigError(
                f"key= gave items {first} and {index} the same key {text!r}",
                value=text,
                hint="keys must be unique within one run",
                field="key",
            )
        keys.append(text)
    return keys


def function_identity(func: Callable[..., Any]) -> str:
    """Name a callable as ``module:qualname`` (through ``functools.partial`` layers and
    wrappers that name what they wrap in ``__wrapped__``, as ``functools.wraps`` does).

    A lambda's qualified name says nothing of what it computes, so its identity adds a
    digest of its code (:func:`code_digest`): ``module:f.<locals>.<lambda>@<16 hex>``.

    Example:
        >>> function_identity(len)
        'builtins:len'
    """
    while True:
        if isinstance(func, functools.partial):
            func = func.func
            continue
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None or wrapped is func:
            break
        func = wrapped
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    identity = f"{module}:{qualname}"
    if isinstance(func, types.FunctionType) and func.__name__ == "<lambda>":
        identity += "@" + code_digest(func.__code__)
    return identity


def same_function(recorded: str, identity: str) -> bool:
    """Whether a journal recording ``recorded`` was written by the function ``identity``.

    A script's functions are in module ``__main__`` when it is run (``python job.py``) and
    in ``job`` when it is imported: against ``__main__``, the qualified names are compared.
    A journal written before lambdas carried a digest of their code records the qualified
    name alone, and is taken as the lambda's of that name.

    Example:
        >>> same_function("__main__:work", "job:work")
        True
    """
    if "@" not in recorded:
        identity = identity.partition("@")[0]
    if recorded == identity:
        return True
    was_module, _, was = recorded.partition(":")
    module, _, now = identity.partition(":")
    return was == now and "__main__" in (was_module, module)


def code_digest(code: types.CodeType) -> str:
    """16 hex digits of the bytecode, names and constants of ``code`` and the code it nests.

    Stable from run to run of one Python version (bytecode changes between versions).
    """
    return hashlib.blake2b(_code_bytes(code), digest_size=8).hexdigest()


def _code_bytes(code: types.CodeType) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    parts.extend(_constant_bytes(const) for const in code.co_consts)
    return b"\0".join(parts)


def _constant_bytes(const: Any) -> bytes:
    if isinstance(const, types.CodeType):
        return _code_bytes(const)
    if isinstance(const, tuple):
        return b"(" + b",".join(_constant_bytes(item) for item in const) + b")"
    if isinstance(const, frozenset):  # `x in {"a", "b"}`: its order changes with the hash seed
        return b"{" + b",".join(sorted(_constant_bytes(item) for item in const)) + b"}"
    return repr(const).encode()
