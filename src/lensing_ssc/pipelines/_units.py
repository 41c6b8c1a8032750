"""Units and one-line descriptions of every dataset of a results file, from its path.

:func:`dataset_units` answers for any path the writer produces (``sets/<set>/<key>/mean``,
``ssc/.../variance_ratio``, ``binning/ell_centers``, ...): the writer stores the answer as
the ``units`` and ``description`` attributes of each HDF5 dataset (``meta/datasets`` in an
NPZ file), and the reader falls back to it for files written before those were stored.
Units follow ``docs/analysis.md`` ("Conventions and units"); ``"1"`` is dimensionless.
The file's layout is in :mod:`._results`; the typed reading view in :mod:`._results_file`.
"""

from __future__ import annotations

__all__ = ["STATISTIC_UNITS", "dataset_units", "squared"]

STATISTIC_UNITS = {
    "cl": "sr",
    "bispectrum_equilateral": "sr²",
    "bispectrum_isosceles": "sr²",
    "bispectrum_squeezed": "sr²",
    "pdf": "1",
    "peaks": "count",
    "minima": "count",
    "v0": "1",
    "v1": "arcmin⁻¹",
    "v2": "arcmin⁻²",
}
"""The unit of each statistic's values per bin (PDF: per unit ν; peaks: per patch and bin)."""

_STATISTIC_WORDS = {
    "cl": "power spectrum C_ℓ",
    "bispectrum_equilateral": "equilateral bispectrum B",
    "bispectrum_isosceles": "isosceles bispectrum B",
    "bispectrum_squeezed": "squeezed bispectrum B",
    "pdf": "PDF of ν",
    "peaks": "peak counts per ν bin",
    "minima": "minimum counts per ν bin",
    "v0": "Minkowski functional V0",
    "v1": "Minkowski functional V1",
    "v2": "Minkowski functional V2",
}

_SQUARES = {
    "1": "1",
    "sr": "sr²",
    "sr²": "sr⁴",
    "count": "count²",
    "arcmin⁻¹": "arcmin⁻²",
    "arcmin⁻²": "arcmin⁻⁴",
}

_BINNING = {
    "ell_edges": ("rad⁻¹", "power spectrum ℓ bin edges (log-spaced)"),
    "ell_centers": ("rad⁻¹", "power spectrum ℓ bin centres (geometric mean of the edges)"),
    "bispectrum_edges": ("rad⁻¹", "bispectrum ℓ bin edges (log-spaced)"),
    "bispectrum_centers": ("rad⁻¹", "bispectrum ℓ bin centres (geometric mean of the edges)"),
    "nu_edges": ("1", "ν bin edges (equal width), ν = κ_s / σ_ref"),
    "nu_centers": ("1", "ν bin centres"),
}

_COMPARED = {
    "variance_ratio": (False, "Var(numerator) / Var(denominator) per bin"),
    "variance_ratio_interval": (False, "interval (low, high) of the variance ratio over maps"),
    "correlation": (False, "correlation matrices of numerator and denominator"),
    "signal_to_noise": (False, "S/N per patch of each set, with the Hartlap factor"),
    "signal_to_noise_interval": (False, "interval (low, high) of each set's S/N"),
    "hartlap": (False, "Hartlap factor (N − p − 2)/(N − 1) of each set"),
    "ssc_response": (True, "response R = Cov(s, κ̄)/Var(κ̄) in the numerator set"),
    "ssc_predicted": (False, "predicted SSC excess R² Var(κ̄) / Var(denominator)"),
    "ssc_measured": (False, "measured SSC excess (Var(num) − Var(den)) / Var(den)"),
    "ssc_predicted_interval": (False, "interval (low, high) of the predicted SSC excess"),
    "ssc_measured_interval": (False, "interval (low, high) of the measured SSC excess"),
    "ssc_difference_interval": (False, "interval (low, high) of measured − predicted"),
}

