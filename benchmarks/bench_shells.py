"""Benchmark of the light-cone stages: Born κ from shells against GLASS, particles → shells
against np.bincount.

Everything runs in one process; timed calls of ours and of the anchor alternate, so load
noise on a shared machine mostly cancels; figures are medians. Particle rates are per core:
particles divided by the process's CPU seconds (``time.process_time``), which other jobs on
the machine do not inflate.

(a) Accuracy. The same lognormal δ shells (15 shells, Δz = 0.1, z ≤ 1.5) go into our
    :class:`~lensing_ssc.analysis.born.ConvergenceAccumulator` and into GLASS's
    ``glass.lensing.MultiPlaneConvergence``. GLASS is given our distances: its cosmology is
    an object answering ``transverse_comoving_distance``, ``hubble_distance``, ``Omega_m0``
    and ``H_over_H0`` from :class:`~lensing_ssc.analysis.shells.Background`, and each shell
    is one plane (``add_plane``) at χ_i = B_i/A_i with weight A_i E(z_i)/((1+z_i) χ_i c/H0),
    where A_i = ∫(1+z)χ dχ and B_i = ∫(1+z)χ² dχ over the shell: the thin plane
    that lenses every source exactly as the shell does (``analysis/born.py``). κ at z_s =
    1 and 1.5 must agree to 1e-6 relative. For information, GLASS's own windows
    (``tophat_windows`` + ``add_window``: a plane at the window's mean z with weight Δz)
    are compared too: they differ by their thin-shell approximation, not by round-off.
    Then the C_ℓ of κ (``healpy.anafast``, mean of the realisations) against the Limber
    prediction of the package for these shells, Σ W_i² C_i(ℓ), and the continuous halofit
    Limber C_κ(ℓ), in bins over 16 ≤ ℓ ≤ nside. When pyccl is installed (it is not a
    dependency), CCL's Limber C_κ(ℓ) anchors both: same Ω_m, Ω_b, h, n_s, σ8, no neutrinos,
    Eisenstein & Hu no-wiggle linear spectrum, halofit, and a single source plane at z_s = 1
    (``CMBLensingTracer(z_source=1)``, the κ kernel of one plane); measured/CCL and
    halofit/CCL are printed in the same bins.
(b) Speed and memory at nside 2048 with 50 shells (Δz = 0.04 to z = 2), κ at z_s = 2: the
    time of adding each shell (ours: ``add``; GLASS: ``add_plane``), and the peak of memory
    allocated while adding (``tracemalloc``), in maps of the output's size. δ maps are
    drawn before each timed call (float32 for ours, a float64 copy for GLASS, which keeps
    its κ planes in δ's dtype); no file is read.
(c) Particles → shells: 8 M particles in one shell range, nside 2048 (and 256), binned by
    ``count_particles`` (comoving distance, shell, RING pixel, count) against a bare
    ``np.bincount`` of precomputed pixel indices; the ratio ours/bincount is printed.

Usage::

    python benchmarks/bench_shells.py            # all three
    python benchmarks/bench_shells.py --quick    # smaller maps and counts
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from lensing_ssc.analysis._pixel_kernels import HAVE_NUMBA, count_particles, ring_pixels
from lensing_ssc.analysis.born import ConvergenceAccumulator, born_weights, thin_lens_planes
from lensing_ssc.analysis.shell_spectra import (
    ShellDensitySpectrum,
    lognormal_shell,
    shells_convergence_spectrum,
)
from lensing_ssc.analysis.shells import Background, ShellTable
from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum

try:
    import pyccl
except ImportError:  # pragma: no cover - an optional anchor
    pyccl = None

try:
    import glass
    import glass.lensing
    import healpy as hp
except ImportError as exc:  # pragma: no cover - a benchmark of the dev extra
    sys.exit(f"this benchmark needs glass and healpy: pip install -e '.[dev]' ({exc})")

ACCURACY_TARGET = 1e-6
RATE_TARGET = 20e6  # particles per second per core


class SameDistances:
    """What GLASS's MultiPlaneConvergence asks of a cosmology, answered by our Background."""

    def __init__(self, background: Background) -> None:
        self.background = background
        self.hubble_distance = background.hubble_distance
        self.Omega_m0 = background.omega_m

    def transverse_comoving_distance(self, z: Any, z2: Any = None) -> Any:
        if z2 is None:
            return self.background.comoving_distance(np.asarray(z, dtype=float))
        near = self.background.comoving_distance(np.asarray(z, dtype=float))
        return self.background.comoving_distance(np.asarray(z2, dtype=float)) - near

    def H_over_H0(self, z: Any) -> Any:  # GLASS's (the cosmology API's) name
        return self.background.efunc(np.asarray(z, dtype=float))


