"""All statistics of a patch, for every galaxy density and smoothing scale of the settings.

:func:`compute_patch_statistics` is the unit of work of the patch-statistics pipeline on a
CPU; :func:`compute_patch_statistics_batch` does the same for a stack ``(b, n, n)`` of
patches at once, in any array namespace (NumPy, or CuPy on a GPU, where the pipeline sends
batches sized by :func:`working_bytes`). For each patch it

1. Fourier-transforms the patch once, and one map of unit white noise once;
2. for each n_gal, adds shape noise of σ_pix = ε/√(n_gal A_pix) in Fourier space (the same
   unit-noise realisation, rescaled, serves every n_gal: each setting's noise is correct on
   its own, and differences between settings are not blurred by independent draws);
3. measures the power spectrum and the bispectra of the noisy, unsmoothed patch;
4. for each smoothing scale σ_s, smooths, removes the smoothed patch's mean when
   ``subtract_patch_mean`` is set (by zeroing its ℓ = 0 mode, which no ℓ bin of step 3
   holds), converts to ν = κ_s/σ_ref (σ_ref from
   :meth:`~lensing_ssc.analysis.settings.StatisticsSettings.nu_normalisation`: the smoothed
   noise level, ``nu_sigma``, or the patch's own RMS) and measures the PDF, peaks, minima and
   Minkowski functionals in one pass.

Result keys (stable; the pipeline flattens them into data vectors, and they double as
HDF5 dataset paths) are built by :func:`statistic_key`::

    "cl/ngal=30"                         Ĉ per ℓ bin             (settings.ell_edges)
    "bispectrum_equilateral/ngal=30"     B̂ per bispectrum bin    (settings.bispectrum_edges)
    "bispectrum_isosceles/ngal=30", "bispectrum_squeezed/ngal=30"
    "pdf/ngal=30/smoothing=2"            PDF per ν bin           (settings.nu_edges)
    "peaks/…", "minima/…"                counts per ν bin
    "v0/…", "v1/…", "v2/…"               Minkowski functionals per ν bin

Numbers are formatted with ``:g`` (``ngal=7``, ``smoothing=2.5``). A batch gives each key
one row per patch, ``(b, bins)``, equal to what :func:`compute_patch_statistics` gives for
each patch with the same generator (to ~1e-15: sums are added in another order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import (
    array_device,
    constant,
    irfft2,
    namespace,
    rfft2,
)
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size
from lensing_ssc.analysis.noise import noise_sigma, unit_noise
from lensing_ssc.analysis.settings import STATISTIC_NAMES, StatisticsSettings
from lensing_ssc.analysis.smoothing import gaussian_window
from lensing_ssc.analysis.statistics import nu_bins
from lensing_ssc.analysis.statistics.bispectrum import (
    CONFIGURATIONS,
    bispectra_from_fourier,
    bispectrum_plan,
)
from lensing_ssc.analysis.statistics.map_statistics import MAP_STATISTICS, measure_map_statistics
from lensing_ssc.analysis.statistics.power_spectrum import ell_binning, power_spectrum_from_fourier
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "compute_patch_statistics",
    "compute_patch_statistics_batch",
    "noisy_fourier_modes",
    "statistic_key",
    "statistic_keys",
    "working_bytes",
]

# NumPy measures a stack in groups of this many pixels: the group's Fourier modes and band
# maps then stay in the CPU cache. Measured per patch, quick settings, on 2 cores: 64² 2.19 ms
# one at a time, 1.08 ms in groups of 16 (2.40 ms all 64 at once); 128² 5.0 ms, 4.0 ms in
# fours (6.8 ms all at once); 256² and larger go one by one.
_NUMPY_BATCH_PIXELS = 1 << 16

_FOURIER_STATISTICS = ("cl", *(f"bispectrum_{c}" for c in CONFIGURATIONS))


def statistic_key(name: str, n_gal: float, smoothing_arcmin: float | None = None) -> str:
    """Return the result key of statistic ``name`` at one setting.

    ``smoothing_arcmin`` is required for map statistics and must be ``None`` for the power
    spectrum and bispectra, which are measured before smoothing.

    Example:
        >>> statistic_key("peaks", 30, 2.0), statistic_key("cl", 0)
        ('peaks/ngal=30/smoothing=2', 'cl/ngal=0')
    """
    if name not in STATISTIC_NAMES:
        raise AnalysisError(
            f"unknown statistic {name!r}",
            value=name,
            hint=f"choose from {', '.join(STATISTIC_NAMES)}",
        )
    if name in _FOURIER_STATISTICS:
        if smoothing_arcmin is not None:
            raise AnalysisError(
                f"{name} is measured before smoothing; it has no smoothing key",
                value=smoothing_arcmin,
                hint="pass smoothing_arcmin=None",
            )
        return f"{name}/ngal={float(n_gal):g}"
    if smoothing_arcmin is None:
        raise AnalysisError(
            f"{name} is measured on smoothed maps: give smoothing_arcmin",
            value=None,
            hint="e.g. statistic_key(name, n_gal, 2.0)",
        )
    return f"{name}/ngal={float(n_gal):g}/smoothing={float(smoothing_arcmin):g}"


def statistic_keys(settings: StatisticsSettings) -> list[str]:
    """Return every key :func:`compute_patch_statistics` produces for ``settings``, in order."""
    return list(_iter_keys(settings))


def _iter_keys(settings: StatisticsSettings) -> Iterator[str]:
    for n_gal in settings.n_gal:
        for name in settings.statistics:
            if name in _FOURIER_STATISTICS:
                yield statistic_key(name, n_gal)
        for smoothing in settings.smoothing_arcmin:
            for name in settings.statistics:
                if name in MAP_STATISTICS:
                    yield statistic_key(name, n_gal, smoothing)


def noisy_fourier_modes(
    patches: Any,
    pixel_size_arcmin: float,
    settings: StatisticsSettings,
    rngs: Sequence[np.random.Generator],
) -> Iterator[tuple[float, Any]]:
    """Yield ``(n_gal, rfft2 of the noisy patches)`` for every n_gal of ``settings``, in order.

    Steps 1 and 2 above, for a validated stack ``(b, n, n)`` of any array namespace (or one
    ``(n, n)`` patch with one generator): one
    unit-noise map per patch is drawn from its generator (only when some n_gal is above 0;
    on the host, see :func:`~lensing_ssc.analysis.noise.unit_noise`) and rescaled for each
    n_gal. :func:`compute_patch_statistics` and the cross spectra of
    :mod:`lensing_ssc.analysis.tomography` draw their noise here, so the same ``rng`` seed
    gives both the same noisy patch.
    """
    xp = namespace(patches)
    n = patches.shape[-1]
    signal_k = rfft2(patches)
    sigmas = [noise_sigma(n_gal, pixel_size_arcmin, settings.epsilon) for n_gal in settings.n_gal]
    unit_noise_k = None
    if any(sigmas):
        noise = unit_noise(rngs, n, xp, array_device(patches))
        unit_noise_k = rfft2(noise if patches.ndim == 3 else noise[0])
        # Not kept while the caller measures: on a device that is one map per patch less,
        # and on the CPU the next arrays reuse its memory while it is in cache.
        del noise
    for n_gal, sigma_pix in zip(settings.n_gal, sigmas, strict=True):
        if sigma_pix > 0 and unit_noise_k is not None:
            yield n_gal, signal_k + sigma_pix * unit_noise_k
        else:
            yield n_gal, signal_k


def compute_patch_statistics(
    patch: Any,
    pixel_size_arcmin: float,
    settings: StatisticsSettings | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Return every statistic of ``settings`` for one convergence patch, keyed as documented above.

    Args:
        patch: ``(n, n)`` convergence map, finite, treated as periodic (NumPy, or an array
            of any array-API library: the results are then in that library, on its device).
        pixel_size_arcmin: Pixel side in arcminutes.
        settings: What to compute; defaults to ``StatisticsSettings()``.
        rng: Generator for the shape noise. Pass one seeded per patch
            (``numpy.random.default_rng([seed, patch_index])``) for reproducible, resumable runs.

    Example:
        >>> from lensing_ssc.analysis import (HalofitConvergenceSpectrum, StatisticsSettings,
        ...                                   gaussian_field)
        >>> rng = np.random.default_rng(0)
        >>> kappa = gaussian_field(128, 2.0, HalofitConvergenceSpectrum(), rng)
        >>> stats = compute_patch_statistics(kappa, 2.0, StatisticsSettings.quick(), rng)
        >>> stats["peaks/ngal=30/smoothing=5"].shape
        (12,)
    """
    stack, stacked = check_patch_stack(patch)
    if stacked:
        raise AnalysisError(
            f"patch must be a square 2-D array, got shape {tuple(stack.shape)}",
            value=tuple(stack.shape),
            hint="pass one (n, n) patch at a time, or a stack to compute_patch_statistics_batch",
        )
    rng = np.random.default_rng() if rng is None else rng
    pixel = check_pixel_size(pixel_size_arcmin)
    if type(stack) is np.ndarray:  # one NumPy patch: as a 2-D map, the way NumPy is fastest
        return _measure(stack[0], pixel, settings, [rng])
    measured = _measure(stack, pixel, settings, [rng])
    return {key: values[0, ...] for key, values in measured.items()}


