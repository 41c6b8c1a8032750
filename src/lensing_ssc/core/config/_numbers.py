"""The number types of every config field: ``Integer`` and ``Real``, which refuse booleans.

pydantic's lax mode reads ``true`` as ``1`` for an ``int`` field and ``1.0`` for a ``float``
one, so ``n_large_fields: true`` would quietly run one field. Every section declares its
numbers with these types instead of ``int`` and ``float`` (``IntegerOrNone`` and
``RealOrNone`` where ``None`` is allowed); everything else about them is
pydantic's ordinary lax parsing (``"3"`` and ``3.0`` still read as ``3``, as environment
variables and hand-written files need). Bounds stay on the fields (``Field(ge=1)``); the
hints of a rejected value are written by :mod:`._errors`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["BOOL_FOR_NUMBER", "Integer", "IntegerOrNone", "Real", "RealOrNone"]

BOOL_FOR_NUMBER = "bool_for_number"
"""The pydantic error type of a boolean given where a number belongs."""


def _refuse_bool(kind: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, bool):
            raise PydanticCustomError(
                BOOL_FOR_NUMBER, "Input should be {kind}, not true or false", {"kind": kind}
            )
        return value

    return BeforeValidator(check)


Integer = Annotated[int, _refuse_bool("an integer")]
"""An ``int`` field that refuses ``True``/``False``."""

Real = Annotated[float, _refuse_bool("a number")]
"""A ``float`` field that refuses ``True``/``False``."""

# The optional forms wrap the whole ``X | None``: written ``Integer | None`` instead, a bound
# given by ``Field(gt=0)`` would still be enforced, but would leave the JSON schema as a
# pydantic-specific ``"gt": 0`` instead of ``"exclusiveMinimum": 0``.
IntegerOrNone = Annotated[int | None, _refuse_bool("an integer")]
"""An ``int | None`` field that refuses ``True``/``False``."""

RealOrNone = Annotated[float | None, _refuse_bool("a number")]
"""A ``float | None`` field that refuses ``True``/``False``."""
