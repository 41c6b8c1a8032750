"""Which patch statistics to compute, and how: a validated, immutable settings object.

:class:`StatisticsSettings` holds the galaxy densities, smoothing scales, shape-noise level,
ℓ and ν binning and the list of statistics; its defaults follow common LSST-like choices
(ε = 0.26, n_gal ∈ {0, 7, 15, 30, 50} arcmin⁻², σ_s ∈ {2, 5, 8, 10} arcmin, ℓ 300–3000).
:meth:`StatisticsSettings.quick` is the small subset the synthetic default run uses.
Bad values raise ``AnalysisError`` naming the field, the value and the fix; an unknown
statistic or field name comes with a "did you mean".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from lensing_ssc.analysis.noise import DEFAULT_EPSILON, check_n_gal
from lensing_ssc.analysis.smoothing import check_smoothing
from lensing_ssc.analysis.statistics.power_spectrum import log_ell_edges
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["STATISTIC_NAMES", "StatisticsSettings"]

STATISTIC_NAMES = (
    "cl",
    "bispectrum_equilateral",
    "bispectrum_isosceles",
    "bispectrum_squeezed",
    "pdf",
    "peaks",
    "minima",
    "v0",
    "v1",
    "v2",
)
"""Every statistic :func:`~lensing_ssc.analysis.compute_patch_statistics` can report."""

NuReference = Literal["noise", "map"]


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"choose from {', '.join(choices)}"


def _unique_values(values: Any, field_name: str, check: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = (values,)
    checked = tuple(check(v) for v in values)
    if not checked:
        raise AnalysisError(
            f"{field_name} must list at least one value",
            value=[],
            hint=f"e.g. {field_name}=(0, 30)",
        )
    if len(set(checked)) != len(checked):
        raise AnalysisError(
            f"{field_name} lists a value twice: {list(checked)}",
            value=list(checked),
            hint="remove the duplicate",
        )
    return checked


def _count(value: Any, field_name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise AnalysisError(
            f"{field_name} must be an integer ≥ {minimum}, got {value!r}",
            value=value,
            hint=f"e.g. {field_name}={max(minimum, 8)}",
        )
    return int(value)


def _finite(value: Any, field_name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"{field_name} must be a number, got {value!r}",
            value=value,
            hint=f"give {field_name} as a number",
        ) from exc
    if not math.isfinite(number):
        raise AnalysisError(
            f"{field_name} must be finite, got {value!r}",
            value=value,
            hint=f"give {field_name} as a finite number",
        )
    return number


@dataclass(frozen=True)
class StatisticsSettings:
    """Settings of the per-patch statistics (all validated on construction).

    Args:
        n_gal: Galaxy densities per arcmin² (0 = no noise), each ≥ 0.
        smoothing_arcmin: Gaussian smoothing σ_s values in arcmin, each ≥ 0.
        epsilon: Ellipticity dispersion per component.
        ell_min: Lowest ℓ edge of the power spectrum and bispectrum bins.
        ell_max: Highest ℓ edge.
        n_ell_bins: Log-spaced power spectrum bins.
        n_bispectrum_bins: Log-spaced bispectrum bins (fewer: triangles need wide bands).
        isosceles_ratio: Third side / other sides of isosceles triangles.
        nu_min: Lowest ν edge.
        nu_max: Highest ν edge.
        n_nu_bins: Equal-width ν bins for the PDF, peaks, minima and MFs.
        nu_reference: ``"noise"``: ν = κ_s/σ_noise,s with σ_noise,s the smoothed shape-noise
            level (the patch's own RMS when n_gal = 0); ``"map"``: always the patch's RMS.
        statistics: Names from :data:`STATISTIC_NAMES`.

    Example:
        >>> settings = StatisticsSettings(n_gal=[0, 30], smoothing_arcmin=[2.0])
        >>> settings.n_gal, settings.nu_edges.size
        ((0.0, 30.0), 17)
    """

    n_gal: tuple[float, ...] = (0.0, 7.0, 15.0, 30.0, 50.0)
    smoothing_arcmin: tuple[float, ...] = (2.0, 5.0, 8.0, 10.0)
    epsilon: float = DEFAULT_EPSILON
    ell_min: float = 300.0
    ell_max: float = 3000.0
    n_ell_bins: int = 8
    n_bispectrum_bins: int = 6
    isosceles_ratio: float = 0.5
    nu_min: float = -4.0
    nu_max: float = 4.0
    n_nu_bins: int = 16
    nu_reference: NuReference = "noise"
    statistics: tuple[str, ...] = STATISTIC_NAMES

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "n_gal", _unique_values(self.n_gal, "n_gal", check_n_gal))
        set_(
            self,
            "smoothing_arcmin",
            _unique_values(self.smoothing_arcmin, "smoothing_arcmin", check_smoothing),
        )
        epsilon = _finite(self.epsilon, "epsilon")
        if epsilon <= 0:
            raise AnalysisError(
                f"epsilon must be > 0, got {self.epsilon!r}",
                value=self.epsilon,
                hint="use the ellipticity dispersion per component, e.g. 0.26",
            )
        set_(self, "epsilon", epsilon)
        ell_min, ell_max = _finite(self.ell_min, "ell_min"), _finite(self.ell_max, "ell_max")
        if not 0 < ell_min < ell_max:
            raise AnalysisError(
                f"need 0 < ell_min < ell_max, got {ell_min:g} and {ell_max:g}",
                value=(ell_min, ell_max),
                hint="e.g. ell_min=300, ell_max=3000",
            )
        set_(self, "ell_min", ell_min)
        set_(self, "ell_max", ell_max)
        set_(self, "n_ell_bins", _count(self.n_ell_bins, "n_ell_bins", 1))
        set_(self, "n_bispectrum_bins", _count(self.n_bispectrum_bins, "n_bispectrum_bins", 1))
        ratio = _finite(self.isosceles_ratio, "isosceles_ratio")
        if not 0 < ratio < 2:
            raise AnalysisError(
                f"isosceles_ratio must be in (0, 2), got {ratio:g}",
                value=ratio,
                hint="the third side of a triangle is shorter than the other two "
                "together; e.g. 0.5",
            )
        set_(self, "isosceles_ratio", ratio)
        nu_min, nu_max = _finite(self.nu_min, "nu_min"), _finite(self.nu_max, "nu_max")
        if not nu_min < nu_max:
            raise AnalysisError(
                f"need nu_min < nu_max, got {nu_min:g} and {nu_max:g}",
                value=(nu_min, nu_max),
                hint="e.g. nu_min=-4, nu_max=4",
            )
        set_(self, "nu_min", nu_min)
        set_(self, "nu_max", nu_max)
        set_(self, "n_nu_bins", _count(self.n_nu_bins, "n_nu_bins", 1))
        if self.nu_reference not in ("noise", "map"):
            raise AnalysisError(
                f"unknown nu_reference {self.nu_reference!r}",
                value=self.nu_reference,
                hint=_suggest(str(self.nu_reference), ("noise", "map")),
            )
        set_(self, "statistics", self._checked_statistics(self.statistics))

    @staticmethod
    def _checked_statistics(names: Any) -> tuple[str, ...]:
        if isinstance(names, str):
            names = (names,)
        chosen = tuple(names)
        if not chosen:
            raise AnalysisError(
                "statistics must name at least one statistic",
                value=[],
                hint=f"choose from {', '.join(STATISTIC_NAMES)}",
            )
        for name in chosen:
            if name not in STATISTIC_NAMES:
                raise AnalysisError(
                    f"unknown statistic {name!r}",
                    value=name,
                    hint=_suggest(str(name), STATISTIC_NAMES),
                )
        if len(set(chosen)) != len(chosen):
            raise AnalysisError(
                f"statistics lists a name twice: {list(chosen)}",
                value=list(chosen),
                hint="remove the duplicate",
            )
        return tuple(name for name in STATISTIC_NAMES if name in chosen)

    @classmethod
    def quick(cls, **overrides: Any) -> StatisticsSettings:
        """Return the small, fast subset used by the synthetic default run.

        Two noise levels (none and 30 arcmin⁻²), two smoothing scales (2 and 5 arcmin),
        6 ℓ bins, 4 bispectrum bins and 12 ν bins; ``overrides`` replace any field.
        """
        base: dict[str, Any] = {
            "n_gal": (0.0, 30.0),
            "smoothing_arcmin": (2.0, 5.0),
            "n_ell_bins": 6,
            "n_bispectrum_bins": 4,
            "n_nu_bins": 12,
            "nu_min": -3.0,
            "nu_max": 3.0,
        }
        base.update(overrides)
        return cls.from_mapping(base)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> StatisticsSettings:
        """Build settings from a plain mapping (a config file section), rejecting unknown keys."""
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                raise AnalysisError(
                    f"unknown statistics setting {key!r}", value=key, hint=_suggest(str(key), known)
                )
        return cls(**dict(values))

    @property
    def ell_edges(self) -> np.ndarray:
        """Power spectrum bin edges (log-spaced)."""
        return log_ell_edges(self.ell_min, self.ell_max, self.n_ell_bins)

    @property
    def bispectrum_edges(self) -> np.ndarray:
        """Bispectrum bin edges (log-spaced over the same range)."""
        return log_ell_edges(self.ell_min, self.ell_max, self.n_bispectrum_bins)

    @property
    def nu_edges(self) -> np.ndarray:
        """ν bin edges (equal width)."""
        return np.linspace(self.nu_min, self.nu_max, self.n_nu_bins + 1)

    @property
    def nu_centers(self) -> np.ndarray:
        """ν bin centres."""
        edges = self.nu_edges
        return 0.5 * (edges[1:] + edges[:-1])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view that :meth:`from_mapping` turns back into equal settings."""
        status: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            status[f.name] = list(value) if isinstance(value, tuple) else value
        return status
