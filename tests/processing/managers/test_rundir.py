"""RunDir: every part of a run directory, where the config's sections put it."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import RunDir
from lensing_ssc.processing.managers.status import read_status


def test_every_part_lies_under_the_run_directory_by_default(tmp_path: Path) -> None:
    """RunDir(path) names the same paths the run directory has always had."""
    run = RunDir(tmp_path / "run")
    root = tmp_path / "run"
    assert run.path == root
    assert run.checkpoints == root / "checkpoints"
    assert run.cache == root / "cache"
    assert run.log_file == root / "logs" / "lensing_ssc.log"
    assert run.status_file == root / "status.json"
    assert run.tasks == root / "tasks"
    assert run.journal("maps") == root / "tasks" / "maps.journal"
    assert run.pipeline_file == root / "pipeline.json"
    assert run.results == root / "results"
    assert run.figures == root / "figures"


def test_a_string_path_gives_the_same_layout_as_a_path() -> None:
    """RunDir accepts a str and keeps relative paths relative."""
    assert RunDir("runs/x") == RunDir(Path("runs/x"))
    assert RunDir("runs/x").checkpoints == Path("runs/x/checkpoints")


def test_from_config_of_the_defaults_is_the_plain_layout(tmp_path: Path) -> None:
    """A config that moves nothing gives RunDir(run_dir)."""
    config = ProcessingConfig(run_dir=tmp_path / "run")
    assert RunDir.from_config(config) == RunDir(tmp_path / "run")


def test_from_config_honours_each_sections_own_location(tmp_path: Path) -> None:
    """checkpoint.dir, cache.dir and logging.file move their parts; the rest stay put."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run",
        checkpoint={"dir": tmp_path / "ckpt"},
        cache={"dir": tmp_path / "scratch"},
        logging={"file": tmp_path / "log" / "job.log"},
    )
    run = RunDir.from_config(config)
    assert run.checkpoints == tmp_path / "ckpt"
    assert run.cache == tmp_path / "scratch"
    assert run.log_file == tmp_path / "log" / "job.log"
    assert run.status_file == tmp_path / "run" / "status.json"
    assert run.journal("maps") == tmp_path / "run" / "tasks" / "maps.journal"
    assert run.results == tmp_path / "run" / "results"


def test_from_config_has_no_cache_when_the_disk_tier_is_off(tmp_path: Path) -> None:
    """cache.disk: false leaves the run without a cache directory, even with cache.dir set."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run", cache={"disk": False, "dir": tmp_path / "scratch"}
    )
    assert RunDir.from_config(config).cache is None


@pytest.mark.parametrize(
    "config",
    [
        ProcessingConfig(run_dir="runs/a"),
        ProcessingConfig(
            run_dir="runs/b",
            checkpoint={"dir": "/data/ckpt"},
            cache={"dir": "/scratch/cache"},
            logging={"file": "/var/log/b.log"},
        ),
        ProcessingConfig(run_dir="runs/c", cache={"disk": False}),
    ],
)
def test_from_config_agrees_with_the_configs_own_properties(config: ProcessingConfig) -> None:
    """RunDir and ProcessingConfig's location properties never disagree."""
    run = RunDir.from_config(config)
    assert run.path == config.run_dir
    assert run.checkpoints == config.checkpoint_dir
    assert run.cache == config.cache_dir
    assert run.log_file == config.log_file
    assert run.status_file == config.status_file


def test_a_later_change_to_the_config_does_not_move_a_built_layout(tmp_path: Path) -> None:
    """RunDir keeps the paths of the config as it was when built."""
    config = ProcessingConfig(run_dir=tmp_path / "a")
    run = RunDir.from_config(config)
    config.run_dir = tmp_path / "b"
    assert run.status_file == tmp_path / "a" / "status.json"


def test_journal_names_become_one_safe_file_in_tasks() -> None:
    """Any map name makes one file in tasks/: odd characters become _, long names are cut,
    and either adds a digest of the whole name."""
    run = RunDir("runs/x")
    odd = run.journal("maps/patch 1:a").name
    assert odd.startswith("maps_patch_1_a-")
    assert odd.endswith(".journal")
    assert len(odd) == len("maps_patch_1_a-") + 12 + len(".journal")
    assert run.journal("v1.2-final_run").name == "v1.2-final_run.journal"
    long = run.journal("x" * 300).name
    assert long.startswith("x" * 80 + "-")
    assert len(long) == 80 + 1 + 12 + len(".journal")
    assert run.journal("").name == "tasks.journal"
    assert run.journal("../escape").parent == run.tasks


def test_a_run_dir_is_a_frozen_value() -> None:
    """RunDir cannot be changed after construction, and compares, hashes and pickles by value."""
    run = RunDir("runs/x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.path = Path("elsewhere")  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(run)) == run
    assert len({run, RunDir("runs/x"), RunDir("runs/y")}) == 2


def test_read_status_reads_the_status_file_run_dir_names(tmp_path: Path) -> None:
    """read_status(RUN_DIR) reads RunDir(RUN_DIR).status_file."""
    run = RunDir(tmp_path / "run")
    run.status_file.parent.mkdir(parents=True)
    run.status_file.write_text('{"state": "finished"}')
    assert read_status(tmp_path / "run") == {"state": "finished"}
