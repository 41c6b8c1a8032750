"""``lensing-ssc example healpix-ssc``: maps, and a config whose study finds the SSC excess."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lensing_ssc.analysis.sky import EXAMPLE_PATTERN
from lensing_ssc.cli import main
from lensing_ssc.cli._example import _PATTERN, CONFIG_NAME, STUDY_SIZES, study_config
from lensing_ssc.pipelines import PipelineConfig, read_results

pytest.importorskip("healpy", reason="the example maps need the healpix extra")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "healpix_ssc.yaml"
FILE_NAME = re.compile(r"kappa_zs(1|2)_s(\d+)\.fits")


def _lowest_cl_ratios(results_file: str) -> dict[int, float]:
    results = read_results(results_file)
    return {
        int(meta["z_source"]): float(results[f"ssc/{path}/cl/ngal=0/variance_ratio"][0])
        for path, meta in results["meta/comparisons"].items()
    }


def test_small_study_runs_and_finds_super_sample_variance_at_both_redshifts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The --small study runs as printed and its lowest-ℓ C(ℓ) variance ratio is above 1 per z_s."""
    maps = tmp_path / "maps"
    assert main(["example", "healpix-ssc", str(maps), "--small"]) == 0
    out = capsys.readouterr().out
    config = maps / CONFIG_NAME
    assert f"run it:  lensing-ssc run {config}" in out
    assert "wrote 8 maps (nside 128" in out
    assert main(["run", str(config), "--executor", "serial"]) == 0
    out = capsys.readouterr().out
    results_file = next(line.split()[1] for line in out.splitlines() if line.startswith("results"))
    ratios = _lowest_cl_ratios(results_file)
    assert sorted(ratios) == [1, 2]
    # 350 patches a set: the ratio's 1σ scatter is ~0.1; bigbox's excess is ~0.4.
    assert all(ratio > 1.15 for ratio in ratios.values()), ratios
    assert "SSC: Var Ĉ(bigbox/zs=1) / Var Ĉ(tiled/zs=1), ngal=0, ℓ 50→250" in out


def test_the_config_reads_every_written_map_by_its_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The config's globs find exactly the written files, and their names match its pattern."""
    assert main(["example", "healpix-ssc", str(tmp_path), "--small"]) == 0
    capsys.readouterr()
    config = PipelineConfig.from_file(tmp_path / CONFIG_NAME)
    assert config.pipeline.compare == [("bigbox", "tiled")]
    for suite, spec in config.pipeline.healpix.sets.items():
        found = sorted(glob.glob(spec.maps[0]))
        assert found == sorted(str(p) for p in (tmp_path / suite).iterdir())
        assert spec.pattern == EXAMPLE_PATTERN == _PATTERN
        names = [FILE_NAME.fullmatch(Path(p).name) for p in found]
        assert all(names), found
        assert sorted((m[1], m[2]) for m in names if m) == [
            (z, s) for z in ("1", "2") for s in ("0", "1")
        ]
    body = yaml.safe_load((tmp_path / CONFIG_NAME).read_text())
    assert body == study_config(str(tmp_path), STUDY_SIZES["small"])


def test_the_shipped_example_is_the_full_study_config_for_maps() -> None:
    """examples/healpix_ssc.yaml is the command's full-size config with the maps in ./maps."""
    assert yaml.safe_load(EXAMPLE.read_text()) == study_config("maps", STUDY_SIZES["full"])
    assert "lensing-ssc example healpix-ssc maps" in EXAMPLE.read_text()


def test_a_directory_that_cannot_be_made_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DIR naming an existing file exits 2 with an error naming DIR, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["example", "healpix-ssc", str(blocker), "--small"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the example study to '{blocker}'")
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_full_study_runs_under_two_minutes(tmp_path: Path) -> None:
    """`example healpix-ssc DIR && run DIR/healpix_ssc.yaml` takes < 120 s and shows the excess."""
    command = shutil.which("lensing-ssc")
    if command is None:
        pytest.skip("the lensing-ssc command is not installed")
    maps = tmp_path / "maps"
    start = time.monotonic()
    subprocess.run([command, "example", "healpix-ssc", str(maps)], check=True, cwd=tmp_path)
    run = subprocess.run(
        [command, "run", str(maps / CONFIG_NAME)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - start
    assert elapsed < 120.0, f"{elapsed:.1f} s"
    assert "done: 24 maps, 4200 patches measured, 0 failed" in run.stdout
    results_file = next(
        line.split()[1] for line in run.stdout.splitlines() if line.startswith("results")
    )
    ratios = _lowest_cl_ratios(results_file)
    assert sorted(ratios) == [1, 2]
    assert all(ratio > 1.1 for ratio in ratios.values()), ratios
