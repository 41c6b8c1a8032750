"""Full-sky lognormal convergence maps (HEALPix), and the example suites of an SSC study.

* :func:`lognormal_sky` — one full-sky shifted-lognormal κ map of a given C(ℓ), drawn with
  healpy. The Gaussian field's spectrum C_g(ℓ) comes from ξ_g = ln(1 + ξ_κ/λ²) (the
  transform of :mod:`lensing_ssc.analysis.fields`), with ξ_κ(θ) = Σ (2ℓ+1)/(4π) C(ℓ) P_ℓ(cos θ)
  and C_g(ℓ) = 2π ∫ ξ_g P_ℓ d cos θ, both by Gauss–Legendre quadrature on 2(ℓ_max + 1) nodes.
  Negative C_g values are clipped to zero, and the monopole of g is zero. The map is
  band-limited to ℓ_max = 2 nside (the exponential puts some power above it). The
  harmonic coefficients are drawn from ``numpy.random.default_rng(seed)``: the same seed
  gives the same phases at any spectrum, shift or cut.
* :func:`lognormal_skies` — Z correlated maps (one per source redshift) of the auto and
  cross spectra C_ij(ℓ), the multi-field lognormal model of FLASK (Xavier, Abdalla &
  Joachimi 2016, MNRAS 459, 3693): the Gaussian fields' cross spectra come from
  ξ_g,ij = ln(1 + ξ_ij/(λ_i λ_j)) as above, and the fields are drawn together: Z unit
  Gaussian coefficient sets z_k from the seed's generator, and g_i = Σ_k L_ik(ℓ) z_k with L
  the Cholesky factor of the Z × Z matrix C_g,ij(ℓ) at each ℓ (what ``healpy.synalm``
  does with several spectra, here from the seed's own generator). A pivot that rounding
  makes negative is set to zero. The first map's coefficients are those
  :func:`lognormal_sky` draws for the seed.
* **Modes larger than a patch** (``ell_cut``): C(ℓ) of κ and C_g(ℓ) of g are set to zero
  for ℓ < ℓ_cut before drawing, and the κ the exponential makes below ℓ_cut is then
  subtracted (its coefficients, measured with ``healpy.map2alm``), so the map has no power
  below the cut. For a square patch of side θ, ℓ_cut = ⌈2π/θ⌉, its fundamental multipole
  (36 for 10°): this stands for small simulation boxes tiled along the line of sight, which
  carry no modes larger than themselves.
* :func:`write_example_suites` — the two suites of a HEALPix SSC study as FITS files,
  ``bigbox/kappa_zs{zs}_s{seed}.fits`` (all large-scale power) and
  ``tiled/kappa_zs{zs}_s{seed}.fits`` (modes below the patch's ℓ_cut removed), for several
  source redshifts and the same seeds in both suites, with the cosmology, z_s, seed and
  suite in each file's header. The source redshifts of one seed are one universe seen at
  several distances: :func:`lognormal_skies` of the halofit auto spectra and their Limber
  cross spectra (:func:`lensing_ssc.analysis.theory.cross_convergence_spectrum`), so the
  maps' r_12(ℓ) = C_12/√(C_11 C_22) is the theory's (0.85 at ℓ = 100 for z_s = 1 and 2),
  not 1.

Needs the ``healpix`` extra (healpy, which brings astropy). The Gaussian fields' spectra
and their Cholesky factors, cached per spectrum, are computed in :mod:`._lognormal_spectra`;
here the arguments are checked and the maps drawn. The pipeline that measures these maps
is :mod:`lensing_ssc.pipelines`; ``lensing-ssc example healpix-ssc`` writes them with a
config that runs the study.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.analysis._lognormal_spectra import lognormal_plan
from lensing_ssc.analysis.fields import shifted_lognormal
from lensing_ssc.analysis.spectra import ConvergenceSpectrum, HalofitConvergenceSpectrum
from lensing_ssc.analysis.theory import cross_convergence_spectrum
from lensing_ssc.analysis.tomography import spectrum_pairs
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "EXAMPLE_PATTERN",
    "EXAMPLE_SUITES",
    "ExampleSuites",
    "cut_multipole",
    "lognormal_skies",
    "lognormal_sky",
    "write_example_suites",
]

EXAMPLE_PATTERN = "kappa_zs{zs}_s{seed}.fits"
"""File names of the example maps; the pipeline's ``healpix.sets.<set>.pattern``."""

EXAMPLE_SUITES = ("bigbox", "tiled")
"""The example suites: all large-scale modes, and the modes larger than a patch removed."""

