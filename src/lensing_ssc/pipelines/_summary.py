"""The run's short text summary (``results/summary.txt``) and its one-line SSC headline.

What the sets hold, which statistics at which settings, what failed or was dropped for its
mask, and per statistic of every compared pair of sets the variance ratio with its interval
over maps and the super-sample excess predicted from the response to the patch mean beside
the measured one. It says how
the map statistics were measured — whether each patch's mean was subtracted, and which σ ν
divides by — and reads the ratios accordingly: the power spectrum and bispectra do not see
the patch mean (ℓ = 0), so their ratio above 1 is variance from modes larger than the patch;
the map statistics' ratio is that only with the mean subtracted, and otherwise measures
mostly how the patch mean scatters (zero in periodic patches, whose ℓ = 0 mode is zero).
Sets with tomography get a line each (redshifts, realisations, r_ij(ℓ)), and each compared
pair of them the joint vector's variance ratios per spectrum and S/N.
Numbers come from :class:`._merged_results.MergedResults`; files are written by
:mod:`.patch_statistics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lensing_ssc._version import __version__
from lensing_ssc.analysis import StatisticsSettings
from lensing_ssc.analysis.comparison import StatisticComparison
from lensing_ssc.pipelines._merged_results import MergedResults

__all__ = ["SUMMARY_NAME", "nu_description", "ssc_headline", "summary_text"]

SUMMARY_NAME = "summary.txt"
"""The summary's file name, in the run's results directory."""

_MAX_FAILURES_SHOWN = 10


def _numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _with_interval(value: float, low: float, high: float) -> str:
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _ratio_lines(key: str, compared: StatisticComparison) -> list[str]:
    """The variance ratio with its interval; then the predicted and measured SSC excess."""
    ratio = compared.variance_ratio
    low, high = compared.variance_ratio_interval
    finite = np.isfinite(ratio)
    if not finite.any():
        return [f"  {key:<34} (no variance in either set)"]
    if key.startswith("cl/"):
        lines = [
            f"  {key:<34} "
            + "  ".join(_with_interval(*v) for v in zip(ratio, low, high, strict=True))
        ]
    else:
        i = int(np.flatnonzero(finite)[np.argsort(ratio[finite])[finite.sum() // 2]])
        lines = [
            f"  {key:<34} median bin {_with_interval(ratio[i], low[i], high[i])}  "
            f"range {ratio[finite].min():.2f}–{ratio[finite].max():.2f}"
        ]
    predicted, measured = compared.ssc_predicted, compared.ssc_measured
    if (
        predicted is not None
        and measured is not None
        and compared.ssc_predicted_interval is not None
        and compared.ssc_measured_interval is not None
    ):
        bins = list(range(len(ratio))) if key.startswith("cl/") else [i]
        pairs = [
            f"{_with_interval(predicted[b], *compared.ssc_predicted_interval[:, b])} vs "
            f"{_with_interval(measured[b], *compared.ssc_measured_interval[:, b])}"
            for b in bins
        ]
        where = "per ℓ bin" if key.startswith("cl/") else "median bin"
        lines.append(f"  {'':<34} SSC excess predicted vs measured ({where}): " + "; ".join(pairs))
    return lines


_FOURIER = ("cl/", "bispectrum_")


def nu_description(settings: StatisticsSettings) -> str:
    """One line saying what ν = κ_s/σ was divided by, true for every n_gal of ``settings``."""
    s = settings
    if s.nu_reference == "global" and s.nu_sigma is not None:
        sigmas = ", ".join(
            f"{v:.4g} at {m:g}′" for m, v in zip(s.smoothing_arcmin, s.nu_sigma, strict=True)
        )
        return f"κ_s/σ with one σ for every patch, set and n_gal ({sigmas}): one ν scale"
    if s.nu_reference == "map":
        return "κ_s/RMS of each patch: σ differs from patch to patch (absorbing its scatter)"
    noisy = [n for n in s.n_gal if n > 0]
    text = "κ_s/σ_noise,s (signal-to-noise; σ per setting in meta/nu_normalisation)"
    if len(noisy) < len(s.n_gal):
        if not noisy:
            return "κ_s/RMS of each patch (n_gal = 0 has no noise σ): σ differs between patches"
        text += (
            "; for n_gal = 0 (no noise) κ_s/RMS of each patch, so its ν is on another scale "
            "than the other n_gal (nu_reference: global gives them one)"
        )
    return text


def _mean_description(settings: StatisticsSettings) -> str:
    if settings.subtract_patch_mean:
        return "each patch's mean subtracted before the PDF, peaks, minima and V0–V2"
    return "patch mean kept (not subtracted) in the PDF, peaks, minima and V0–V2"


def _map_ratio_meaning(settings: StatisticsSettings) -> str:
    if settings.subtract_patch_mean:
        return (
            "map statistics (patch mean subtracted): > 1: variance from modes larger than "
            "the patch beyond its mean (gradients across it, mode coupling)"
        )
    return (
        "map statistics (patch mean kept): the ratio measures mostly the scatter of the patch "
        "mean κ, zero in periodic patches, not mode coupling (subtract_patch_mean: true "
        "removes it)"
    )


_SET_LABELS = {"subpatches": "sub-patches", "periodic": "periodic"}


def ssc_headline(merged: MergedResults) -> str | None:
    """``"SSC: Var Ĉ(sub-patches)/Var Ĉ(periodic), ngal=0, ℓ 300→3000: 1.1 … 2.6"`` or ``None``.

    The first comparison's power-spectrum ratio (``Var Ĉ(bigbox/zs=1) / Var Ĉ(tiled/zs=1)``
    for declared sets).
    """
    if not merged.comparisons:
        return None
    compared = merged.comparisons[0]
    top = _SET_LABELS.get(compared.comparison.numerator, compared.comparison.numerator)
    bottom = _SET_LABELS.get(compared.comparison.denominator, compared.comparison.denominator)
    for key, diagonal in compared.ratio.items():
        if key.startswith("cl/"):
            s = merged.settings
            return (
                f"SSC: Var Ĉ({top}) / Var Ĉ({bottom}), {key.split('/', 1)[1]}, "
                f"ℓ {s.ell_min:g}→{s.ell_max:g}: " + " ".join(f"{v:.2f}" for v in diagonal)
            )
    return None


def _pair_name(z_sources: Sequence[float], i: int, j: int) -> str:
    return f"{z_sources[i]:g}×{z_sources[j]:g}"


def _tomography_lines(merged: MergedResults) -> list[str]:
    """Per set its redshifts and r_ij(ℓ); per compared pair the joint variance ratios and S/N."""
    tomography = merged.tomography
    lines = []
    for suite, t in tomography.summaries.items():
        zs = t.z_sources
        key = next(iter(t.samples))
        r = t.cross_correlation(key)
        crosses = "; ".join(
            f"{_pair_name(zs, i, j)} " + " ".join(f"{v:.2f}" for v in r[i, j])
            for i, j in t.pairs
            if i != j
        )
        lines.append(
            f"tomography  {suite}: z_s {_numbers(zs)}, auto and cross C_ℓ of "
            f"{len(dict.fromkeys(t.realisations))} realisation(s), {len(t.realisations)} "
            f"patches (tomography/{suite}); r_ij(ℓ) = C_ij/√(C_ii C_jj), {key.split('/')[1]}: "
            f"{crosses}"
        )
    for suite, notes in tomography.skipped.items():
        for label, reason in list(notes.items())[:_MAX_FAILURES_SHOWN]:
            which = "all realisations" if label == "*" else label
            lines.append(f"  {suite} {which} left out of the tomography: {reason}")
    for suite, counts in tomography.dropped.items():
        for label, count in list(counts.items())[:_MAX_FAILURES_SHOWN]:
            lines.append(
                f"  {suite} {label}: {count} patch place(s) left out of the tomography, "
                "dropped for the mask at some z_s but not all (meta/tomography)"
            )
    for compared in tomography.comparisons:
        details = compared.compared
        zs = compared.z_sources
        lines.append(
            f"SSC         joint variance ratio {compared.numerator} / {compared.denominator} "
            f"of the spectra across z_s {_numbers(zs)} (ssc/{compared.path}), "
            f"[{details.confidence:.0%} intervals, {details.intervals}; "
            f"{details.n_maps[0]} + {details.n_maps[1]} realisations]"
        )
        pairs = [(i, j) for i in range(len(zs)) for j in range(i, len(zs))]
        for key, c in details.statistics.items():
            blocks = np.split(np.arange(c.variance_ratio.size), len(pairs))
            parts = []
            for (i, j), block in zip(pairs, blocks, strict=True):
                ratio = c.variance_ratio[block]
                low, high = c.variance_ratio_interval[:, block]
                b = int(np.argsort(ratio)[len(ratio) // 2])
                parts.append(
                    f"{_pair_name(zs, i, j)} median bin {_with_interval(ratio[b], low[b], high[b])}"
                )
            lines.append(f"  {key:<34} " + "; ".join(parts))
            (sn_top, sn_bottom), intervals = c.signal_to_noise, c.signal_to_noise_interval
            lines.append(
                f"  {'':<34} joint S/N {compared.numerator} "
                f"{_with_interval(sn_top, *intervals[0])}, {compared.denominator} "
                f"{_with_interval(sn_bottom, *intervals[1])}"
            )
    return lines


def summary_text(
    merged: MergedResults,
    *,
    run_dir: Path,
    input_description: str,
    files: Sequence[tuple[str, Path]],
    elapsed: float,
) -> str:
    """Return the summary: sets, statistics, failures, SSC ratios and the files written."""
    s = merged.settings
    lines = [
        f"lensing-ssc {__version__} · patch statistics · {run_dir}",
        f"input       {input_description}",
    ]
    for name, summary in merged.sets.items():
        lines.append(
            f"set         {name}: {summary.n_patches} patches of {summary.patch_pixels}² × "
            f"{summary.pixel_size_arcmin:.3g}′ from {summary.n_maps} map(s) — "
            f"{summary.description}"
        )
    lines += [
        f"statistics  {', '.join(s.statistics)}",
        f"settings    n_gal {_numbers(s.n_gal)} arcmin⁻²; smoothing {_numbers(s.smoothing_arcmin)}"
        f" arcmin; ε {s.epsilon:g}; ℓ {s.ell_min:g}–{s.ell_max:g} ({s.n_ell_bins} bins, "
        f"{s.n_bispectrum_bins} for B); ν {s.nu_min:g}…{s.nu_max:g} ({s.n_nu_bins} bins)",
        f"ν           {nu_description(s)}",
        f"patch mean  {_mean_description(s)}",
    ]
    if merged.dropped_patches:
        lines.append(
            f"dropped     {merged.n_dropped} patch(es) masked above max_masked_fraction, "
            "never measured"
        )
        for map_id, count in list(merged.dropped_patches.items())[:_MAX_FAILURES_SHOWN]:
            lines.append(f"  {map_id}: {count}")
        if len(merged.dropped_patches) > _MAX_FAILURES_SHOWN:
            lines.append(f"  ... and {len(merged.dropped_patches) - _MAX_FAILURES_SHOWN} more")
    elif merged.config.get("pipeline", {}).get("input") == "healpix":
        lines.append("dropped     none (no patch masked above max_masked_fraction)")
    if not merged.failures:
        lines.append("failures    none")
    else:
        lines.append(f"failures    {len(merged.failures)} (the run went on without them)")
        for failure in merged.failures[:_MAX_FAILURES_SHOWN]:
            lines.append(
                f"  {failure.stage} {failure.key}: {failure.error_type.rsplit('.', 1)[-1]}: "
                f"{failure.message}"
            )
        if len(merged.failures) > _MAX_FAILURES_SHOWN:
            lines.append(f"  ... and {len(merged.failures) - _MAX_FAILURES_SHOWN} more")
    for compared in merged.comparisons:
        top = _SET_LABELS.get(compared.comparison.numerator, compared.comparison.numerator)
        bottom = _SET_LABELS.get(compared.comparison.denominator, compared.comparison.denominator)
        where = f" (ssc/{compared.comparison.path})" if compared.comparison.path else ""
        details = compared.compared
        lines.append(
            f"SSC         variance ratio {top} / {bottom}{where}, [{details.confidence:.0%} "
            f"intervals, {details.intervals}; {details.n_maps[0]} + {details.n_maps[1]} "
            "maps]; SSC excess in units of the "
            f"{bottom} variance, predicted R² Var(κ̄) from the response to the patch mean"
        )
        fourier = {k: c for k, c in details.statistics.items() if k.startswith(_FOURIER)}
        maps = {k: c for k, c in details.statistics.items() if not k.startswith(_FOURIER)}
        if fourier:
            lines.append(
                "  spectra (blind to the patch mean): > 1: variance from modes larger than "
                "the patch"
            )
            lines += [line for key, c in fourier.items() for line in _ratio_lines(key, c)]
        if maps:
            lines.append(f"  {_map_ratio_meaning(s)}")
            lines += [line for key, c in maps.items() for line in _ratio_lines(key, c)]
    lines += _tomography_lines(merged)
    lines.append(f"elapsed     {elapsed:.1f} s")
    lines += [f"{label:<11} {path}" for label, path in files]
    return "\n".join(lines) + "\n"
