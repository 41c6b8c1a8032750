"""The light-cone stages: shells and κ maps as resumable runner tasks, planned for memory."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError, ResourceError
from lensing_ssc.pipelines import PipelineConfig, run_lightcone
from lensing_ssc.pipelines._lightcone_plan import KAPPA_PATTERN
from lensing_ssc.pipelines._sets import parse_file_name
from lensing_ssc.processing.runner import read_journal_summary

hp = pytest.importorskip("healpy")

_HELPERS = Path(__file__).parents[1] / "analysis" / "test_analysis_shells.py"
_spec = importlib.util.spec_from_file_location("shell_helpers", _HELPERS)
assert _spec is not None
assert _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def lightcone_config(run_dir: Path, **lightcone: Any) -> PipelineConfig:
    """A quiet serial run of lognormal shells at nside 16 (override any lightcone key)."""
    body: dict[str, Any] = {
        "seeds": [0],
        "shells": {"source": "lognormal", "nside": 16, "z_edges": [0.0, 0.3, 0.6, 1.0]},
        "kappa": {"nside": 16, "z_sources": [0.6, 1.0]},
    }
    body.update(lightcone)
    return PipelineConfig(
        run_dir=run_dir,
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
        pipeline={"executor": "serial", "retries": 0},
        lightcone=body,
    )


def test_kappa_maps_carry_their_source_and_cosmology_and_match_the_set_pattern(
    tmp_path: Path,
) -> None:
    """Each κ map reads back by the pipeline's pattern, with ZS, NSHELLS and Ω_m in its header."""
    run = run_lightcone(lightcone_config(tmp_path / "run"))
    assert [Path(f).name for f in run.kappa_files] == ["kappa_zs0.6_s0.fits", "kappa_zs1_s0.fits"]
    assert len(run.shell_files) == 3
    assert all(Path(f).is_file() for f in run.shell_files)
    fields = parse_file_name(run.kappa_files[1], KAPPA_PATTERN)
    assert fields == {"zs": 1.0, "seed": 0}
    kappa, header = hp.read_map(run.kappa_files[1], h=True)
    cards = dict(header)
    assert (cards["ZS"], cards["NSHELLS"], cards["OMEGA_M"], cards["KIND"]) == (
        1.0,
        3,
        0.3,
        "kappa",
    )
    assert np.std(kappa) > 0
    near = dict(hp.read_map(run.kappa_files[0], h=True)[1])
    assert near["NSHELLS"] == 2  # the source at z = 0.6 sees the first two shells only


def test_kappa_from_the_stage_is_the_born_sum_of_its_shells(tmp_path: Path) -> None:
    """The written κ map is Σ W_i δ_i of the written shells (to float32 storage)."""
    from lensing_ssc.analysis.born import born_weights
    from lensing_ssc.analysis.shells import Background, ShellTable

    run = run_lightcone(lightcone_config(tmp_path / "run"))
    table = ShellTable.from_redshift_edges([0.0, 0.3, 0.6, 1.0], Background())
    weights = born_weights(table, 1.0)
    expected = sum(
        w * hp.read_map(f).astype(np.float64) for w, f in zip(weights, run.shell_files, strict=True)
    )
    np.testing.assert_allclose(hp.read_map(run.kappa_files[1]), expected, rtol=1e-5, atol=1e-9)


def test_particle_shells_are_the_catalogues_counts_and_give_kappa(tmp_path: Path) -> None:
    """Shells from a usmesh catalogue hold its particles' counts; κ uses the expected mean."""
    from lensing_ssc.analysis.lightcone import ShellCounter
    from lensing_ssc.analysis.shells import Background, ShellTable

    positions, aemit = helpers.light_cone(20_000, 1500.0, seed=5)
    helpers.write_usmesh(tmp_path / "sim0" / "usmesh", positions, aemit)
    edges = [100.0, 600.0, 1100.0, 1800.0]
    config = lightcone_config(
        tmp_path / "run",
        shells={
            "source": "particles",
            "nside": 8,
            "chi_edges": edges,
            "per_task": 2,
            "particles": {"catalogue": str(tmp_path / "sim{seed}" / "usmesh"), "chunk_size": 4096},
        },
        kappa={"nside": 8, "z_sources": [0.4]},
    )
    run = run_lightcone(config)
    table = ShellTable.from_distance_edges(edges, Background())
    direct = ShellCounter(table, range(3), 8, length_unit=1 / 0.7)
    direct.add(positions)
    for i, path in enumerate(run.shell_files):
        counts, header = hp.read_map(path, h=True, dtype=None)
        np.testing.assert_array_equal(counts, direct.counts[i])
        cards = dict(header)
        assert cards["KIND"] == "counts"
        assert cards["NPART"] == direct.counts[i].sum()
        assert cards["NBAR"] == pytest.approx(64**3 / (1000 / 0.7) ** 3 * table[i].volume / 768)
    assert len(run.kappa_files) == 1


