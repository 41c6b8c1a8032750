"""The run directory's pipeline file: a refusal to resume names what changed, old → new."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines._run_record import changed_settings, claim_run_dir
from lensing_ssc.processing.managers import RunDir

RECORD = {
    "version": "1.0",
    "pipeline": {"seed": 42, "synthetic": {"patch_pixels": 128}},
    "settings": {"n_gal": [0.0, 30.0]},
    "maps": [["m0", "a"], ["m1", "b"]],
}


def test_each_change_is_named_with_its_old_and_new_value() -> None:
    """Version, nested fields, settings and maps each make one line, fields in name order."""
    new = {
        "version": "1.1",
        "pipeline": {"seed": 7, "synthetic": {"patch_pixels": 64}, "input": "healpix"},
        "settings": {"n_gal": [0.0, 15.0]},
        "maps": [["m0", "a"]],
    }
    assert changed_settings(RECORD, new) == [
        "lensing_ssc version 1.0 → 1.1",
        'pipeline.input "unset" → "healpix"',
        "pipeline.seed 42 → 7",
        "pipeline.statistics.n_gal [0.0, 30.0] → [0.0, 15.0]",
        "pipeline.synthetic.patch_pixels 128 → 64",
        "the input maps (2 → 1, or their files)",
    ]


def test_resuming_another_run_is_refused_naming_the_changes(tmp_path: Path) -> None:
    """claim_run_dir refuses a differing record with the changes; --fresh claims it anew."""
    layout = RunDir(tmp_path / "run")
    claim_run_dir(layout, RECORD, resume=True)
    claim_run_dir(layout, RECORD, resume=True)  # the same run: resumed
    changed = {**RECORD, "pipeline": {**RECORD["pipeline"], "seed": 7}}
    with pytest.raises(ConfigError) as info:
        claim_run_dir(layout, changed, resume=True)
    assert str(info.value).startswith(
        f"run directory {str(layout.path)!r} holds a run with other inputs or settings: "
        "pipeline.seed 42 → 7; resuming it would mix their results"
    )
    assert info.value.field == "run_dir"
    claim_run_dir(layout, changed, resume=False)
    assert json.loads(layout.pipeline_file.read_text())["record"]["pipeline"]["seed"] == 7


def test_a_pipeline_file_without_a_record_is_refused_without_a_list(tmp_path: Path) -> None:
    """A file of an earlier version holds only the fingerprint: the refusal says so, plainly."""
    layout = RunDir(tmp_path / "run")
    layout.path.mkdir()
    layout.pipeline_file.write_text(
        json.dumps({"fingerprint": "sha256:0", "lensing_ssc_version": "0"})
    )
    with pytest.raises(
        ConfigError, match=r"other inputs or settings \(or another package version\)"
    ):
        claim_run_dir(layout, RECORD, resume=True)


def test_many_changes_are_cut_to_six_and_a_count(tmp_path: Path) -> None:
    """Past six changes, the refusal names six and counts the rest."""
    layout = RunDir(tmp_path / "run")
    claim_run_dir(layout, {"pipeline": {f"f{i}": i for i in range(9)}}, resume=True)
    with pytest.raises(ConfigError) as info:
        claim_run_dir(layout, {"pipeline": {f"f{i}": i + 1 for i in range(9)}}, resume=True)
    assert str(info.value).count("→") == 6
    assert "pipeline.f5 5 → 6; and 3 more; resuming" in str(info.value)
