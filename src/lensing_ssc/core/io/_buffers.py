"""Turning bytes-like inputs into flat byte views, shared by writing, compressing and hashing.

Covers ``bytes``, ``bytearray``, ``memoryview``, ``mmap`` and numpy arrays (any dtype, any
memory layout). Contiguous inputs are viewed without copying; a non-contiguous buffer (a
strided numpy view) is copied once into C order, because the OS, the compressors and the
hashers all need one flat run of bytes. Content hashing of arrays, which streams a strided
array in blocks instead, is in :mod:`._hashing`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["byte_view"]


def byte_view(data: Any) -> memoryview:
    """Return a flat, unsigned-byte view of ``data``, copying only when it is not contiguous.

    Args:
        data: Any object exporting the buffer protocol, or a numpy array.

    Raises:
        TypeError: ``data`` is a ``str`` (encode it first) or not bytes-like at all.

    Example:
        >>> byte_view(np.arange(2, dtype=np.uint16)).tolist()
        [0, 0, 1, 0]
    """
    if isinstance(data, str):
        raise TypeError(
            "expected bytes-like data, got str; encode it first (e.g. text.encode('utf-8'))"
        )
    try:
        view = memoryview(data)
    except TypeError as exc:
        raise TypeError(
            f"expected bytes-like data (bytes, bytearray, memoryview, numpy array), "
            f"got {type(data).__name__}"
        ) from exc
    except ValueError:
        # numpy dtypes the buffer protocol cannot describe (datetime64, timedelta64).
        if not isinstance(data, np.ndarray):
            raise
        flat: Any = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return memoryview(flat)
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(view.tobytes())