def test_shell_maps_with_a_gap_are_refused_naming_both_files(tmp_path: Path) -> None:
    """Maps named by their z range, 0–0.3 and 0.4–0.6, leave a gap: both files are named."""
    for low, high in ((0.0, 0.3), (0.4, 0.6)):
        hp.write_map(tmp_path / f"d_s0_z{low}-{high}.fits", np.zeros(768), dtype=np.float32)
    maps = {"files": str(tmp_path / "d_s*.fits"), "pattern": "d_s{seed}_z{z_min}-{z_max}.fits"}
    config = lightcone_config(
        tmp_path / "run", shells={"source": "maps", "maps": maps}, kappa={"z_sources": [0.5]}
    )
    with pytest.raises(AnalysisError) as info:
        run_lightcone(config)
    assert str(info.value).startswith(
        "shells d_s0_z0.0-0.3.fits (z 0–0.3) and d_s0_z0.4-0.6.fits (z 0.4–0.6) leave a gap"
    )


def test_shell_maps_on_disk_any_ordering_give_the_kappa_of_their_header_ranges(
    tmp_path: Path,
) -> None:
    """NESTED δ maps whose ranges are in their headers give the RING stage's κ."""
    first = run_lightcone(lightcone_config(tmp_path / "made"))
    for path in first.shell_files:
        delta, header = hp.read_map(path, h=True)
        cards = [(k, v) for k, v in header if k in ("Z_MIN", "Z_MAX")]
        hp.write_map(
            tmp_path / f"n_{Path(path).name}",
            hp.reorder(delta, r2n=True),
            nest=True,
            extra_header=cards,
            dtype=np.float32,
        )
    maps = {"files": str(tmp_path / "n_shell*.fits"), "pattern": "n_shell{index}_s{seed}.fits"}
    config = lightcone_config(tmp_path / "read", shells={"source": "maps", "maps": maps})
    second = run_lightcone(config)
    for a, b in zip(first.kappa_files, second.kappa_files, strict=True):
        np.testing.assert_allclose(hp.read_map(b), hp.read_map(a), rtol=1e-6, atol=1e-9)


def test_a_plan_that_cannot_fit_is_refused_before_any_work_naming_what_to_change(
    tmp_path: Path,
) -> None:
    """κ maps of nside 8192 against a 2000 MiB limit: ResourceError naming lightcone.kappa.nside."""
    config = lightcone_config(tmp_path / "run", kappa={"nside": 8192, "z_sources": [1.0]})
    config.resources.memory_limit_mb = 2000
    with pytest.raises(ResourceError) as info:
        run_lightcone(config)
    assert "the kappa stage needs about" in str(info.value)
    assert "more than the memory limit of 2000 MiB (user)" in str(info.value)
    assert "lower lightcone.kappa.nside" in str(info.value)
    assert info.value.value == 2000
    assert not (tmp_path / "run" / "shells").exists()


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    """A run directory of other lightcone settings is not mixed into: ConfigError, --fresh."""
    run_lightcone(lightcone_config(tmp_path / "run"))
    other = lightcone_config(tmp_path / "run", seeds=[1])
    with pytest.raises(ConfigError, match="pass --fresh"):
        run_lightcone(other)
    assert run_lightcone(other, resume=False).kappa_files[0].endswith("kappa_zs0.6_s1.fits")


def test_a_rerun_resumes_every_finished_task(tmp_path: Path) -> None:
    """Run twice: the second run takes all 3 + 2 tasks from the journals."""
    config = lightcone_config(
        tmp_path / "run",
        shells={
            "source": "lognormal",
            "nside": 16,
            "z_edges": [0.0, 0.3, 0.6, 1.0],
            "per_task": 1,
        },
    )
    assert run_lightcone(config).resumed == 0
    assert run_lightcone(config).resumed == 5


def test_a_killed_shell_stage_resumes_without_recomputing_finished_shells(
    tmp_path: Path, children: Any
) -> None:
    """`lensing-ssc shells` killed with SIGKILL mid-stage: the rerun skips journalled shells.

    The rerun runs here (one interpreter start less); their files are not touched again.
    """
    run_dir = tmp_path / "run"
    body = {
        "run_dir": str(run_dir),
        "logging": {"console": False, "format": "json"},
        "progress": {"enabled": False},
        "pipeline": {"executor": "serial"},
        "lightcone": {
            "shells": {
                "source": "lognormal",
                "nside": 32,
                "per_task": 1,
                "z_edges": [round(0.1 * i, 1) for i in range(11)],
            },
            "kappa": {"nside": 32, "z_sources": [1.0]},
        },
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(body))
    command = [sys.executable, "-m", "lensing_ssc", "shells", str(config)]
    proc = children.start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shells = run_dir / "shells"
    deadline = time.monotonic() + 120
    while len(list(shells.glob("shell*.fits"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stage made no shell"
        time.sleep(0.02)
    children.sigkill(proc)
    finished = read_journal_summary(run_dir / "tasks" / "shells.journal").completed
    assert 2 <= finished < 10
    stamps = {i: os.stat(shells / f"shell{i:03d}_s0.fits").st_mtime_ns for i in range(finished)}
    rerun = run_lightcone(PipelineConfig.from_file(config), stages=("shells",))
    assert rerun.resumed == finished
    assert not rerun.failures
    for i, stamp in stamps.items():
        assert os.stat(shells / f"shell{i:03d}_s0.fits").st_mtime_ns == stamp
    assert len(list(shells.glob("shell*.fits"))) == 10
