"""`lensing-ssc shells` and `lensing-ssc kappa`: the light-cone stages from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lensing_ssc.cli import main

pytest.importorskip("healpy")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shells_demo.yaml"


def write_config(tmp_path: Path, **lightcone: Any) -> Path:
    """Two realisations of two lognormal shells at nside 32, κ at z_s = 1, then 20° patches."""
    run_dir = tmp_path / "run"
    body = {
        "run_dir": str(run_dir),
        "logging": {"console": False, "format": "json"},
        "progress": {"enabled": False},
        "lightcone": {
            "seeds": [0, 1],
            "shells": {"source": "lognormal", "nside": 32, "z_edges": [0.0, 0.5, 1.0]},
            "kappa": {"nside": 64, "z_sources": [1.0]},
            **lightcone,
        },
        "pipeline": {
            "executor": "serial",
            "figures": False,
            "input": "healpix",
            "healpix": {
                "patch_size_deg": 20.0,
                "patch_pixels": 16,
                "sets": {
                    "born": {
                        "maps": str(run_dir / "kappa" / "kappa_zs*_s*.fits"),
                        "pattern": "kappa_zs{zs}_s{seed}.fits",
                    }
                },
            },
            "statistics": {
                "preset": "quick",
                "n_gal": [0.0],
                "smoothing_arcmin": [80.0],
                "ell_min": 36,
                "ell_max": 140,
                "n_ell_bins": 3,
                "n_bispectrum_bins": 2,
            },
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_kappa_with_statistics_makes_shells_maps_and_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One command: 4 shells, 2 κ maps, then the patch statistics of those maps; exit 0."""
    config = write_config(tmp_path)
    assert main(["kappa", str(config), "--statistics"]) == 0
    out = capsys.readouterr().out
    assert "done: 4 shell(s), 2 κ map(s), 0 failed" in out
    assert "done: 2 maps, " in out
    assert " patches measured, 0 failed" in out
    assert (tmp_path / "run" / "results" / "patch_statistics.h5").exists() or (
        tmp_path / "run" / "results" / "patch_statistics.npz"
    ).exists()


def test_shells_makes_only_the_shells_and_a_rerun_resumes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shells` writes the shells, no κ map; run again, it takes both tasks from the journal."""
    config = write_config(tmp_path)
    assert main(["shells", str(config)]) == 0
    assert "done: 4 shell(s), 0 κ map(s), 0 failed" in capsys.readouterr().out
    assert not (tmp_path / "run" / "kappa").exists()
    assert main(["shells", str(config)]) == 0
    assert ", 2 task(s) from the earlier run" in capsys.readouterr().out


def test_a_change_of_sources_is_refused_then_fresh_kappa_keeps_the_shells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Other z_sources: status 2 naming the change; `--fresh-kappa` remakes κ, not the shells."""
    config = write_config(tmp_path)
    assert main(["kappa", str(config)]) == 0
    shells = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "shells").iterdir()}
    write_config(tmp_path, kappa={"nside": 64, "z_sources": [0.5, 1.0]})
    capsys.readouterr()
    assert main(["kappa", str(config)]) == 2
    err = capsys.readouterr().err
    assert "holds κ maps of other settings: lightcone.kappa.z_sources [1.0] → [0.5, 1.0];" in err
    assert "pass --fresh-kappa to make only the κ maps again, from the kept shells" in err
    assert main(["kappa", str(config), "--fresh-kappa"]) == 0
    out = capsys.readouterr().out
    assert (
        "κ settings changed: lightcone.kappa.z_sources [1.0] → [0.5, 1.0]; the κ maps are "
        "made again from the kept shells\n"
    ) in out
    assert "done: 4 shell(s), 4 κ map(s), 0 failed" in out
    assert ", 2 task(s) from the earlier run" in out
    now = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "shells").iterdir()}
    assert now == shells


def test_fresh_kappa_with_statistics_measures_the_new_maps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kappa --fresh-kappa --statistics` after adding a source: the statistics of all 4 maps."""
    config = write_config(tmp_path)
    assert main(["kappa", str(config), "--statistics"]) == 0
    assert "done: 2 maps, " in capsys.readouterr().out
    write_config(tmp_path, kappa={"nside": 64, "z_sources": [0.5, 1.0]})
    assert main(["kappa", str(config), "--fresh-kappa", "--statistics"]) == 0
    assert "done: 4 maps, " in capsys.readouterr().out


def test_a_plan_too_large_for_memory_is_one_error_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """κ maps of nside 8192 under a 1000 MiB limit: exit 2, the line names the setting."""
    config = write_config(tmp_path, kappa={"nside": 8192, "z_sources": [1.0]})
    body = yaml.safe_load(config.read_text())
    body["resources"] = {"memory_limit_mb": 1000}
    config.write_text(yaml.safe_dump(body))
    assert main(["kappa", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the kappa stage needs about ")
    assert "lower lightcone.kappa.nside" in err


def test_particles_without_a_catalogue_are_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`source: particles` with no `particles` section: status 2, the field in the message."""
    config = write_config(
        tmp_path, shells={"source": "particles", "nside": 8, "z_edges": [0.0, 1.0]}
    )
    assert main(["shells", str(config)]) == 2
    err = capsys.readouterr().err
    assert "lightcone.shells" in err
    assert "shells.particles is not given" in err


def test_the_demo_config_is_valid_and_feeds_its_maps_to_the_pipeline() -> None:
    """examples/shells_demo.yaml loads, and its healpix set reads the κ maps it makes."""
    from lensing_ssc.pipelines import PipelineConfig
    from lensing_ssc.pipelines._lightcone_plan import KAPPA_PATTERN

    config = PipelineConfig.from_file(EXAMPLE)
    born = config.pipeline.healpix.sets["born"]
    assert born.pattern == KAPPA_PATTERN
    assert born.maps == [f"{config.run_dir}/kappa/kappa_zs*_s*.fits"]
    assert config.lightcone.statistics
    assert config.lightcone.shells.source == "lognormal"
    assert config.pipeline.statistics.ell_max < 2 * config.lightcone.kappa.nside


@pytest.mark.slow
def test_the_demo_runs_in_one_command_under_two_minutes(tmp_path: Path) -> None:
    """`lensing-ssc kappa examples/shells_demo.yaml` (run directory moved) ends in < 120 s.

    In its own process, as a user runs it: healpy's OpenMP threads, once started in a
    process, hang the process-pool workers forked from it afterwards.
    """
    import subprocess
    import sys
    import time

    body = yaml.safe_load(EXAMPLE.read_text())
    run_dir = tmp_path / "demo"
    body["run_dir"] = str(run_dir)
    body["pipeline"]["healpix"]["sets"]["born"]["maps"] = str(run_dir / "kappa/kappa_zs*_s*.fits")
    body["pipeline"]["figures"] = False
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(body))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "kappa", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - started < 120
    assert "done: 8 maps, 1400 patches measured, 0 failed" in done.stdout
