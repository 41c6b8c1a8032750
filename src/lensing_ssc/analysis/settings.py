"""Which patch statistics to compute, and how: a validated, immutable settings object.

:class:`StatisticsSettings` holds the galaxy densities, smoothing scales, shape-noise level,
ℓ and ν binning and the list of statistics; its defaults follow common LSST-like choices
(ε = 0.26, n_gal ∈ {0, 7, 15, 30, 50} arcmin⁻², σ_s ∈ {2, 5, 8, 10} arcmin, ℓ 300–3000).
:meth:`StatisticsSettings.quick` is the small subset the synthetic default run uses.
Bad values raise ``AnalysisError`` naming the field, the value and the fix; an unknown
statistic or field name comes with a "did you mean".

Two conventions of the map statistics (PDF, peaks, minima, V0–V2) are settings here:

* ``subtract_patch_mean`` (default ``True``): each smoothed, noisy patch has its own mean
  removed before ν is formed. The mean is the patch's ℓ = 0 mode; no ℓ or bispectrum bin
  contains ℓ = 0, so Ĉ and B̂ are the same either way. A κ map reconstructed from shear has no
  observable mean (the mass-sheet degeneracy: Falco, Gorenstein & Shapiro 1985; Schneider &
  Seitz 1995), and without the subtraction the sub-patch/periodic variance ratios of the map
  statistics measure mostly the scatter of the patch mean.
* ``nu_reference``: the σ that ν = κ_s/σ divides by. ``"noise"``: the smoothed shape-noise
  level of each n_gal (one number per setting, the same for every patch; with n_gal = 0 there
  is no noise and each patch's own RMS is used instead, which :meth:`nu_normalisation` says);
  ``"map"``: each patch's own RMS; ``"global"``: ``nu_sigma``, one σ per smoothing scale given
  in κ units, the same for every patch, set and n_gal, so that ν curves of different n_gal
  and sets share one scale.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from lensing_ssc.analysis.noise import DEFAULT_EPSILON, check_n_gal, noise_sigma
from lensing_ssc.analysis.smoothing import check_smoothing, smoothed_white_noise_sigma
from lensing_ssc.analysis.statistics.power_spectrum import log_ell_edges
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["NU_REFERENCES", "STATISTIC_NAMES", "StatisticsSettings"]

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

NuReference = Literal["noise", "map", "global"]
NU_REFERENCES = ("noise", "map", "global")


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
            level (the patch's own RMS when n_gal = 0); ``"map"``: always the patch's RMS;
            ``"global"``: ``nu_sigma`` for every patch and n_gal.
        nu_sigma: With ``nu_reference="global"`` (and only then): σ in κ units, one per
            smoothing scale in the order of ``smoothing_arcmin``, or one value for all.
        subtract_patch_mean: Remove each patch's mean before the map statistics (the power
            spectrum and bispectra do not depend on it).
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
    nu_sigma: tuple[float, ...] | None = None
    subtract_patch_mean: bool = True
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
        if self.nu_reference not in NU_REFERENCES:
            raise AnalysisError(
                f"unknown nu_reference {self.nu_reference!r}",
                value=self.nu_reference,
                hint=_suggest(str(self.nu_reference), NU_REFERENCES),
            )
        set_(self, "nu_sigma", self._checked_nu_sigma())
        if not isinstance(self.subtract_patch_mean, (bool, np.bool_)):
            raise AnalysisError(
                f"subtract_patch_mean must be true or false, got {self.subtract_patch_mean!r}",
                value=self.subtract_patch_mean,
                hint="subtract_patch_mean=True removes each patch's mean before the map statistics",
            )
        set_(self, "subtract_patch_mean", bool(self.subtract_patch_mean))
        set_(self, "statistics", self._checked_statistics(self.statistics))

    def _checked_nu_sigma(self) -> tuple[float, ...] | None:
        if self.nu_reference != "global":
            if self.nu_sigma is not None:
                raise AnalysisError(
                    f"nu_sigma is used only with nu_reference='global', not {self.nu_reference!r}",
                    value=self.nu_sigma,
                    hint="set nu_reference='global', or leave nu_sigma unset",
                )
            return None
        if self.nu_sigma is None:
            raise AnalysisError(
                "nu_reference='global' needs nu_sigma: the σ (κ units) that ν divides by",
                value=None,
                hint="give one σ per smoothing scale, e.g. the RMS of the smoothed, noiseless "
                "maps of the reference set",
            )
        given = self.nu_sigma
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            given = (given,)
        values = tuple(_finite(v, "nu_sigma") for v in given)
        if any(v <= 0 for v in values) or len(values) not in (1, len(self.smoothing_arcmin)):
            raise AnalysisError(
                f"nu_sigma must hold one positive σ, or one per smoothing scale "
                f"({len(self.smoothing_arcmin)}), got {list(values)}",
                value=list(values),
                hint="list σ in the order of smoothing_arcmin",
            )
        if len(values) == 1:
            values = values * len(self.smoothing_arcmin)
        return values

    def nu_normalisation(
        self, n_gal: float, smoothing_arcmin: float, pixel_size_arcmin: float, n_pixels: int
    ) -> tuple[str, float | None]:
        """Return which σ ν divides by at one setting, and its value when patches share it.

        ``("noise", σ_noise,s)``, ``("global", nu_sigma)`` or ``("map", None)`` (each patch's
        own RMS, which differs from patch to patch), for patches of ``n_pixels²`` pixels.
        """
        sigma_pix = noise_sigma(n_gal, pixel_size_arcmin, self.epsilon)
        if self.nu_reference == "global" and self.nu_sigma is not None:
            index = self.smoothing_arcmin.index(float(smoothing_arcmin))
            return "global", self.nu_sigma[index]
        if self.nu_reference == "noise" and sigma_pix > 0:
            level = smoothed_white_noise_sigma(
                sigma_pix, n_pixels, pixel_size_arcmin, smoothing_arcmin
            )
            return "noise", float(level)
        return "map", None

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