_EXTRA = 'pip install "lensing-ssc[healpix]"'
_COSMOLOGY_KEYS = {
    "omega_m": "OMEGA_M",
    "omega_b": "OMEGA_B",
    "h": "H",
    "n_s": "N_S",
    "sigma8": "SIGMA8",
    "nonlinear": "NONLIN",
}


def _healpy() -> Any:
    # Imported when first needed, like analysis.patches: healpy costs ~0.8 s to import.
    try:
        return importlib.import_module("healpy")
    except ImportError:
        raise ModuleNotFoundError(f"full-sky maps need healpy and astropy: {_EXTRA}") from None


def _check_nside(nside: Any) -> int:
    if (
        isinstance(nside, bool)
        or not isinstance(nside, (int, np.integer))
        or nside < 8
        or nside & (nside - 1)
    ):
        raise AnalysisError(
            f"nside must be a power of 2 of at least 8, got {nside!r}",
            value=nside,
            hint="use e.g. nside=256",
        )
    return int(nside)


def cut_multipole(patch_size_deg: float) -> int:
    """Return ℓ_cut = ⌈2π/θ⌉, the fundamental multipole of a square patch of side θ (degrees).

    Example:
        >>> cut_multipole(10.0)
        36
    """
    if not (math.isfinite(patch_size_deg) and 0.0 < patch_size_deg < 180.0):
        raise AnalysisError(
            f"patch_size_deg={patch_size_deg!r} is not a patch side",
            value=patch_size_deg,
            hint="use 0 < patch_size_deg < 180, e.g. 10",
        )
    return math.ceil(2.0 * math.pi / math.radians(patch_size_deg) - 1e-9)


def _check_cut(ell_cut: Any, lmax: int) -> int:
    if isinstance(ell_cut, bool) or not isinstance(ell_cut, (int, np.integer)):
        raise AnalysisError(
            f"ell_cut must be an integer, got {ell_cut!r}", value=ell_cut, hint="e.g. 36"
        )
    if not 0 <= ell_cut <= lmax:
        raise AnalysisError(
            f"ell_cut={ell_cut} is outside 0 … 2·nside = {lmax}",
            value=ell_cut,
            hint="use a larger patch (a smaller cut) or a larger nside",
        )
    return int(ell_cut)


def _check_shifts(shifts: Sequence[float], n_maps: int) -> tuple[float, ...]:
    values = tuple(float(shift) for shift in shifts)
    for shift in values:
        if not (math.isfinite(shift) and shift > 0):
            raise AnalysisError(
                f"shift must be > 0, got {shift!r}",
                value=shift,
                hint="e.g. -minimum_convergence()",
            )
    if len(values) != n_maps:
        raise AnalysisError(
            f"{len(values)} shift(s) for {n_maps} map(s)",
            value=len(values),
            hint="give one shift λ per source redshift",
        )
    return values


def _n_maps(n_spectra: int) -> int:
    n_maps = round((math.sqrt(8 * n_spectra + 1) - 1) / 2)
    if n_spectra < 1 or n_maps * (n_maps + 1) // 2 != n_spectra:
        raise AnalysisError(
            f"{n_spectra} spectra are not the Z(Z+1)/2 auto and cross spectra of Z maps",
            value=n_spectra,
            hint="give C_11, C_12, …, C_1Z, C_22, …, C_ZZ (3 spectra for 2 redshifts)",
        )
    return n_maps


