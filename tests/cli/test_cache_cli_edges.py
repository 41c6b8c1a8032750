"""``lensing-ssc cache`` on a damaged index and on a cache this user may not write (#22).

Before, ``cache clear`` failed on a damaged index the same way the run did, though the run's
error advised it (point 16), and ``cache stats`` needed write access (point 19).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.cli import main
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import CacheManager

_PAGE = 4096


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory whose cache holds 20 small entries and one value file."""
    return _filled(tmp_path / "run")


def _filled(run: Path) -> Path:
    with CacheManager(config=ProcessingConfig(run_dir=run), disk_min_free_mb=0) as cache:
        for n in range(20):
            cache.put(("small", n), np.full(40, n), tags=["maps"])
        cache.put("large", np.zeros(100_000))
    return run


def _damage(run: Path) -> Path:
    index = run / "cache" / "index.sqlite"
    data = bytearray(index.read_bytes())
    data[:100] = b"\xa5" * 100
    index.write_bytes(bytes(data))
    return index


def _value_files(run: Path) -> list[Path]:
    return sorted((run / "cache" / "values").glob("*/*.val"))


def test_clear_replaces_a_damaged_index_and_removes_its_files(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache clear` on a damaged index replaces it by an empty one: the cache works again."""
    _damage(run_dir)
    assert main(["cache", "clear", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "is damaged (file is not a database)" in out
    assert "replaced the damaged index" in out
    assert "removed 1 value files, freed 0.8 MiB" in out
    assert _value_files(run_dir) == []
    assert main(["cache", "stats", str(run_dir), "--json"]) == 0
    assert '"entries": 0' in capsys.readouterr().out


def test_clean_asks_before_replacing_a_damaged_index(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache clean` says the index is damaged and replaces it only once the user agrees."""
    index = _damage(run_dir)
    damaged = index.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["cache", "clean", str(run_dir)]) == 1
    assert "nothing removed" in capsys.readouterr().out
    assert index.read_bytes() == damaged
    assert len(_value_files(run_dir)) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["cache", "clean", str(run_dir)]) == 0
    assert "replaced the damaged index" in capsys.readouterr().out
    with CacheManager(config=ProcessingConfig(run_dir=run_dir)) as cache:
        cache.put("k", 1)
        assert cache.get("k") == 1


@pytest.mark.parametrize("command", [["stats"], ["invalidate", "--tag", "maps"]])
def test_reading_commands_on_a_damaged_index_say_so_and_point_to_clean(
    run_dir: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`cache stats` and `cache invalidate` report the damage and how to repair it, no traceback."""
    index = _damage(run_dir)
    damaged = index.read_bytes()
    assert main(["cache", command[0], str(run_dir), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err
    assert "lensing-ssc cache clean RUN_DIR" in err
    assert "Traceback" not in err
    assert index.read_bytes() == damaged


@contextlib.contextmanager
def _shared_tmp() -> Iterator[Path]:
    """A directory that another user can read (pytest's own are private to this one)."""
    folder = Path(tempfile.mkdtemp(prefix="lensing-ssc-readonly-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_reader(args: list[str]) -> tuple[int, str]:
    """Run ``main(args)`` as a user who may read but not write the files (exit code, output)."""
    if os.geteuid() != 0:
        return main(args), ""
    main(["cache", "stats", "--help"])  # everything imported while the files can be read
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.close(read)
            os.setegid(65534)
            os.seteuid(65534)  # nobody: the files are root's, 0644 in 0755 directories
            with os.fdopen(write, "w") as out, contextlib.redirect_stdout(out):
                code = main(args)
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as source:
        output = source.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_stats_reads_a_cache_this_user_may_not_write(capsys: pytest.CaptureFixture[str]) -> None:
    """`cache stats` opens nothing for writing: it works on someone else's read-only cache."""
    with _shared_tmp() as folder:
        run = _filled(folder / "run")
        if os.geteuid() != 0:
            for path in sorted(run.rglob("*"), reverse=True):
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        before = sorted((path.name, path.stat().st_mtime) for path in run.rglob("*"))
        code, output = _as_reader(["cache", "stats", str(run), "--json"])
        output += capsys.readouterr().out
        assert code == 0
        assert '"entries": 21' in output
        assert '"maps": 20' in output
        assert sorted((path.name, path.stat().st_mtime) for path in run.rglob("*")) == before
        for path in run.rglob("*"):
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
