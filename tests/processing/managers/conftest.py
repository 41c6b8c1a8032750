"""Fixtures shared by the manager tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, Any]:
    """Arguments that keep this machine's cgroups out of the test and watch tmp_path."""
    return {
        "cgroup_root": tmp_path / "no_cgroup",
        "proc_cgroup": tmp_path / "no_cgroup",
        "disk_path": tmp_path,
    }
