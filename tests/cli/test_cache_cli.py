"""``lensing-ssc cache stats|clean|clear|invalidate`` on a run directory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.cli import main
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import CacheManager


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory whose cache holds three entries, two tagged 'maps', and some reads."""
    config = ProcessingConfig(run_dir=tmp_path / "run")
    with CacheManager(config=config) as cache:
        cache.put("kappa", np.zeros(100_000), tags=["maps", "sim1"])
        cache.put("kappa_smooth", np.zeros(1000), tags=["maps"])
        cache.put("cl", [1.0, 2.0], tags=["theory"])
    with CacheManager(config=config) as cache:
        cache.get("kappa")
        cache.get("cl")
        cache.get("missing")
    return tmp_path / "run"


def test_stats_prints_entries_size_lookups_and_tags(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache stats RUN_DIR` shows entries, size, every process's hits and the tags."""
    assert main(["cache", "stats", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "entries     3" in out
    assert "size        0.8 MiB" in out
    assert "lookups     3 (hits 2, misses 1, hit rate 66.7%)" in out
    assert "tags        maps (2), sim1 (1), theory (1)" in out


def test_stats_as_json(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cache stats --json` prints machine-readable figures."""
    assert main(["cache", "stats", str(run_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["entries"] == 3
    assert stats["hits"] == 2
    assert stats["misses"] == 1
    assert stats["tags"] == {"maps": 2, "sim1": 1, "theory": 1}
    assert stats["cache_dir"] == str(run_dir / "cache")


def test_invalidate_removes_tagged_entries(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache invalidate RUN_DIR --tag maps` removes exactly the tagged entries."""
    assert main(["cache", "invalidate", str(run_dir), "--tag", "maps"]) == 0
    assert "removed 2 entries tagged maps" in capsys.readouterr().out
    with CacheManager(cache_dir=run_dir / "cache") as cache:
        assert cache.get("kappa") is None
        assert cache.get("cl") == [1.0, 2.0]


def test_clear_empties_the_cache(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cache clear RUN_DIR` removes every entry and says how much."""
    assert main(["cache", "clear", str(run_dir)]) == 0
    assert "removed 3 entries (0.8 MiB)" in capsys.readouterr().out
    assert list((run_dir / "cache" / "values").glob("*/*.val")) == []
    with CacheManager(cache_dir=run_dir / "cache") as cache:
        assert cache.get_stats().disk.entries == 0  # type: ignore[union-attr]


def test_cache_dir_option_and_direct_cache_path(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cache can be named with --cache-dir or given as the directory itself."""
    assert main(["cache", "stats", "ignored", "--cache-dir", str(run_dir / "cache")]) == 0
    assert "entries     3" in capsys.readouterr().out
    assert main(["cache", "stats", str(run_dir / "cache")]) == 0
    assert "entries     3" in capsys.readouterr().out


def test_missing_cache_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory without a cache exits 2 with one line naming it, and creates nothing."""
    assert main(["cache", "stats", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no cache found in ")
    assert str(tmp_path / "nowhere" / "cache") in err
    assert not (tmp_path / "nowhere").exists()


def test_cache_group_runs_from_the_command_line(run_dir: Path) -> None:
    """`python -m lensing_ssc cache stats` works as an installed command would."""
    result = subprocess.run(
        [sys.executable, "-m", "lensing_ssc", "cache", "stats", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "entries     3" in result.stdout


def test_clean_asks_first_and_a_no_removes_nothing(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache clean` names the entry count, and answering no exits 1 with every entry kept."""
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["cache", "clean", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert f"remove all 3 entries of {run_dir / 'cache'}?" in out
    assert "nothing removed" in out
    with CacheManager(cache_dir=run_dir / "cache") as cache:
        assert cache.get("cl") == [1.0, 2.0]


@pytest.mark.parametrize("answer", [["--yes"], []])
def test_clean_removes_every_entry_and_says_how_much_disk_it_freed(
    run_dir: Path,
    answer: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cache clean --yes`, or a yes to its question, empties the cache and says the MiB freed."""
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["cache", "clean", str(run_dir), *answer]) == 0
    out = capsys.readouterr().out
    assert ("remove all 3 entries" in out) is not bool(answer)
    assert f"removed 3 entries from {run_dir / 'cache'}, freed 0.8 MiB" in out
    assert list((run_dir / "cache" / "values").glob("*/*.val")) == []
    with CacheManager(cache_dir=run_dir / "cache") as cache:
        assert cache.get_stats().disk.entries == 0  # type: ignore[union-attr]
