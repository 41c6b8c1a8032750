"""Resuming a light-cone run directory: the shells' and the κ maps' settings, one record each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lensing_ssc._version import __version__
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import hash_bytes
from lensing_ssc.pipelines import PipelineConfig, run_lightcone
from lensing_ssc.processing.runner import read_journal_summary

hp = pytest.importorskip("healpy")

_SHELLS = {"source": "lognormal", "nside": 16, "z_edges": [0.0, 0.3, 0.6, 1.0], "per_task": 1}


def config_body(run_dir: Path, **lightcone: Any) -> dict[str, Any]:
    """A quiet serial run: 3 lognormal shells at nside 16, κ at z_s = 0.6 and 1."""
    body: dict[str, Any] = {
        "seeds": [0],
        "shells": dict(_SHELLS),
        "kappa": {"nside": 16, "z_sources": [0.6, 1.0]},
    }
    body.update(lightcone)
    return {
        "run_dir": str(run_dir),
        "logging": {"console": False, "format": "json"},
        "progress": {"enabled": False},
        "pipeline": {"executor": "serial", "retries": 0},
        "lightcone": body,
    }


def lightcone_config(run_dir: Path, **lightcone: Any) -> PipelineConfig:
    """The run of :func:`config_body` as a config object."""
    return PipelineConfig(**config_body(run_dir, **lightcone))


def stamps(directory: Path) -> dict[str, int]:
    """Each FITS file's modification time in ns, by name."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(directory.glob("*.fits"))}


def test_changing_only_the_sources_is_refused_naming_them_and_touching_nothing(
    tmp_path: Path,
) -> None:
    """Other z_sources: ConfigError naming the change old → new and --fresh-kappa; no file moves."""
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir))
    before = {**stamps(run_dir / "shells"), **stamps(run_dir / "kappa")}
    with pytest.raises(ConfigError) as info:
        run_lightcone(lightcone_config(run_dir, kappa={"nside": 16, "z_sources": [0.5, 1.0]}))
    message = str(info.value)
    assert "holds κ maps of other settings: lightcone.kappa.z_sources [0.6, 1.0] → [0.5, 1.0];" in (
        message
    )
    assert "the shells are the same" in message
    assert info.value.hint is not None
    assert info.value.hint.startswith("pass --fresh-kappa to make only the κ maps again")
    assert {**stamps(run_dir / "shells"), **stamps(run_dir / "kappa")} == before


def test_fresh_kappa_keeps_the_shells_and_gives_the_maps_of_a_fresh_run(tmp_path: Path) -> None:
    """fresh_kappa after a change of sources: shells untouched, κ maps equal a fresh run's."""
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir))
    shells = stamps(run_dir / "shells")
    changed = {"nside": 16, "z_sources": [0.5, 1.0]}
    again = run_lightcone(lightcone_config(run_dir, kappa=changed), fresh_kappa=True)
    assert again.resumed == 3  # the three shell tasks, from the journal
    assert stamps(run_dir / "shells") == shells
    assert again.notes == (
        "κ settings changed: lightcone.kappa.z_sources [0.6, 1.0] → [0.5, 1.0]; "
        "the κ maps are made again from the kept shells",
    )
    assert sorted(p.name for p in (run_dir / "kappa").iterdir()) == [
        "kappa_zs0.5_s0.fits",
        "kappa_zs1_s0.fits",
    ]
    fresh = run_lightcone(lightcone_config(tmp_path / "fresh", kappa=changed))
    for ours, theirs in zip(again.kappa_files, fresh.kappa_files, strict=True):
        assert Path(ours).name == Path(theirs).name
        np.testing.assert_array_equal(hp.read_map(ours), hp.read_map(theirs))
    resumed = run_lightcone(lightcone_config(run_dir, kappa=changed))
    assert (resumed.resumed, resumed.notes) == (5, ())


def test_changing_the_shell_width_is_refused_naming_it_even_with_fresh_kappa(
    tmp_path: Path,
) -> None:
    """Other z_edges: refused naming lightcone.shells.z_edges old → new, --fresh-kappa or not."""
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir))
    wider = lightcone_config(run_dir, shells={**_SHELLS, "z_edges": [0.0, 0.5, 1.0]})
    expected = (
        "holds shells of other settings: lightcone.shells.z_edges [0.0, 0.3, 0.6, 1.0] → "
        "[0.0, 0.5, 1.0]; resuming would mix them"
    )
    for fresh_kappa in (False, True):
        with pytest.raises(ConfigError) as info:
            run_lightcone(wider, fresh_kappa=fresh_kappa)
        assert expected in str(info.value)
        assert info.value.hint == (
            "pass --fresh to make the shells and κ maps again, or choose another --run-dir"
        )
    assert len(run_lightcone(wider, resume=False).shell_files) == 2


