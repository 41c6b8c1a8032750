"""One BLAS thread for code that makes many small matrix calls: :func:`one_blas_thread`.

OpenBLAS (NumPy's BLAS on PyPI) starts a thread per core and splits every level-3 call
among them, however small the matrices. A set comparison makes thousands of small ones
(resampled covariances, batched Cholesky factorisations of 12–90 entries), and on 2 cores
the threads made the built-in run's comparison take 0.93 s instead of 0.41 s with one
thread (medians of 3). On a 16-core node there are 16 threads to wake per call.

Not here: the number of worker processes (:mod:`lensing_ssc.processing.runner`), or
OpenMP threads before a fork (``runner/_fork_guard.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["one_blas_thread"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def one_blas_thread(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """``function``, run with BLAS limited to one thread (restored after the call).

    Example:
        >>> import numpy as np
        >>> @one_blas_thread
        ... def gram(a: np.ndarray) -> np.ndarray:
        ...     return a @ a.T
        >>> gram(np.eye(2)).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """

    @functools.wraps(function)
    def limited(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return limited
