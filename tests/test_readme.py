"""Every Python example in README.md runs as written."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lensing_ssc.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# Packages of the extras that README examples may use.
_OPTIONAL = ("zstandard", "lz4", "xxhash", "h5py", "healpy", "matplotlib", "distributed")

CONFIG = """\
run_dir: runs/example
resources:  {memory_limit_mb: 8000, monitor_interval: 1.0, warning_fraction: 0.8}
checkpoint: {max_checkpoints: 5, compression: zstd}
cache:      {max_size_mb: 512, max_entries: 1000, eviction_policy: lru}
logging:    {level: INFO, format: json}
progress:   {enabled: true}
"""


def test_readme_config_error_is_what_the_command_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error line README quotes for a bad `cache.max_entries` is the one the command prints."""
    quoted = re.search(
        r"\$ lensing-ssc config validate bad\.yaml\n(error: .*)\n", README.read_text()
    )
    assert quoted is not None
    (tmp_path / "bad.yaml").write_text("cache: {max_entries: -5}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "validate", "bad.yaml"]) == 2
    assert capsys.readouterr().err.strip() == quoted.group(1)


def test_readme_has_examples() -> None:
    """The README shows Python examples (so the parametrised test below is not empty)."""
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(tmp_path: Path, code: str) -> None:
    """A README example runs in a fresh interpreter and exits 0."""
    (tmp_path / "config.yaml").write_text(CONFIG)
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    missing = [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]
    if result.returncode != 0 and missing and "ModuleNotFoundError" in result.stderr:
        pytest.skip(f"the example needs an optional package; missing here: {', '.join(missing)}")
    assert result.returncode == 0, result.stderr[-3000:]
    if "patch_power" in code:  # the quick start states what it prints
        assert result.stdout.strip() == "200 0 226.85"