def test_how_fast_shells_are_made_is_not_a_change(tmp_path: Path) -> None:
    """Another shells.per_task resumes: it changes how the shells are made, not what."""
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir))
    shells = stamps(run_dir / "shells")
    again = run_lightcone(lightcone_config(run_dir, shells={**_SHELLS, "per_task": 3}))
    assert not again.failures
    assert again.resumed == 2  # the κ maps; the one new chunk makes the same shells again
    assert stamps(run_dir / "shells").keys() == shells.keys()


def test_a_shells_only_run_leaves_the_kappa_record_to_the_kappa_stage(tmp_path: Path) -> None:
    """After a κ change, `shells` resumes; the next κ run is still refused, not mixed."""
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir))
    changed = lightcone_config(run_dir, kappa={"nside": 16, "z_sources": [0.5, 1.0]})
    assert run_lightcone(changed, stages=("shells",)).resumed == 3
    with pytest.raises(
        ConfigError, match=r"lightcone\.kappa\.z_sources \[0\.6, 1\.0\] → \[0\.5, 1\.0\]"
    ):
        run_lightcone(changed)


def test_fresh_shells_drop_the_kappa_maps_made_from_the_old_ones(tmp_path: Path) -> None:
    """`--fresh` with other shells, shells stage only: no κ map of the old shells is left."""
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir))
    wider = lightcone_config(run_dir, shells={**_SHELLS, "z_edges": [0.0, 0.5, 1.0]})
    run_lightcone(wider, resume=False, stages=("shells",))
    assert list((run_dir / "kappa").glob("*.fits")) == []
    assert not (run_dir / "tasks" / "kappa.journal").exists()
    made = run_lightcone(wider)
    assert made.resumed == 2  # the fresh run's two shell tasks; both κ maps are new
    assert len(made.kappa_files) == 2


def test_a_changed_nz_table_file_is_named_as_a_kappa_change(tmp_path: Path) -> None:
    """New values in an n(z) file, same settings: refused naming that table's file."""
    table = tmp_path / "nz.txt"
    table.write_text("0.2 0\n0.5 1\n0.8 0\n")
    kappa = {"nside": 16, "z_sources": [1.0], "nz": {"wide": {"file": str(table)}}}
    run_dir = tmp_path / "run"
    run_lightcone(lightcone_config(run_dir, kappa=kappa))
    table.write_text("0.2 0\n0.6 1\n0.8 0\n")
    with pytest.raises(ConfigError) as info:
        run_lightcone(lightcone_config(run_dir, kappa=kappa))
    assert "the values in the n(z) table of lightcone.kappa.nz.wide.file" in str(info.value)


def test_shell_maps_on_disk_rewritten_since_are_named_as_a_shells_change(tmp_path: Path) -> None:
    """`source: maps`: an input shell map rewritten after the κ run is refused, not resumed."""
    made = run_lightcone(lightcone_config(tmp_path / "made"))
    maps = {
        "files": str(tmp_path / "made" / "shells" / "shell*.fits"),
        "pattern": "shell{index}_s{seed}.fits",
    }
    config = lightcone_config(tmp_path / "read", shells={"source": "maps", "maps": maps})
    assert run_lightcone(config).resumed == 0
    assert run_lightcone(config).resumed == 2
    delta, header = hp.read_map(made.shell_files[1], h=True)
    cards = [(k, v) for k, v in header if k in ("Z_MIN", "Z_MAX")]
    hp.write_map(made.shell_files[1], 2 * delta, extra_header=cards, overwrite=True)
    with pytest.raises(ConfigError) as info:
        run_lightcone(config)
    assert (
        "holds shells of other settings: the shell maps on disk (3 → 3 files, or their "
        "contents); resuming would mix them" in str(info.value)
    )


def _legacy_marker(config: PipelineConfig) -> dict[str, Any]:
    """lightcone.json as versions before the per-stage records wrote it: one digest."""
    body = {
        "version": __version__,
        "lightcone": config.lightcone.model_dump(mode="json", exclude={"statistics"}),
    }
    return {
        "fingerprint": hash_bytes(json.dumps(body, sort_keys=True).encode()),
        "lensing_ssc_version": __version__,
    }


