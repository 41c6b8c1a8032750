"""A missing package of one of our extras: one line naming the extra, exit 2, never retried.

Each test runs the command in a subprocess whose packages of that extra are hidden
(``sys.modules[name] = None`` before ``lensing_ssc`` is imported), so the test does not
depend on what this environment installs; one more runs the base-install virtual
environment ``/work/venv-min`` where it exists.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lensing_ssc.cli import EXTRA_OF_PACKAGE, missing_extra_message

EXIT_INVALID = 2
MINIMAL_PYTHON = Path("/work/venv-min/bin/python")

TINY = {
    "executor": "serial",
    "retries": 2,
    "figures": False,
    "results_format": "npz",
    "synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2},
}

# A command that only imports the package: the CLI has no command of its own for these
# extras (figures are skipped without matplotlib; the cluster drivers are in examples/).
_PROBE = """
import importlib, sys
from lensing_ssc.cli import app, main
@app.command("probe")
def probe(module: str) -> None:
    importlib.import_module(module)
sys.exit(main(sys.argv[1:]))
"""


def _run(
    args: list[str], hidden: tuple[str, ...], cwd: Path, python: Path | None = None, *, probe=False
) -> subprocess.CompletedProcess[str]:
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    body = _PROBE if probe else "from lensing_ssc.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    code = f"import sys\n{hide}{body}"
    return subprocess.run(
        [str(python or sys.executable), "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _config(tmp_path: Path, **pipeline: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump({"run_dir": str(tmp_path / "run"), "pipeline": {**TINY, **pipeline}})
    )
    return path


def _assert_one_line(done: subprocess.CompletedProcess[str], extra: str) -> str:
    assert done.returncode == EXIT_INVALID, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert f'pip install "lensing-ssc[{extra}]"' in line
    return line


def test_dask_executor_without_dask_is_one_line(tmp_path: Path) -> None:
    """``run --executor dask`` without dask exits 2 with one line naming the dask extra."""
    done = _run(
        ["run", str(_config(tmp_path)), "--executor", "dask"], ("dask", "distributed"), tmp_path
    )
    assert 'the Dask executor needs the "dask" extra' in _assert_one_line(done, "dask")


def test_hdf5_results_without_h5py_is_one_line(tmp_path: Path) -> None:
    """``results_format: hdf5`` without h5py exits 2 with one line naming the hdf5 extra."""
    done = _run(["run", str(_config(tmp_path, results_format="hdf5"))], ("h5py",), tmp_path)
    _assert_one_line(done, "hdf5")


def test_zstd_compression_without_zstandard_is_one_line(tmp_path: Path) -> None:
    """A zstd cache without zstandard exits 2 with one line naming the fast extra."""
    config = _config(tmp_path)
    text = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**text, "cache": {"compression": "zstd"}}))
    done = _run(["run", str(config)], ("zstandard",), tmp_path)
    _assert_one_line(done, "fast")


def test_healpix_example_without_healpy_is_one_line(tmp_path: Path) -> None:
    """``example healpix-ssc`` without healpy exits 2 with one line naming the healpix extra."""
    done = _run(["example", "healpix-ssc", str(tmp_path / "ex"), "--small"], ("healpy",), tmp_path)
    _assert_one_line(done, "healpix")


@pytest.fixture(scope="module")
def healpix_example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The settings of ``example healpix-ssc --small`` (8 maps), serial, retries=2, no figures."""
    pytest.importorskip("healpy", reason="writing the example's maps needs the healpix extra")
    where = tmp_path_factory.mktemp("healpix")
    made = _run(["example", "healpix-ssc", str(where / "ex"), "--small"], (), where)
    assert made.returncode == 0, made.stderr
    settings: dict[str, Any] = yaml.safe_load((where / "ex" / "healpix_ssc.yaml").read_text())
    settings["pipeline"].update(executor="serial", retries=2, figures=False)
    return settings


def _healpix_config(tmp_path: Path, settings: dict[str, Any]) -> Path:
    config = tmp_path / "healpix_ssc.yaml"
    config.write_text(yaml.safe_dump({**settings, "run_dir": str(tmp_path / "run")}))
    return config


def test_healpix_maps_without_healpy_are_tried_once(
    tmp_path: Path, healpix_example: dict[str, Any]
) -> None:
    """Each HEALPix map fails after one attempt without healpy, although retries=2."""
    done = _run(["run", str(_healpix_config(tmp_path, healpix_example))], ("healpy",), tmp_path)
    assert done.returncode == EXIT_INVALID, done.stderr
    log = (tmp_path / "run" / "logs" / "lensing_ssc.log").read_text()
    assert "failed after 1 attempt(s): reading HEALPix maps needs healpy" in log
    assert "failed after 3 attempt(s)" not in log
    assert "retrying" not in log