_SUMMARIES = {
    "mean": (False, "mean over the set's patches"),
    "std": (False, "standard deviation over the set's patches (ddof = 1)"),
    "covariance": (True, "covariance over the set's patches (ddof = 1)"),
    "correlation": (None, "correlation over the set's patches (NaN where constant)"),
    "samples": (False, "every patch's values, one row per patch"),
}


def squared(units: str) -> str:
    """The unit of a variance of values in ``units`` (``"sr"`` → ``"sr²"``)."""
    return _SQUARES.get(units, f"({units})²")


def _statistic_units(name: str) -> str:
    return STATISTIC_UNITS.get(name, "1")


def dataset_units(path: str) -> tuple[str, str]:
    """``(units, description)`` of the dataset at ``path`` in a results file.

    Example:
        >>> units, description = dataset_units("sets/subpatches/cl/ngal=30/covariance")
        >>> units, description[:40]
        ('sr²', 'power spectrum C_ℓ (n_gal = 30 arcmin⁻²)')
        >>> dataset_units("binning/ell_centers")[0]
        'rad⁻¹'
    """
    parts = path.split("/")
    if parts[0] == "binning":
        return _BINNING.get(parts[-1], ("1", "bin boundaries"))
    if parts[-1] == "patch_mean":
        return "1", "each patch's mean κ (before noise)"
    if parts[0] == "tomography":
        return _tomography_units(parts)
    if parts[-1] == "patch_map":
        return "1", "index of the map each patch was cut from"
    quantity = parts[-1]
    statistic = next((p for p in parts if p in STATISTIC_UNITS), None)
    setting = _setting_words(parts)
    if parts[0] == "ssc":
        squares, words = _COMPARED.get(quantity, (False, quantity))
        if "joint" in parts:
            return "1", f"joint data vector ({setting}): {words}"
        if "tomography" in parts:
            units = _statistic_units(statistic or "") if squares else "1"
            return units, f"auto and cross C_ℓ of all source redshifts ({setting}): {words}"
        units = _statistic_units(statistic or "") if squares else "1"
        return units, f"{_STATISTIC_WORDS.get(statistic or '', statistic)} ({setting}): {words}"
    squares_flag, words = _SUMMARIES.get(quantity, (False, quantity))
    units = _statistic_units(statistic or "")
    if squares_flag is None:
        units = "1"
    elif squares_flag:
        units = squared(units)
    return units, f"{_STATISTIC_WORDS.get(statistic or '', statistic)} ({setting}): {words}"


_TOMOGRAPHY = {
    "z_sources": ("1", "the set's source redshifts, in the order of pairs' indices"),
    "pairs": ("1", "redshift indices (i, j) of each spectrum of the joint data vector"),
    "patch_map": ("1", "index of the realisation each row of samples belongs to"),
    "samples": ("sr", "auto and cross C_ℓ of every patch, (patch, pair, ℓ bin)"),
    "mean": ("sr", "mean auto and cross C_ℓ over the patches, (pair, ℓ bin)"),
    "std": ("sr", "standard deviation over the patches (ddof = 1), (pair, ℓ bin)"),
    "covariance": ("sr²", "joint covariance of the (pair, ℓ bin) data vector (ddof = 1)"),
    "correlation": ("1", "joint correlation of the (pair, ℓ bin) data vector"),
    "cross_correlation": ("1", "r_ij(ℓ) = C_ij / √(C_ii C_jj) of the means, (z_i, z_j, ℓ bin)"),
}


def _tomography_units(parts: list[str]) -> tuple[str, str]:
    units, words = _TOMOGRAPHY.get(parts[-1], ("1", parts[-1]))
    setting = _setting_words(parts)
    return units, f"tomography of set {parts[1]}{f' ({setting})' if setting else ''}: {words}"


def _setting_words(parts: list[str]) -> str:
    words = []
    for part in parts:
        if part.startswith("ngal="):
            words.append(f"n_gal = {part[5:]} arcmin⁻²")
        elif part.startswith("smoothing="):
            words.append(f"σ_s = {part[10:]}′")
    return ", ".join(words)
