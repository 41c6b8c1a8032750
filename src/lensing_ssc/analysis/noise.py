"""Gaussian galaxy shape noise on convergence patches.

With n_gal galaxies per arcmin² and an intrinsic ellipticity dispersion ε per component
(ε = 0.26 for LSST-like surveys: Chang et al. 2013), each pixel of area A_pix gets
independent Gaussian noise of standard deviation

    σ_pix = ε / √(n_gal · A_pix)        (A_pix in arcmin²),

i.e. white noise of power N = σ_pix² A_pix (A_pix in sr) in the power spectrum. n_gal = 0
means no noise. Smoothing the noise is done with the signal (see :mod:`.smoothing`).

Noise is always drawn by NumPy's generators on the host and then copied to the patches'
device (CuPy, ...): a seeded generator gives the same noise on a CPU and on a GPU, which is
what makes a GPU run's statistics those of the CPU run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import array_device, is_numpy, namespace
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size
from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["DEFAULT_EPSILON", "add_shape_noise", "check_n_gal", "noise_sigma", "unit_noise"]

DEFAULT_EPSILON = 0.26
"""Intrinsic ellipticity dispersion per component used by default."""


def check_n_gal(n_gal: float) -> float:
    """Return ``n_gal`` as a float ``≥ 0`` or raise ``AnalysisError`` naming the value."""
    try:
        value = float(n_gal)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"n_gal must be a number of galaxies per arcmin², got {n_gal!r}",
            value=n_gal,
            hint="use e.g. 30; 0 means no noise",
        ) from exc
    if not math.isfinite(value) or value < 0:
        raise AnalysisError(
            f"n_gal must be ≥ 0 galaxies per arcmin², got {n_gal!r}",
            value=n_gal,
            hint="use e.g. 30; 0 means no noise",
        )
    return value


def _check_epsilon(epsilon: float) -> float:
    try:
        value = float(epsilon)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"epsilon must be a number, got {epsilon!r}",
            value=epsilon,
            hint="use the ellipticity dispersion per component, e.g. 0.26",
        ) from exc
    if not math.isfinite(value) or value <= 0:
        raise AnalysisError(
            f"epsilon must be > 0, got {epsilon!r}",
            value=epsilon,
            hint="use the ellipticity dispersion per component, e.g. 0.26",
        )
    return value


def noise_sigma(n_gal: float, pixel_size_arcmin: float, epsilon: float = DEFAULT_EPSILON) -> float:
    """Return the per-pixel shape-noise standard deviation ε/√(n_gal A_pix); 0 when n_gal = 0.

    Example:
        >>> round(noise_sigma(30, 1.0), 5)
        0.04747
    """
    density = check_n_gal(n_gal)
    pixel = check_pixel_size(pixel_size_arcmin)
    eps = _check_epsilon(epsilon)
    if density == 0.0:
        return 0.0
    return eps / math.sqrt(density * pixel * pixel)


# Stacks of at least this many maps are drawn by a thread per usable CPU: NumPy's generators
# release the GIL while they fill an array, and on a GPU the host's draws (~130 µs per 128²
# map on one core) would otherwise cost more than the statistics themselves.
_THREADED_DRAWS = 32


def unit_noise(
    rngs: Sequence[np.random.Generator], n: int, xp: Any = np, device: Any = None
) -> Any:
    """Return a ``(len(rngs), n, n)`` stack of unit white noise, map i drawn from ``rngs[i]``.

    The draws are NumPy's, on the host, whatever ``xp`` is, so one generator gives the same
    noise map on a CPU and on a GPU; the stack is then copied to ``device`` of ``xp``. Map i
    is exactly ``rngs[i].standard_normal((n, n))``, also when threads draw a large stack.
    """
    if len(rngs) == 1:  # one patch: NumPy's own draw (the same numbers)
        host = rngs[0].standard_normal((1, n, n))
        return host if is_numpy(xp) else xp.asarray(host, device=device)
    host = np.empty((len(rngs), n, n))

    def draw(i: int) -> None:
        rngs[i].standard_normal(out=host[i])

    threads = min(usable_cpus(), len(rngs) // 8) if len(rngs) >= _THREADED_DRAWS else 1
    if threads < 2:
        for i in range(len(rngs)):
            draw(i)
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="lensing_ssc-noise") as pool:
            list(pool.map(draw, range(len(rngs))))
    return host if is_numpy(xp) else xp.asarray(host, device=device)


def add_shape_noise(
    patch: Any,
    pixel_size_arcmin: float,
    n_gal: float,
    rng: np.random.Generator | Sequence[np.random.Generator],
    epsilon: float = DEFAULT_EPSILON,
) -> Any:
    """Return ``patch`` plus Gaussian shape noise for ``n_gal`` galaxies per arcmin².

    Args:
        patch: ``(n, n)`` convergence map (not modified), or a stack ``(b, n, n)``; NumPy,
            CuPy or any array-API array.
        pixel_size_arcmin: Pixel side in arcminutes.
        n_gal: Galaxy density per arcmin²; 0 returns a copy of ``patch``.
        rng: The random generator; for a stack, one generator or one per map. The noise is
            drawn by NumPy on the host (and copied to the patch's device), so a generator's
            noise is the same on every device.
        epsilon: Ellipticity dispersion per component.
    """
    stack, stacked = check_patch_stack(patch)
    xp = namespace(stack)
    sigma = noise_sigma(n_gal, pixel_size_arcmin, epsilon)
    if sigma == 0.0:
        copy = xp.asarray(stack, copy=True)
        return copy if stacked else copy[0, ...]
    rows, n = stack.shape[0], stack.shape[-1]
    rngs = [rng] * rows if isinstance(rng, np.random.Generator) else list(rng)
    if len(rngs) != rows:
        raise AnalysisError(
            f"{len(rngs)} generator(s) for {rows} patch(es)",
            value=len(rngs),
            hint="pass one generator, or one per patch of the stack",
        )
    noisy = stack + sigma * unit_noise(rngs, n, xp, array_device(stack))
    return noisy if stacked else noisy[0, ...]