def test_healpix_run_without_healpy_is_one_line_naming_the_extra(
    tmp_path: Path, healpix_example: dict[str, Any]
) -> None:
    """A HEALPix run whose every map lacks healpy ends in one line naming the healpix extra."""
    done = _run(["run", str(_healpix_config(tmp_path, healpix_example))], ("healpy",), tmp_path)
    line = _assert_one_line(done, "healpix")
    assert line == (
        'error: reading HEALPix maps needs healpy: pip install "lensing-ssc[healpix]" '
        "(every failed task, 8 in maps; "
        "no patch set has the 2 measured patches a covariance needs)"
    )


def test_some_tasks_lacking_a_package_are_listed_and_the_last_line_names_the_extra(
    tmp_path: Path,
) -> None:
    """A FITS patch without astropy beside a garbage file: both listed, the extra named last."""
    (tmp_path / "p0.npy").write_bytes(b"not an array")
    (tmp_path / "p1.fits").write_bytes(b"not read: astropy is hidden")
    config = _config(
        tmp_path,
        input="patches",
        patches={"files": [str(tmp_path / "p*")], "pixel_size_arcmin": 2.0},
    )
    done = _run(["run", str(config)], ("astropy",), tmp_path)
    assert done.returncode == EXIT_INVALID, done.stderr
    *listing, last = done.stderr.splitlines()
    assert any(line.startswith("  failed maps patches/map-0000: cannot read ") for line in listing)
    assert "  failed maps patches/map-0001: ModuleNotFoundError: reading FITS patches" in (
        "\n".join(listing)
    )
    assert last.startswith("error: no patch set has the 2 measured patches")
    assert last.endswith(
        "; 1 task(s) failed for a missing package: reading FITS patches needs healpy and "
        'astropy: pip install "lensing-ssc[healpix]"'
    )


def test_fastpm_shells_without_bigfile_are_one_line_and_tried_once(tmp_path: Path) -> None:
    """``shells`` from a FastPM light cone without bigfile: one line naming the shells extra."""
    catalogue = str(tmp_path / "sims" / "run{seed}" / "usmesh")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(tmp_path / "run"),
                "lightcone": {
                    "seeds": [0, 1],
                    "shells": {
                        "source": "particles",
                        "particles": {"catalogue": catalogue},
                        "nside": 32,
                        "z_edges": [0.0, 0.5, 1.0],
                    },
                },
                "pipeline": {"executor": "serial", "retries": 2},
            }
        )
    )
    done = _run(["shells", str(config)], ("bigfile",), tmp_path)
    assert "FastPM light cones are read with bigfile" in _assert_one_line(done, "shells")
    log = (tmp_path / "run" / "logs" / "lensing_ssc.log").read_text()
    assert log.count("failed after 1 attempt: ModuleNotFoundError") == 2
    assert "retrying" not in log


@pytest.mark.parametrize(
    ("module", "extra"),
    [("matplotlib", "plot"), ("mpi4py", "cluster"), ("dask_jobqueue", "cluster")],
)
def test_bare_missing_package_is_one_line(tmp_path: Path, module: str, extra: str) -> None:
    """A bare ``No module named ...`` of an extra's package exits 2 with one line naming it."""
    done = _run(["probe", module], (module,), tmp_path, probe=True)
    line = _assert_one_line(done, extra)
    assert f"this needs the {extra!r} extra" in line


def test_other_missing_module_is_still_a_crash(tmp_path: Path) -> None:
    """A missing module of no extra is a bug: its traceback and exit 4."""
    done = _run(["probe", "no_such_module_here"], (), tmp_path, probe=True)
    assert done.returncode == 4
    assert "Traceback" in done.stderr
    assert "please report" in done.stderr


def test_every_extra_is_mapped() -> None:
    """Every extra of pyproject.toml but the bundles names at least one package."""
    assert set(EXTRA_OF_PACKAGE.values()) == {
        "fast",
        "dask",
        "cluster",
        "healpix",
        "hdf5",
        "plot",
        "shells",
        "xarray",
    }
    error = ModuleNotFoundError("No module named 'astropy.io'", name="astropy.io")
    assert missing_extra_message(error) == (
        "astropy is not installed: this needs the 'healpix' extra: "
        'pip install "lensing-ssc[healpix]"'
    )


@pytest.mark.skipif(not MINIMAL_PYTHON.exists(), reason="no base-install environment here")
def test_base_install_dask_executor_is_one_line(tmp_path: Path) -> None:
    """In the base install, ``run --executor dask`` exits 2 with one line naming the extra."""
    done = _run(["run", str(_config(tmp_path)), "--executor", "dask"], (), tmp_path, MINIMAL_PYTHON)
    _assert_one_line(done, "dask")
