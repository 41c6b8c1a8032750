"""``lensing-ssc run``: the failures behind a run that could not finish, and the cache line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lensing_ssc.cli import main

ConfigFile = Callable[..., Path]  # the config_file fixture of conftest.py

EXIT_USAGE = 2


def garbage_patches_config(tmp_path: Path, config_file: ConfigFile, names: list[str]) -> Path:
    """A run config over patch files ``names`` in ``tmp_path`` that hold no array."""
    for name in names:
        (tmp_path / name).write_bytes(b"not an array")
    return config_file(
        tmp_path / "run",
        input="patches",
        patches={"files": [str(tmp_path / "p*.npy")], "pixel_size_arcmin": 2.0},
    )


def test_every_patch_file_garbage_lists_each_file_and_its_error_before_the_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """When every map fails, stderr names each failed map's stage, key, file and error."""
    config = garbage_patches_config(tmp_path, config_file, ["p0.npy", "p1.npy"])
    assert main(["run", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == f"failed, as recorded in {tmp_path / 'run' / 'tasks'}:"
    assert lines[1].startswith(f"  failed maps patches/map-0000: cannot read {tmp_path}/p0.npy: ")
    assert lines[2].startswith(f"  failed maps patches/map-0001: cannot read {tmp_path}/p1.npy: ")
    assert lines[3].startswith("error: no patch set has the 2 measured patches")


def test_an_unreadable_healpix_map_is_named_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A HEALPix input whose only file is not FITS: the map, the file and the reason are shown."""
    pytest.importorskip("healpy")
    (tmp_path / "kappa.fits").write_bytes(b"x")
    config = config_file(
        tmp_path / "run", input="healpix", healpix={"maps": [str(tmp_path / "kappa.fits")]}
    )
    assert main(["run", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        f"  failed maps healpix/map-0000: cannot read HEALPix map '{tmp_path / 'kappa.fits'}': "
        in err
    )
    assert err.splitlines()[-1].startswith("error: no patch set")


def test_more_failures_than_shown_end_in_a_count_naming_the_journals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """Twelve failed maps: ten are listed, then one line counts the other two and says where."""
    config = garbage_patches_config(tmp_path, config_file, [f"p{i:02d}.npy" for i in range(12)])
    assert main(["run", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("  failed maps patches/map-") == 10
    assert f"  ... 2 more in {tmp_path / 'run' / 'tasks'} (lensing-ssc tasks)" in err


def test_a_config_error_lists_no_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A bad setting is the one error line, with no failure listing from the journals."""
    config = config_file(tmp_path / "run", statistics={"names": ["peak"]})
    assert main(["run", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "failed" not in err


def test_the_final_block_states_the_run_cache_and_its_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_file: ConfigFile
) -> None:
    """A finished run prints ``cache  RUN_DIR/cache  N MiB`` after the log line."""
    config = config_file(tmp_path / "run")
    assert main(["run", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    log_at = next(i for i, line in enumerate(lines) if line.startswith("log "))
    cache = lines[log_at + 1]
    assert cache.startswith(f"cache    {tmp_path / 'run' / 'cache'}  ")
    assert cache.endswith(" MiB")
    assert float(cache.split()[-2]) > 0
