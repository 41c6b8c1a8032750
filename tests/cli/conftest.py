"""Config files for the command-line tests: a tiny run, and one long enough to interrupt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PIPELINES: dict[str, dict[str, Any]] = {
    # 2 fields of 128² cut into 8 sub-patches of 64², and 8 periodic 64² fields.
    "tiny": {
        "executor": "serial",
        "retries": 0,
        "figures": False,
        "synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2},
    },
    # 16 fields of 256² cut into 64 sub-patches of 128², and 64 periodic patches: over a
    # second of patch work after the maps, long enough to look, and to interrupt after the
    # first few patches.
    "interruptible": {
        "executor": "serial",
        "figures": False,
        "synthetic": {"patch_pixels": 128, "patches_per_side": 2, "n_large_fields": 16},
    },
}

ConfigFile = Callable[..., Path]


@pytest.fixture
def config_file(tmp_path: Path) -> ConfigFile:
    """Write ``tmp_path/c.yaml``: a quiet run in ``run_dir`` with a named pipeline section.

    ``config_file(run_dir, "tiny", figures=True)`` overrides keys of the pipeline section.
    The log is JSON at DEBUG in the run's file; the terminal shows no log and no progress.
    """

    def write(run_dir: Path, pipeline: str = "tiny", **overrides: Any) -> Path:
        body = {
            "run_dir": str(run_dir),
            "logging": {"console": False, "format": "json", "level": "DEBUG"},
            "progress": {"enabled": False},
            "pipeline": {**PIPELINES[pipeline], **overrides},
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(body))
        return path

    return write