def lognormal_skies(
    nside: int,
    spectra: Sequence[ConvergenceSpectrum],
    seed: int,
    *,
    shifts: Sequence[float],
    ell_cut: int = 0,
) -> np.ndarray:
    """Draw Z correlated full-sky shifted-lognormal κ maps (HEALPix RING order), one per row.

    Args:
        nside: HEALPix resolution, a power of 2 ≥ 8; the maps are band-limited to ℓ ≤ 2 nside.
        spectra: The Z(Z+1)/2 auto and cross spectra C_ij(ℓ) of κ, i ≤ j, in the order
            C_11, C_12, …, C_1Z, C_22, …, C_ZZ
            (:func:`lensing_ssc.analysis.tomography.spectrum_pairs`); for source redshifts,
            :func:`lensing_ssc.analysis.theory.cross_convergence_spectrum` gives the crosses.
        seed: Seeds the harmonic coefficients (``numpy.random.default_rng(seed)``); the
            first map is :func:`lognormal_sky` of the seed.
        shifts: λ_i > 0 of each map, whose lower bound is −λ_i.
        ell_cut: Multipoles below this carry no power in any map (0: none removed).

    Returns:
        ``(Z, 12 nside²)`` maps whose auto and cross spectra are ``spectra``.

    Example:
        >>> from lensing_ssc.analysis.theory import cross_convergence_spectrum
        >>> near, far = (HalofitConvergenceSpectrum(z_source=z) for z in (1.0, 2.0))
        >>> spectra = [near, cross_convergence_spectrum(near, far), far]
        >>> shifts = [-near.minimum_convergence(), -far.minimum_convergence()]
        >>> lognormal_skies(16, spectra, 7, shifts=shifts).shape
        (2, 3072)
    """
    healpy = _healpy()
    nside = _check_nside(nside)
    lmax = 2 * nside
    models = tuple(spectra)
    lam = _check_shifts(shifts, _n_maps(len(models)))
    cut = _check_cut(ell_cut, lmax)
    try:
        hash(models)
    except TypeError:  # a spectrum that cannot key the cache (a mutable object) is planned afresh
        lower, variances = lognormal_plan.__wrapped__(lmax, models, lam, cut)
    else:
        lower, variances = lognormal_plan(lmax, models, lam, cut)

    ell, m = healpy.Alm.getlm(lmax)
    rng = np.random.default_rng(seed)
    units = []
    for _ in lam:
        real, imag = rng.standard_normal((2, ell.size))
        units.append(np.where(m == 0, real, (real + 1j * imag) / math.sqrt(2.0)))
    maps = np.empty((len(lam), healpy.nside2npix(nside)))
    for i, shift in enumerate(lam):
        alm = units[0] * lower[ell, i, 0]
        for k in range(1, i + 1):
            alm += units[k] * lower[ell, i, k]
        kappa = shifted_lognormal(healpy.alm2map(alm, nside, lmax=lmax), variances[i], shift)
        if cut > 0:
            low = healpy.map2alm(kappa, lmax=cut - 1, iter=3)
            kappa -= healpy.alm2map(low, nside, lmax=cut - 1)
        maps[i] = kappa
    return maps


def lognormal_sky(
    nside: int,
    spectrum: ConvergenceSpectrum,
    seed: int,
    *,
    shift: float,
    ell_cut: int = 0,
) -> np.ndarray:
    """Draw a full-sky shifted-lognormal κ map (HEALPix RING order) of power spectrum ``spectrum``.

    Args:
        nside: HEALPix resolution, a power of 2 ≥ 8; the map is band-limited to ℓ ≤ 2 nside.
        spectrum: C(ℓ) of κ, e.g. :class:`~lensing_ssc.analysis.spectra.HalofitConvergenceSpectrum`.
        seed: Seeds the harmonic coefficients (``numpy.random.default_rng(seed)``).
        shift: λ > 0, the map's lower bound is −λ (``-spectrum.minimum_convergence()``).
        ell_cut: Multipoles below this carry no power (0: none removed); see the module.

    Example:
        >>> model = HalofitConvergenceSpectrum()
        >>> kappa = lognormal_sky(16, model, 7, shift=-model.minimum_convergence())
        >>> kappa.shape, bool(kappa.min() > model.minimum_convergence())
        ((3072,), True)
    """
    return lognormal_skies(nside, [spectrum], seed, shifts=[shift], ell_cut=ell_cut)[0]


@dataclass(frozen=True)
class ExampleSuites:
    """The maps :func:`write_example_suites` wrote.

    Attributes:
        directory: Where they are: one folder per suite.
        files: Each suite's files (``bigbox``, ``tiled``), by z_s then seed.
        nside, seeds, z_sources: The maps' resolution, seeds and source redshifts.
        ell_cut: Multipoles below this are absent from the ``tiled`` maps.
    """

    directory: Path
    files: dict[str, tuple[Path, ...]]
    nside: int
    seeds: tuple[int, ...]
    z_sources: tuple[float, ...]
    ell_cut: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "directory": str(self.directory),
            "files": {suite: [str(p) for p in paths] for suite, paths in self.files.items()},
            "nside": self.nside,
            "seeds": list(self.seeds),
            "z_sources": list(self.z_sources),
            "ell_cut": self.ell_cut,
        }


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    values = tuple(seeds)
    bad = [s for s in values if isinstance(s, bool) or not isinstance(s, (int, np.integer))]
    if not values or bad or min(values) < 0 or len(set(values)) != len(values):
        raise AnalysisError(
            f"seeds must be distinct integers ≥ 0, got {list(values)!r}",
            value=list(values),
            hint="e.g. seeds=range(4)",
        )
    return tuple(int(s) for s in values)