def test_an_earlier_versions_record_of_the_same_settings_keeps_the_shells(
    tmp_path: Path,
) -> None:
    """A one-digest lightcone.json of these settings: shells resumed, κ made again with KAPPAFP."""
    run_dir = tmp_path / "run"
    config = lightcone_config(run_dir)
    run_lightcone(config)
    marker = run_dir / "lightcone.json"
    marker.write_text(json.dumps(_legacy_marker(config)))
    shells = stamps(run_dir / "shells")
    again = run_lightcone(config)
    assert again.resumed == 3
    assert stamps(run_dir / "shells") == shells
    assert again.notes == (
        "lightcone.json of an earlier version: the settings are unchanged, so the shells are "
        "kept; the κ maps are made again, recording their settings",
    )
    recorded = json.loads(marker.read_text())
    assert set(recorded) == {"lensing_ssc_version", "shells", "kappa"}
    for path in again.kappa_files:
        assert dict(hp.read_map(path, h=True)[1])["KAPPAFP"] == recorded["kappa"]["fingerprint"]
    assert run_lightcone(config).resumed == 5


def test_an_earlier_versions_record_of_other_settings_is_refused_clearly(
    tmp_path: Path,
) -> None:
    """A one-digest lightcone.json of other settings: refused, saying changes cannot be told."""
    run_dir = tmp_path / "run"
    config = lightcone_config(run_dir)
    run_lightcone(config)
    (run_dir / "lightcone.json").write_text(json.dumps(_legacy_marker(config)))
    shells = stamps(run_dir / "shells")
    with pytest.raises(ConfigError) as info:
        run_lightcone(lightcone_config(run_dir, kappa={"nside": 16, "z_sources": [1.0]}))
    assert "recorded by an earlier version as one digest in lightcone.json, so which " in str(
        info.value
    )
    assert "pass --fresh" in str(info.value)
    assert stamps(run_dir / "shells") == shells


def test_a_kappa_map_of_other_settings_in_place_is_not_returned_as_this_runs(
    tmp_path: Path,
) -> None:
    """A float64 run's κ map copied over a float32 run's: the resumed run names the file."""
    ours = run_lightcone(lightcone_config(tmp_path / "ours"))
    theirs = run_lightcone(
        lightcone_config(
            tmp_path / "theirs", kappa={"nside": 16, "z_sources": [0.6, 1.0], "dtype": "float64"}
        )
    )
    shutil.copyfile(theirs.kappa_files[1], ours.kappa_files[1])
    with pytest.raises(ConfigError) as info:
        run_lightcone(lightcone_config(tmp_path / "ours"))
    assert "holds the κ map 'kappa_zs1_s0.fits' made under other κ settings" in str(info.value)
    assert info.value.hint == "pass --fresh-kappa to make the κ maps again from the kept shells"


def test_a_killed_fresh_kappa_run_resumes_without_the_flag_and_no_old_map(
    tmp_path: Path, children: Any
) -> None:
    """`kappa --fresh-kappa` SIGKILLed mid-stage; the plain rerun finishes with new maps only.

    The old maps (nside 16, z_s = 0.6 and 1) share names with new ones (nside 512); the
    rerun runs here, and every map it returns has the new nside and settings' digest.
    """
    run_dir = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(config_body(run_dir)))
    run_lightcone(PipelineConfig.from_file(config))
    sources = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    config.write_text(
        yaml.safe_dump(config_body(run_dir, kappa={"nside": 512, "z_sources": sources}))
    )
    command = [sys.executable, "-m", "lensing_ssc", "kappa", str(config), "--fresh-kappa"]
    proc = children.start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    third = run_dir / "kappa" / "kappa_zs0.7_s0.fits"  # the first two are journalled then
    deadline = time.monotonic() + 120
    while not third.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the κ stage made no map"
        time.sleep(0.01)
    children.sigkill(proc)
    finished = read_journal_summary(run_dir / "tasks" / "kappa.journal").completed
    assert 2 <= finished < 6
    rerun = run_lightcone(PipelineConfig.from_file(config))
    assert rerun.resumed == 3 + finished
    assert rerun.notes == ()
    assert sorted(p.name for p in (run_dir / "kappa").glob("*.fits")) == sorted(
        f"kappa_zs{z:g}_s0.fits" for z in sources
    )
    digest = json.loads((run_dir / "lightcone.json").read_text())["kappa"]["fingerprint"]
    for path in rerun.kappa_files:
        cards = dict(hp.read_map(path, h=True)[1])
        assert (cards["NSIDE"], cards["KAPPAFP"]) == (512, digest)
    alone = run_lightcone(
        lightcone_config(tmp_path / "alone", kappa={"nside": 512, "z_sources": [0.6]})
    )
    np.testing.assert_array_equal(
        hp.read_map(rerun.kappa_files[1]), hp.read_map(alone.kappa_files[0])
    )