def compute_patch_statistics_batch(
    patches: Any,
    pixel_size_arcmin: float,
    settings: StatisticsSettings | None = None,
    rngs: Sequence[np.random.Generator] | None = None,
) -> dict[str, Any]:
    """Return every statistic of ``settings`` for a stack of patches: ``{key: (b, bins)}``.

    Row i is what :func:`compute_patch_statistics` returns for ``patches[i]`` with
    ``rngs[i]`` (to ~1e-15). On a GPU, pass a CuPy stack: everything but the noise draws
    (NumPy's, on the host) runs there, and the results stay there.

    Args:
        patches: ``(b, n, n)`` convergence maps, finite, periodic; NumPy, CuPy or any
            array-API array.
        pixel_size_arcmin: Pixel side in arcminutes.
        settings: What to compute; defaults to ``StatisticsSettings()``.
        rngs: One noise generator per patch (default: fresh unseeded ones).

    Example:
        >>> from lensing_ssc.analysis import StatisticsSettings
        >>> stack = np.random.default_rng(1).normal(0.0, 0.01, (3, 64, 64))
        >>> rngs = [np.random.default_rng([7, i]) for i in range(3)]
        >>> settings = StatisticsSettings.quick()
        >>> compute_patch_statistics_batch(stack, 2.0, settings, rngs)["cl/ngal=30"].shape
        (3, 6)
    """
    stack, _ = check_patch_stack(patches, name="patches")
    pixel = check_pixel_size(pixel_size_arcmin)
    rows = stack.shape[0]
    generators = [np.random.default_rng() for _ in range(rows)] if rngs is None else list(rngs)
    if len(generators) != rows:
        raise AnalysisError(
            f"{len(generators)} noise generator(s) for {rows} patch(es)",
            value=len(generators),
            hint="pass one generator per patch, e.g. numpy.random.default_rng([seed, index])",
        )
    if type(stack) is not np.ndarray:
        return _measure(stack, pixel, settings, generators)
    step = _NUMPY_BATCH_PIXELS // stack.shape[-1] ** 2
    if step <= 1 or rows == 1:  # one patch, or patches too large to group: 2-D maps
        parts = [
            _measure(one, pixel, settings, [rng])
            for one, rng in zip(stack, generators, strict=True)
        ]
        return {key: np.stack([part[key] for part in parts]) for key in parts[0]}
    if rows <= step:
        return _measure(stack, pixel, settings, generators)
    parts = [
        _measure(stack[first : first + step], pixel, settings, generators[first : first + step])
        for first in range(0, rows, step)
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _measure(
    work: Any,
    pixel: float,
    settings: StatisticsSettings | None,
    rngs: Sequence[np.random.Generator],
) -> dict[str, Any]:
    """The work of both entry points, on a validated ``(b, n, n)`` stack of any namespace,
    or on one NumPy patch ``(n, n)`` (each statistic is then ``(bins,)``)."""
    settings = StatisticsSettings() if settings is None else settings
    xp = namespace(work)
    device = array_device(work)
    n = work.shape[-1]
    names = set(settings.statistics)
    configurations = [c for c in CONFIGURATIONS if f"bispectrum_{c}" in names]
    map_names = {name for name in MAP_STATISTICS if name in names}
    # Build (and validate against this patch) every binning before the heavy work.
    binning = ell_binning(n, pixel, settings.ell_edges) if "cl" in names else None
    plan = (
        bispectrum_plan(n, pixel, settings.bispectrum_edges, settings.isosceles_ratio)
        if configurations
        else None
    )
    bins = nu_bins(settings.nu_edges)

    # A stack's own σ are checked once, after the last setting: on a device, reading a value
    # back waits for all the work queued before it.
    own_sigmas: list[Any] = []
    results: dict[str, Any] = {}
    for n_gal, kappa_k in noisy_fourier_modes(work, pixel, settings, rngs):
        if binning is not None:
            results[statistic_key("cl", n_gal)] = power_spectrum_from_fourier(
                kappa_k, binning, pixel
            )
        if plan is not None:
            for config, values in bispectra_from_fourier(
                kappa_k, plan, pixel, configurations
            ).items():
                results[statistic_key(f"bispectrum_{config}", n_gal)] = values
        if not map_names:
            continue
        for smoothing in settings.smoothing_arcmin:
            smoothed_k = kappa_k * constant(gaussian_window(n, pixel, smoothing), xp, device)
            if settings.subtract_patch_mean:
                smoothed_k[..., 0, 0] = 0.0
            smoothed = irfft2(smoothed_k, n)
            _, shared_sigma = settings.nu_normalisation(n_gal, smoothing, pixel, n)
            sigma_ref: Any
            if shared_sigma is not None:
                sigma_ref = _checked_sigma(float(shared_sigma))
            elif work.ndim == 2:
                sigma_ref = _checked_sigma(float(smoothed.std()))
            else:
                own = xp.std(smoothed, axis=(-2, -1))
                own_sigmas.append(xp.min(own))
                # A constant patch (σ = 0) is refused below; until then ν divides by 1.
                sigma_ref = xp.where(own > 0, own, xp.ones_like(own))
            measured = measure_map_statistics(smoothed, pixel, bins, sigma_ref, map_names)
            for name, values in measured.items():
                results[statistic_key(name, n_gal, smoothing)] = values
    if own_sigmas:
        _checked_sigma(float(xp.min(xp.stack(own_sigmas))))
    return {key: results[key] for key in _iter_keys(settings)}


def _checked_sigma(sigma: float) -> float:
    """``sigma``, the ν normalisation of a smoothed patch, if it is > 0."""
    if not sigma > 0:
        raise AnalysisError(
            "the patch is constant after smoothing, so ν = κ/σ is undefined",
            value=sigma,
            hint="check the input patch, or use n_gal > 0 with nu_reference='noise'",
        )
    return sigma


def working_bytes(n: int, pixel_size_arcmin: float, settings: StatisticsSettings) -> int:
    """Bytes of array memory one ``n × n`` patch needs in :func:`compute_patch_statistics_batch`.

    An upper estimate, for sizing batches to a device's free memory: 40 maps' worth of
    float64 (the Fourier modes of the patch and of a noisy setting, the smoothed map with its
    border, bin indices, extrema masks, finite differences and binned weights), plus the
    bispectrum's band maps (~6 per band on its cropped grid) when it is measured. Measured
    under array-api-strict, whose arrays NumPy allocates and reports to ``tracemalloc``: at
    most 18 maps besides the one-hot block, for 64² to 512² patches (the tests hold every
    batch below this estimate); the rest is room for CuPy's FFT plans and memory pool. The
    one-hot block of the binning (at most 2²⁴ elements as bool and float64, 144 MiB,
    whatever the batch) is not included.
    """
    maps = 40 * n * n * 8
    names = set(settings.statistics)
    if not any(f"bispectrum_{c}" in names for c in CONFIGURATIONS):
        return maps
    edges, ratio = settings.bispectrum_edges, settings.isosceles_ratio
    plan = bispectrum_plan(n, pixel_size_arcmin, edges, ratio)
    bands = 6 * plan.side_masks.shape[0] * plan.m * plan.m * 8
    return maps + bands
