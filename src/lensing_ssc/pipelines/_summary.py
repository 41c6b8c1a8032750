"""The run's short text summary (``results/summary.txt``) and its one-line SSC headline.

What the sets hold, which statistics at which settings, what failed, and the SSC variance
ratio per statistic. Numbers come from :class:`._results.MergedResults`; files are written
by :mod:`.patch_statistics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lensing_ssc._version import __version__
from lensing_ssc.pipelines._results import MergedResults

__all__ = ["SUMMARY_NAME", "ssc_headline", "summary_text"]

SUMMARY_NAME = "summary.txt"
"""The summary's file name, in the run's results directory."""

_MAX_FAILURES_SHOWN = 10


def _numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _ratio_line(key: str, diagonal: np.ndarray) -> str:
    finite = diagonal[np.isfinite(diagonal)]
    if finite.size == 0:
        return f"  {key:<34} (no variance in either set)"
    if key.startswith("cl/"):
        return f"  {key:<34} " + " ".join(f"{v:5.2f}" for v in diagonal)
    return (
        f"  {key:<34} median {np.median(finite):4.2f}  "
        f"range {finite.min():4.2f}–{finite.max():4.2f}"
    )


def ssc_headline(merged: MergedResults) -> str | None:
    """``"SSC: Var Ĉ(sub-patches)/Var Ĉ(periodic), ngal=0, ℓ 300→3000: 1.1 … 2.6"`` or ``None``."""
    for key, matrix in merged.ssc_ratio.items():
        if key.startswith("cl/"):
            diagonal = np.diag(matrix)
            s = merged.settings
            return (
                f"SSC: Var Ĉ(sub-patches) / Var Ĉ(periodic), {key.split('/', 1)[1]}, "
                f"ℓ {s.ell_min:g}→{s.ell_max:g}: " + " ".join(f"{v:.2f}" for v in diagonal)
            )
    return None


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
        f"{s.n_bispectrum_bins} for B); ν {s.nu_min:g}…{s.nu_max:g} ({s.n_nu_bins} bins, "
        f"σ from {s.nu_reference})",
    ]
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
    if merged.ssc_ratio:
        lines.append(
            "SSC         covariance ratio sub-patches / periodic, diagonal "
            "(> 1: variance from modes larger than the patch)"
        )
        lines += [_ratio_line(key, np.diag(m)) for key, m in merged.ssc_ratio.items()]
    lines.append(f"elapsed     {elapsed:.1f} s")
    lines += [f"{label:<11} {path}" for label, path in files]
    return "\n".join(lines) + "\n"