def equivalent_planes(table: ShellTable) -> tuple[np.ndarray, np.ndarray]:
    """Each shell's thin plane for GLASS's ``add_plane``: its redshift and weight ``wlens``.

    GLASS weighs a plane at z by (3/2)Ω_m (χ/d_H)(1 − χ/χs)(1+z)/E(z) · wlens; ours by
    (3/2)Ω_m/d_H² · A (1 − χ/χs) with (χ, A) from :func:`thin_lens_planes`.
    """
    bg = table.background
    chi, weight = thin_lens_planes(table)
    z = bg.redshift(chi)
    return z, weight * bg.efunc(z) / ((1.0 + z) * chi * bg.hubble_distance)


def ccl_convergence_spectrum(spectrum: HalofitConvergenceSpectrum, ell: np.ndarray) -> np.ndarray:
    """CCL's Limber C_κ(ℓ) of one source plane, in the cosmology of ``spectrum`` (ℓ ≥ 1)."""
    cosmo = pyccl.Cosmology(
        Omega_c=spectrum.omega_m - spectrum.omega_b,
        Omega_b=spectrum.omega_b,
        h=spectrum.h,
        n_s=spectrum.n_s,
        sigma8=spectrum.sigma8,
        m_nu=0.0,
        transfer_function="eisenstein_hu_nowiggles",
        matter_power_spectrum="halofit",
    )
    tracer = pyccl.CMBLensingTracer(cosmo, z_source=spectrum.z_source, n_samples=2000)
    return pyccl.angular_cl(cosmo, tracer, tracer, ell)


