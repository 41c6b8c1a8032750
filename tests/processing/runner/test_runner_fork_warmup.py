"""The fork server's warm-up: what every Dask worker would read as it starts, read once."""

from __future__ import annotations

import copy
import importlib
import multiprocessing
import subprocess
import sys
import textwrap

import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

from lensing_ssc.core.config import _resolve  # noqa: E402
from lensing_ssc.processing.runner import _fork_warmup  # noqa: E402


def test_warming_up_changes_no_dask_setting_and_fills_the_settings_models() -> None:
    """Importing the warm-up again leaves every Dask setting as it was, and builds the read-only
    settings model of each section once."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 7}):
        before = copy.deepcopy(dask.config.config)
        importlib.reload(_fork_warmup)
        after = copy.deepcopy(dask.config.config)
    assert after == before
    assert _resolve._frozen.cache_info().currsize >= 5  # resources, checkpoint, progress, ...


_VERSIONS_SEEN_BY_A_WORKER = textwrap.dedent(
    """
    import sys
    from lensing_ssc.processing.runner import TaskRunner

    def versions_read(_):
        import distributed.versions
        info = distributed.versions._version_cached.cache_info()
        return info.hits, info.currsize

    if __name__ == "__main__":
        if sys.argv[1] == "bare":  # the fork server as it was: distributed, nothing warmed
            import multiprocessing.forkserver
            multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed"])
            multiprocessing.forkserver.ensure_running()
        with TaskRunner("dask", max_workers=1, chunksize=1) as runner:
            print(*runner.map(versions_read, [0]).results[0])
    """
)


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="needs a fork server"
)
@pytest.mark.skipif(
    not hasattr(getattr(distributed, "versions", None), "_version_cached"),
    reason="this distributed reads versions another way",
)
@pytest.mark.parametrize(("server", "warm"), [("ours", True), ("bare", False)])
def test_a_dask_worker_registers_with_the_versions_its_fork_server_read(
    server: str, warm: bool
) -> None:
    """A worker forked from the runner's fork server finds every package version already read
    when it registers (each read costs a metadata parse); from a bare server it reads them."""
    out = subprocess.run(
        [sys.executable, "-c", _VERSIONS_SEEN_BY_A_WORKER, server],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    hits, cached = (int(value) for value in out.stdout.split())
    assert cached > 0, out.stderr
    assert (hits >= cached) is warm, out.stdout + out.stderr
