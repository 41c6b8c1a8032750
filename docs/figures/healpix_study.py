"""Draw the figures of the HEALPix study walkthrough in ``docs/pipeline.md``.

Run it from anywhere (``python docs/figures/healpix_study.py``): it writes the example maps
(``lensing-ssc example healpix-ssc``), runs their study (``lensing-ssc run``) in a temporary
directory, about a minute on 2 cores, and draws four PNGs into this directory with
:mod:`lensing_ssc.plotting`; ``--results PATH`` draws them from that study's results file
instead:

* ``healpix_cl.png`` — C_ℓ of ``bigbox`` and ``tiled`` at z_s = 1 (``plot_statistic``);
* ``healpix_ssc.png`` — their variance ratios and the SSC excess for C_ℓ and the peak counts
  at the run's first σ_s, 10′ (``plot_comparison``);
* ``healpix_correlation.png`` — the two sets' correlation matrices of C_ℓ side by side
  (``plot_correlations``);
* ``healpix_tomography.png`` — ``bigbox``'s auto and cross spectra between z_s = 1 and 2,
  r_12(ℓ) and their joint correlation matrix (``plot_tomography``).

It needs the ``healpix`` and ``plot`` extras. The numbers the guide quotes are printed.
"""

from __future__ import annotations

import io
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.analysis import HalofitConvergenceSpectrum
from lensing_ssc.analysis.theory import cross_convergence_spectrum
from lensing_ssc.cli import main
from lensing_ssc.pipelines import read_results
from lensing_ssc.plotting import (
    plot_comparison,
    plot_correlations,
    plot_statistic,
    plot_tomography,
)

HERE = Path(__file__).resolve().parent
DPI = 72  # keeps each PNG well under 200 KB


def _save(figure: Any, name: str) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    (HERE / name).write_bytes(buffer.getvalue())
    print(f"wrote {HERE / name} ({len(buffer.getvalue()) // 1024} KiB)")


def _theory_r12(results: Any) -> list[float]:
    """C_12/√(C_11 C_22) of the halofit model at z_s = 1 and 2, averaged over each ℓ bin's
    flat-sky modes (weight ℓ), as the patches' mean spectra are."""
    near, far = (HalofitConvergenceSpectrum(z_source=z) for z in (1.0, 2.0))
    cross = cross_convergence_spectrum(near, far)
    edges = results["binning/ell_edges"]
    out = []
    for low, high in itertools.pairwise(edges):
        ell = np.arange(np.ceil(low), np.floor(high) + 1)
        c11, c22 = np.sum(ell * near(ell)), np.sum(ell * far(ell))
        out.append(float(np.sum(ell * cross(ell)) / np.sqrt(c11 * c22)))
    return out


def _draw(results_file: Path) -> None:
    results = read_results(results_file)
    ax = plot_statistic(results, "cl/ngal=0", z_source=1)
    _save(ax.figure, "healpix_cl.png")
    figure = plot_comparison(results, "bigbox~tiled", ["cl", "peaks"], z_source=1, n_gal=0)
    _save(figure, "healpix_ssc.png")
    correlations = plot_correlations(results, "cl/ngal=0", "bigbox~tiled", z_source=1)
    _save(correlations, "healpix_correlation.png")
    _save(plot_tomography(results, "bigbox", n_gal=0), "healpix_tomography.png")
    for pair in results.comparisons:
        c = pair.statistic("cl/ngal=0")
        low, high = c.variance_ratio_interval
        values = zip(c.variance_ratio, low, high, strict=True)
        ratios = [f"{v:.2f} [{a:.2f}, {b:.2f}]" for v, a, b in values]
        print(pair.path, "Var Ĉ ratio", ", ".join(ratios))
    for name in results.tomography_sets:
        spectra = results.tomography(name, 0)
        print(name, "r_12(ℓ)", spectra.cross_correlation[0, 1].round(4).tolist())
    print("theory r_12(ℓ)", [round(r, 4) for r in _theory_r12(results)])
    for joint in results.tomography_comparisons:
        c = joint.statistic("cl/ngal=0")
        print(joint.path, "ratio", c.variance_ratio.round(2).tolist())
        print(joint.path, "S/N", c.signal_to_noise.round(1).tolist())


def main_figures(argv: list[str]) -> int:
    """Make the study and run it (or take ``--results PATH``), and draw its figures here."""
    if argv[:1] == ["--results"] and len(argv) == 2:
        _draw(Path(argv[1]))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        maps = Path(scratch) / "maps"
        if main(["example", "healpix-ssc", str(maps)]) != 0:
            return 1
        if main(["run", str(maps / "healpix_ssc.yaml")]) != 0:
            return 1
        _draw(maps / "run" / "results" / "patch_statistics.h5")
    return 0


if __name__ == "__main__":
    sys.exit(main_figures(sys.argv[1:]))
