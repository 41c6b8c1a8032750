"""``lensing-ssc example healpix-ssc DIR``: a HEALPix SSC study, maps and config, ready to run.

Writes two suites of lognormal full-sky κ maps (:func:`lensing_ssc.analysis.write_example_suites`:
``bigbox`` with every large-scale mode, ``tiled`` without the modes larger than a patch) at
z_s = 1 and 2, and ``DIR/healpix_ssc.yaml``, a config that measures them with the
pipeline (each suite a set read from files, grouped by z_s, ``compare: [[bigbox, tiled]]``,
``tomography: true`` for the spectra between the two redshifts of each seed), then prints
the command that runs it. The same config, for maps written to ``maps``, is
``examples/healpix_ssc.yaml``. ``--small`` writes a reduced study (for tests and a first
look). The study itself is :mod:`lensing_ssc.pipelines`; the maps' conventions are in
:mod:`lensing_ssc.analysis.sky`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from lensing_ssc.cli._help import ReadableCommand, ReadableGroup
from lensing_ssc.core.base.exceptions import ConfigError

__all__ = ["CONFIG_NAME", "STUDY_SIZES", "StudySize", "example_app", "study_config"]

CONFIG_NAME = "healpix_ssc.yaml"
"""The study's config file, written beside the suites' folders."""

_PATTERN = "kappa_zs{zs}_s{seed}.fits"  # analysis.sky.EXAMPLE_PATTERN, kept in step by a test
_PATCH_SIZE_DEG = 10.0  # ℓ_cut = 36; 175 patches per map
_ELL_MIN = 50  # the lowest bin starts just above ℓ_cut, where modes larger than a patch leak in


@dataclass(frozen=True)
class StudySize:
    """How large the example study is: the maps, and the patches and ℓ range they allow.

    ``ell_max`` stays below the maps' band limit 2 nside; ``patch_pixels`` makes the
    patch pixel (10°/n) finer than the HEALPix pixel, so patches resolve every ℓ measured;
    smoothing scales are at least the patch pixel.
    """

    nside: int
    seeds: int
    patch_pixels: int
    ell_max: int
    n_gal: tuple[float, ...]
    smoothing_arcmin: tuple[float, ...]
    n_bispectrum_bins: int


STUDY_SIZES = {
    # 24 maps of nside 256 and 4200 patches of 64² (9.4′ pixels): 30 s for maps and run on
    # 2 cores at load average 3, 50–64 s at load average 8–10.
    "full": StudySize(
        nside=256,
        seeds=6,
        patch_pixels=64,
        ell_max=500,
        n_gal=(0.0, 30.0),
        smoothing_arcmin=(10.0, 20.0),
        n_bispectrum_bins=4,
    ),
    # 8 maps of nside 128 and 1400 patches of 32² (18.8′ pixels), no noise: ~10 s. Two
    # bispectrum bins: the lowest of more has no closed isosceles triangle on 32 pixels.
    "small": StudySize(
        nside=128,
        seeds=2,
        patch_pixels=32,
        ell_max=250,
        n_gal=(0.0,),
        smoothing_arcmin=(20.0,),
        n_bispectrum_bins=2,
    ),
}
"""The sizes ``lensing-ssc example healpix-ssc`` writes: the default, and ``--small``."""

example_app = typer.Typer(
    cls=ReadableGroup, help="Write example studies, ready to run.", no_args_is_help=True
)


def study_config(directory: str, size: StudySize) -> dict[str, Any]:
    """The pipeline config that runs the example study on maps written to ``directory``.

    Paths are ``directory`` joined with the suites' folders as given: relative paths are
    read from the directory the run starts in.
    """
    base = directory.rstrip("/") or "/"

    def suite(name: str, description: str) -> dict[str, str]:
        return {
            "maps": f"{base}/{name}/kappa_zs*_s*.fits",
            "pattern": _PATTERN,
            "description": description,
        }

    return {
        "run_dir": f"{base}/run",
        "pipeline": {
            "input": "healpix",
            "healpix": {
                "patch_size_deg": _PATCH_SIZE_DEG,
                "patch_pixels": size.patch_pixels,
                "sets": {
                    "bigbox": suite("bigbox", "lognormal full sky, every large-scale mode"),
                    "tiled": suite("tiled", "the same seeds, modes larger than a patch removed"),
                },
            },
            "compare": [["bigbox", "tiled"]],
            # Cross spectra between z_s = 1 and 2 of each seed, and their joint covariance.
            "tomography": True,
            "statistics": {
                "preset": "quick",
                "n_gal": list(size.n_gal),
                "smoothing_arcmin": list(size.smoothing_arcmin),
                "ell_min": _ELL_MIN,
                "ell_max": size.ell_max,
                "n_bispectrum_bins": size.n_bispectrum_bins,
            },
        },
    }


def _header(size: StudySize, command: str) -> str:
    return (
        "# A HEALPix SSC study, written by `lensing-ssc example healpix-ssc`: lognormal κ maps\n"
        f"# of nside {size.nside}, {size.seeds} seeds, z_s = 1 and 2, in two suites: bigbox\n"
        "# (every large-scale mode) and tiled (modes larger than a 10° patch removed).\n"
        f"# Run it with: {command}\n"
    )


@example_app.command("healpix-ssc", cls=ReadableCommand)
def healpix_ssc(
    directory: Path = typer.Argument(..., help="Where the maps and the config go."),
    small: bool = typer.Option(
        False,
        "--small",
        help="A reduced study: nside 128, 2 seeds, 32² patches, no noise (~10 s).",
    ),
) -> None:
    """Write lognormal HEALPix maps of two suites and the config of their SSC study."""
    # Imported here: the analysis (numpy, healpy) would slow every other command.
    from lensing_ssc.analysis import write_example_suites

    size = STUDY_SIZES["small" if small else "full"]
    try:
        suites = write_example_suites(
            directory,
            nside=size.nside,
            seeds=range(size.seeds),
            z_sources=(1.0, 2.0),
            patch_size_deg=_PATCH_SIZE_DEG,
        )
        config_path = directory / CONFIG_NAME
        command = f"lensing-ssc run {config_path}"
        body = yaml.safe_dump(study_config(str(directory.absolute()), size), sort_keys=False)
        config_path.write_text(_header(size, command) + body, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the example study to {str(directory)!r}: {exc.strerror or exc}",
            value=str(directory),
            hint="give a directory that can be created and written",
            field="DIR",
        ) from exc
    n_maps = sum(len(paths) for paths in suites.files.values())
    typer.echo(
        f"wrote {n_maps} maps (nside {suites.nside}; suites {', '.join(suites.files)}; "
        f"z_s {', '.join(f'{z:g}' for z in suites.z_sources)}; seeds "
        f"{suites.seeds[0]}–{suites.seeds[-1]}; tiled without ℓ < {suites.ell_cut}) in {directory}"
    )
    typer.echo(f"config   {config_path}")
    typer.echo(f"run it:  {command}")