def write_example_suites(
    directory: str | Path,
    *,
    nside: int = 256,
    seeds: Sequence[int] = (0, 1, 2, 3),
    z_sources: Sequence[float] = (1.0, 2.0),
    patch_size_deg: float = 10.0,
    cosmology: HalofitConvergenceSpectrum | None = None,
) -> ExampleSuites:
    """Write the ``bigbox`` and ``tiled`` suites of lognormal full-sky κ maps as FITS files.

    Each map is ``directory/<suite>/kappa_zs{zs}_s{seed}.fits`` (``zs`` written as ``1``,
    ``1.5``). A seed's maps at all z_s are drawn together by :func:`lognormal_skies` from
    the halofit spectra of ``cosmology`` at each z_s and the Limber cross spectra between
    them, each with its shift λ = −κ_min; ``tiled`` maps have no multipole below
    ``cut_multipole(patch_size_deg)``. Files are overwritten; the same arguments write the
    same bytes. Headers: ``SUITE``, ``ZS``, ``SEED``, ``ELL_CUT``, ``SHIFT`` and the
    cosmology (``OMEGA_M``, ``OMEGA_B``, ``H``, ``N_S``, ``SIGMA8``, ``NONLIN``).

    Args:
        directory: Where the suites' folders go (made if missing).
        nside: HEALPix resolution of every map.
        seeds: The realisations, the same in both suites.
        z_sources: Source redshifts.
        patch_size_deg: Side of the patches the study cuts, which sets ℓ_cut.
        cosmology: The spectrum's parameters (its ``z_source`` is replaced); default
            :class:`HalofitConvergenceSpectrum`'s.

    Example:
        >>> suites = write_example_suites("maps", nside=32, seeds=[0], z_sources=[1])
        >>> [p.name for p in suites.files["tiled"]], suites.ell_cut
        (['kappa_zs1_s0.fits'], 36)
    """
    healpy = _healpy()
    nside = _check_nside(nside)
    seed_list = _check_seeds(seeds)
    redshifts = tuple(float(z) for z in z_sources)
    if not redshifts or len(set(redshifts)) != len(redshifts):
        raise AnalysisError(
            f"z_sources must be distinct source redshifts, got {list(z_sources)!r}",
            value=list(z_sources),
            hint="e.g. z_sources=[1.0, 2.0]",
        )
    ell_cut = cut_multipole(patch_size_deg)
    if ell_cut > 2 * nside:
        raise AnalysisError(
            f"patches of {patch_size_deg:g}° cut ℓ < {ell_cut}, above the band limit "
            f"2·nside = {2 * nside} of nside {nside}",
            value=nside,
            hint=f"use nside ≥ {ell_cut // 2 + 1} or larger patches",
        )
    base = cosmology if cosmology is not None else HalofitConvergenceSpectrum()
    root = Path(directory)
    models = [dataclasses.replace(base, z_source=z) for z in redshifts]
    shifts = [-model.minimum_convergence() for model in models]
    spectra = [
        models[i] if i == j else cross_convergence_spectrum(models[i], models[j])
        for i, j in spectrum_pairs(len(models))
    ]
    cosmology_cards = [
        (card, float(getattr(base, key)) if key != "nonlinear" else bool(base.nonlinear))
        for key, card in _COSMOLOGY_KEYS.items()
    ]
    files: dict[str, dict[tuple[int, int], Path]] = {suite: {} for suite in EXAMPLE_SUITES}
    for suite, cut in zip(EXAMPLE_SUITES, (0, ell_cut), strict=True):
        folder = root / suite
        folder.mkdir(parents=True, exist_ok=True)
        for s, seed in enumerate(seed_list):
            skies = lognormal_skies(nside, spectra, seed, shifts=shifts, ell_cut=cut)
            for z, (z_source, shift, kappa) in enumerate(
                zip(redshifts, shifts, skies, strict=True)
            ):
                path = folder / EXAMPLE_PATTERN.format(zs=f"{z_source:g}", seed=seed)
                header = [
                    ("SUITE", suite),
                    ("ZS", z_source),
                    ("SEED", seed),
                    ("ELL_CUT", cut),
                    ("SHIFT", shift),
                    *cosmology_cards,
                ]
                healpy.write_map(
                    str(path), kappa, extra_header=header, overwrite=True, dtype=np.float32
                )
                files[suite][z, s] = path
    return ExampleSuites(
        directory=root,
        files={suite: tuple(paths[key] for key in sorted(paths)) for suite, paths in files.items()},
        nside=nside,
        seeds=seed_list,
        z_sources=redshifts,
        ell_cut=ell_cut,
    )