def accuracy(nside: int, realisations: int) -> None:
    bg = Background()
    table = ShellTable.from_redshift_edges(np.round(np.linspace(0.0, 1.5, 16), 10), bg)
    sources = [1.0, 1.5]
    z_eff, wlens = equivalent_planes(table)
    spectra = [ShellDensitySpectrum.of(s, background=bg) for s in table]
    windows = glass.tophat_windows(table.redshift_edges)
    worst, worst_native = 0.0, 0.0
    cls = []
    for r in range(realisations):
        shells = [lognormal_shell(nside, spectra[i], 1000 * r + i) for i in range(len(table))]
        ours = ConvergenceAccumulator(table, sources, nside)
        for i, delta in enumerate(shells):
            ours.add(i, delta)
        kappa = ours.result()
        for j, z_s in enumerate(sources):
            mpc = glass.lensing.MultiPlaneConvergence(SameDistances(bg))
            native = glass.lensing.MultiPlaneConvergence(SameDistances(bg))
            for i, delta in enumerate(shells):
                if z_eff[i] < z_s:
                    mpc.add_plane(delta, float(z_eff[i]), float(wlens[i]))
                if table[i].z_max <= z_s:
                    native.add_window(delta, windows[i])
            mpc.add_plane(np.zeros_like(shells[0]), z_s)
            scale = np.max(np.abs(kappa[j]))
            worst = max(worst, float(np.max(np.abs(mpc.kappa - kappa[j])) / scale))
            if native.zsrc < z_s:
                native.add_plane(np.zeros_like(shells[0]), z_s)
            worst_native = max(worst_native, float(np.max(np.abs(native.kappa - kappa[j])) / scale))
        cls.append(hp.anafast(kappa[0], lmax=2 * nside))
    verdict = "OK" if worst <= ACCURACY_TARGET else "MISSED"
    print(
        f"(a) κ vs GLASS MultiPlaneConvergence, same distances, {len(table)} shells, "
        f"nside {nside}, {realisations} realisation(s), z_s = 1 and 1.5:"
    )
    print(
        f"    max |κ_ours − κ_glass| / max|κ| = {worst:.2e}  (target ≤ {ACCURACY_TARGET:g}: {verdict})"
    )
    print(
        f"    GLASS's own tophat windows (thin planes at mean z, weight Δz): {worst_native:.2e} "
        "(its shell quadrature, for information)"
    )
    measured = np.mean(cls, axis=0)
    ell = np.arange(measured.size)
    shells_theory = shells_convergence_spectrum(spectra, born_weights(table, 1.0))(
        ell.astype(float)
    )
    halofit = HalofitConvergenceSpectrum(z_source=1.0)
    limber = halofit(ell.astype(float))
    edges = np.unique(np.round(np.geomspace(16, nside + 1, 7)).astype(int))
    print(f"    C_ℓ of κ(z_s = 1) / Limber, mean over {realisations} map(s), bins in ℓ:")
    print("      ℓ range     shells Σ W²C_i   halofit C_κ   cosmic-variance σ")
    deviations = []
    for lo, hi in itertools.pairwise(edges):
        band = slice(lo, hi)
        modes = np.sum(2 * ell[band] + 1) * realisations
        a = np.sum(measured[band] * (2 * ell[band] + 1)) / np.sum(
            shells_theory[band] * (2 * ell[band] + 1)
        )
        b = np.sum(measured[band] * (2 * ell[band] + 1)) / np.sum(
            limber[band] * (2 * ell[band] + 1)
        )
        deviations.append(abs(a - 1))
        print(
            f"      {lo:4d}–{hi - 1:<4d}    {a:8.3f}        {b:8.3f}      {np.sqrt(2 / modes):.3f}"
        )
    print(
        f"    mean |ratio − 1| against Σ W²C_i over ℓ {edges[0]}–{edges[-1] - 1}: "
        f"{np.mean(deviations):.3f}"
    )
    if pyccl is None:
        print("    CCL anchor: pyccl not installed: skipped")
        return
    ccl = np.zeros_like(limber)
    ccl[1:] = ccl_convergence_spectrum(halofit, ell[1:].astype(float))
    print(
        f"    against CCL {pyccl.__version__} (halofit, EH no-wiggle, Limber, one source plane "
        f"at z_s = 1), ℓ {edges[0]}–{edges[-1] - 1}:"
    )
    print("      ℓ range     measured/CCL   halofit C_κ/CCL")
    for lo, hi in itertools.pairwise(edges):
        weight = 2 * ell[lo:hi] + 1
        reference = np.sum(ccl[lo:hi] * weight)
        print(
            f"      {lo:4d}–{hi - 1:<4d}    {np.sum(measured[lo:hi] * weight) / reference:8.3f}"
            f"       {np.sum(limber[lo:hi] * weight) / reference:8.3f}"
        )


def speed(nside: int, n_shells: int) -> None:
    bg = Background()
    z_s = 2.0
    table = ShellTable.from_redshift_edges(np.linspace(0.0, z_s, n_shells + 1), bg)
    z_eff, wlens = equivalent_planes(table)
    rng = np.random.default_rng(7)
    npix = 12 * nside * nside
    ours = ConvergenceAccumulator(table, [z_s], nside)
    mpc = glass.lensing.MultiPlaneConvergence(SameDistances(bg))
    ours_times, glass_times, ours_peak, glass_peak = [], [], 0, 0
    for i in range(n_shells):
        delta = rng.standard_normal(npix, dtype=np.float32)
        # GLASS keeps its κ planes in the dtype of the first δ: float64, as ours.
        delta64 = delta.astype(np.float64)
        gc.collect()
        for side in ("ours", "glass") if i % 2 == 0 else ("glass", "ours"):
            tracemalloc.start()
            started = time.perf_counter()
            if side == "ours":
                ours.add(i, delta)
            else:
                mpc.add_plane(delta64, float(z_eff[i]), float(wlens[i]))
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if side == "ours":
                ours_times.append(elapsed)
                ours_peak = max(ours_peak, peak)
            else:
                glass_times.append(elapsed)
                glass_peak = max(glass_peak, peak)
        del delta, delta64
    mpc.add_plane(np.zeros(npix), z_s)
    kappa = ours.result()[0]
    agree = float(np.max(np.abs(mpc.kappa - kappa)) / np.max(np.abs(kappa)))
    out_bytes = kappa.nbytes
    print(
        f"(b) shells → κ, nside {nside}, {n_shells} shells, z_s = {z_s:g} (one float64 map = "
        f"{out_bytes / 2**20:.0f} MiB):"
    )
    print(
        f"    per shell: ours {statistics.median(ours_times):.3f} s, GLASS "
        f"{statistics.median(glass_times):.3f} s (medians); totals {sum(ours_times):.1f} s vs "
        f"{sum(glass_times):.1f} s; ratio GLASS/ours {sum(glass_times) / sum(ours_times):.2f}"
    )
    print(
        f"    memory allocated while adding a shell, beyond the output: ours "
        f"{ours_peak / out_bytes:.3f} maps ({ours_peak / 2**20:.0f} MiB), GLASS "
        f"{glass_peak / out_bytes:.2f} maps (its two κ planes and a temporary); target ≤ 2 "
        f"maps: {'OK' if ours_peak <= 2 * out_bytes else 'MISSED'}"
    )
    print(f"    the two κ maps agree to {agree:.1e} relative")


def rate(func: Callable[[], object], n: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        func()
        times.append(time.process_time() - started)
    return [n / t for t in times]


def healpy_then_bincount(positions: np.ndarray, nside: int) -> np.ndarray:
    """The textbook way: healpy's vec2pix, then np.bincount."""
    return np.bincount(hp.vec2pix(nside, *positions.T), minlength=12 * nside * nside)


def particles(n: int, nsides: tuple[int, ...], repeats: int) -> None:
    rng = np.random.default_rng(3)
    direction = rng.standard_normal((n, 3))
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    radius = rng.uniform(1000.0, 2000.0, n)
    positions = (direction * radius[:, None]).astype(np.float32)
    del direction
    print(
        f"(c) particles → shells, {n / 1e6:.0f} M particles (float32), rates per core "
        f"(CPU time), medians of {repeats}:"
    )
    for nside in nsides:
        npix = 12 * nside * nside
        pixels = ring_pixels(positions, nside)
        for n_shells in (1, 4):
            edges = np.linspace(1000.0, 2000.0, n_shells + 1)
            counts = np.zeros((n_shells, npix), dtype=np.int32)
            count_particles(counts, positions[:16], edges, nside=nside)  # compile, touch pages
            ours, anchor = [], []
            for _ in range(repeats):
                ours += rate(
                    functools.partial(count_particles, counts, positions, edges, nside=nside), n, 1
                )
                anchor += rate(functools.partial(np.bincount, pixels, minlength=npix), n, 1)
            o, a = statistics.median(ours), statistics.median(anchor)
            verdict = "OK" if o >= RATE_TARGET else "MISSED"
            print(
                f"    nside {nside:5d}, {n_shells} shell(s): ours {o / 1e6:6.1f} M/s, "
                f"np.bincount of pixel indices {a / 1e6:6.1f} M/s, ratio {o / a:.2f} "
                f"(target ≥ 20 M/s: {verdict})"
            )
        if nside == nsides[0]:
            quarter = positions[: n // 4]
            numpy_loop = rate(
                functools.partial(
                    count_particles, counts, quarter, edges, nside=nside, compiled=False
                ),
                n // 4,
                max(1, repeats // 2),
            )
            naive = rate(functools.partial(healpy_then_bincount, positions, nside), n, 1)
            print(
                f"    for information, nside {nside}: without numba {statistics.median(numpy_loop) / 1e6:.1f} "
                f"M/s; healpy.vec2pix + np.bincount {naive[0] / 1e6:.1f} M/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller maps and counts")
    args = parser.parse_args()
    print(f"numba: {'yes' if HAVE_NUMBA else 'no (numpy loop)'}; glass {glass.__version__}")
    if args.quick:
        accuracy(nside=64, realisations=2)
        speed(nside=512, n_shells=10)
        particles(2_000_000, (256,), repeats=3)
    else:
        accuracy(nside=128, realisations=8)
        speed(nside=2048, n_shells=50)
        particles(8_000_000, (2048, 256), repeats=5)


if __name__ == "__main__":
    main()
