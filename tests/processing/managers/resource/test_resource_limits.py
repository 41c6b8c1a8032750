"""The effective memory limit: fake cgroup trees (v1, v2, hybrid, none), rlimits, user limits.

Each tree is built in a temporary directory the way the kernel lays it out under
``/sys/fs/cgroup``, with a matching ``/proc/self/cgroup`` file, and handed to the reader
through its injectable paths.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lensing_ssc.processing.managers.resource._manager import (
    CgroupReader,
    MemoryLimit,
    ResourceManager,
)

GIB = 1 << 30
V1_UNLIMITED = "9223372036854771712"


def build_tree(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (paths relative to ``root``) with their contents."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def fake(tmp_path: Path):
    """A factory: (membership text, files) -> a CgroupReader over a fake tree."""

    def make(membership: str, files: dict[str, str]) -> CgroupReader:
        root = tmp_path / "cgroup"
        root.mkdir(exist_ok=True)
        build_tree(root, files)
        proc = tmp_path / "proc_self_cgroup"
        proc.write_text(textwrap.dedent(membership).lstrip())
        return CgroupReader(root=root, proc_cgroup=proc)

    return make


def test_docker_like_v2_limit_at_the_namespace_root(fake, tmp_path: Path) -> None:
    """A container's v2 limit on the mount's root (cgroup namespace, path "/") is found."""
    reader = fake("0::/\n", {"cgroup.controllers": "memory", "memory.max": str(2 * GIB)})
    assert reader.memory_limits() == (
        MemoryLimit(2048.0, f"cgroup v2 {tmp_path / 'cgroup' / 'memory.max'}"),
    )


def test_slurm_v1_limit_on_the_job_above_step_and_task(fake, tmp_path: Path) -> None:
    """SLURM v1: the job_42 limit, an ancestor of the task's cgroup, is found with its path."""
    job = "memory/slurm/uid_1000/job_42"
    reader = fake(
        """
        12:memory:/slurm/uid_1000/job_42/step_0/task_0
        4:cpu,cpuacct:/slurm/uid_1000/job_42/step_0/task_0
        1:name=systemd:/user.slice
        """,
        {
            "memory/memory.limit_in_bytes": V1_UNLIMITED,
            "memory/slurm/memory.limit_in_bytes": V1_UNLIMITED,
            "memory/slurm/uid_1000/memory.limit_in_bytes": V1_UNLIMITED,
            f"{job}/memory.limit_in_bytes": str(3 * GIB),
            f"{job}/step_0/memory.limit_in_bytes": str(4 * GIB),
            f"{job}/step_0/task_0/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    limits = reader.memory_limits()
    assert [limit.limit_mb for limit in limits] == [4096.0, 3072.0]
    lowest = min(limits, key=lambda limit: limit.limit_mb)
    assert lowest.source == f"cgroup v1 {tmp_path / 'cgroup' / job / 'memory.limit_in_bytes'}"


def test_slurm_v2_limit_on_the_jobs_ancestor(fake, tmp_path: Path) -> None:
    """SLURM v2: memory.max of job_123 and memory.high of its step both count; "max" does not."""
    job = "system.slice/slurmstepd.scope/job_123"
    leaf = f"{job}/step_0/user/task_0"
    reader = fake(
        f"0::/{leaf}\n",
        {
            "cgroup.controllers": "cpu memory",
            "system.slice/memory.max": "max",
            f"{job}/memory.max": str(8 * GIB),
            f"{job}/memory.high": "max",
            f"{job}/step_0/memory.high": str(6 * GIB),
            f"{leaf}/memory.max": "max",
        },
    )
    root = tmp_path / "cgroup"
    assert set(reader.memory_limits()) == {
        MemoryLimit(6144.0, f"cgroup v2 {root / job / 'step_0' / 'memory.high'}"),
        MemoryLimit(8192.0, f"cgroup v2 {root / job / 'memory.max'}"),
    }


def test_no_limits_anywhere_gives_none(fake) -> None:
    """A v2 tree with "max" everywhere and a v1 tree of "unlimited" values yield no limit."""
    reader = fake(
        """
        0::/user.slice/session-1.scope
        9:memory:/user.slice/session-1.scope
        """,
        {
            "cgroup.controllers": "memory",
            "user.slice/session-1.scope/memory.max": "max",
            "memory/memory.limit_in_bytes": V1_UNLIMITED,
            "memory/user.slice/session-1.scope/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert reader.memory_limits() == ()


def test_hybrid_layout_reads_the_v1_memory_controller(fake, tmp_path: Path) -> None:
    """Hybrid hosts (v1 memory controller, v2 tree under unified/) use the v1 limit."""
    reader = fake(
        """
        4:memory:/batch/job_7
        0::/batch/job_7
        """,
        {
            "memory/batch/job_7/memory.limit_in_bytes": str(GIB),
            "unified/cgroup.controllers": "",
            "unified/batch/job_7/cgroup.procs": "",
        },
    )
    assert reader.memory_limits() == (
        MemoryLimit(
            1024.0, f"cgroup v1 {tmp_path / 'cgroup/memory/batch/job_7/memory.limit_in_bytes'}"
        ),
    )


def test_container_without_cgroup_namespace_uses_the_mount_root(fake, tmp_path: Path) -> None:
    """A host path absent under the mount (no cgroup namespace) falls back to its mounted tail."""
    reader = fake(
        "0::/kubepods/burstable/pod1/abc\n",
        {"cgroup.controllers": "memory", "memory.max": str(GIB // 2)},
    )
    assert reader.memory_limits() == (
        MemoryLimit(512.0, f"cgroup v2 {tmp_path / 'cgroup' / 'memory.max'}"),
    )


def test_unreadable_and_garbled_files_are_skipped(fake, tmp_path: Path) -> None:
    """A limit file that cannot be read or holds no number is skipped; the rest still count."""
    reader = fake(
        "0::/a/b\n",
        {
            "cgroup.controllers": "memory",
            "a/b/memory.high": "lots\n",
            "a/memory.max": str(GIB),
        },
    )
    (tmp_path / "cgroup" / "a" / "b" / "memory.max").mkdir()  # read_text raises an OSError
    assert reader.memory_limits() == (
        MemoryLimit(1024.0, f"cgroup v2 {tmp_path / 'cgroup' / 'a' / 'memory.max'}"),
    )


def test_missing_membership_file_or_root_gives_no_limits(tmp_path: Path) -> None:
    """No /proc/self/cgroup and no cgroup filesystem (macOS, containers) is not an error."""
    assert CgroupReader(tmp_path / "nowhere", tmp_path / "no_such_file").memory_limits() == ()
    proc = tmp_path / "cgroup_file"
    proc.write_text("0::/x\n12:memory:/y\n")
    assert CgroupReader(tmp_path / "empty_root", proc).memory_limits() == ()


def _manager_over(tmp_path: Path, limit_bytes: int, **kwargs) -> ResourceManager:
    root = tmp_path / "cg"
    build_tree(root, {"cgroup.controllers": "memory", "job/memory.max": str(limit_bytes)})
    (root / "job" / "task").mkdir(exist_ok=True)
    proc = tmp_path / "membership"
    proc.write_text("0::/job/task\n")
    return ResourceManager(cgroup_root=root, proc_cgroup=proc, disk_path=tmp_path, **kwargs)


def test_effective_limit_is_the_lowest_of_user_and_cgroup(tmp_path: Path) -> None:
    """The manager's limit is the cgroup's when lower than the user's, the user's otherwise."""
    cgroup_source = f"cgroup v2 {tmp_path / 'cg' / 'job' / 'memory.max'}"
    with _manager_over(tmp_path, 4 * GIB, memory_limit_mb=8000) as rm:
        assert rm.memory_limit == MemoryLimit(4096.0, cgroup_source)
        assert MemoryLimit(8000.0, "user") in rm.memory_limits
        assert rm.get_current_usage().memory_limit_mb == 4096.0
        assert rm.get_status()["memory_limit"] == {"limit_mb": 4096.0, "source": cgroup_source}
    with _manager_over(tmp_path, 4 * GIB, memory_limit_mb=1000) as rm:
        assert rm.memory_limit == MemoryLimit(1000.0, "user")


def test_percent_limit_is_a_share_of_what_the_cgroup_gives(tmp_path: Path) -> None:
    """memory_limit_percent=50 under a 4 GiB cgroup is 2048 MB, naming its base."""
    rm = _manager_over(tmp_path, 4 * GIB, memory_limit_percent=50)
    try:
        assert rm.memory_limit is not None
        assert rm.memory_limit.limit_mb == 2048.0
        assert rm.memory_limit.source == (
            f"user (50% of cgroup v2 {tmp_path / 'cg' / 'job' / 'memory.max'})"
        )
    finally:
        rm.close()


def test_percent_limit_without_cgroup_is_a_share_of_physical_memory(tmp_path: Path) -> None:
    """Without any system limit, memory_limit_percent is a share of the machine's memory."""
    import psutil

    rm = ResourceManager(
        memory_limit_percent=10,
        cgroup_root=tmp_path / "none",
        proc_cgroup=tmp_path / "none",
        disk_path=tmp_path,
    )
    try:
        assert rm.memory_limit is not None
        expected = psutil.virtual_memory().total / (1 << 20) / 10
        if rm.memory_limit.source == "user (10% of system memory)":
            assert rm.memory_limit.limit_mb == pytest.approx(expected)
        else:  # an rlimit on this machine is lower than physical memory
            assert rm.memory_limit.limit_mb < expected
    finally:
        rm.close()


@pytest.mark.skipif(sys.platform == "win32", reason="rlimits are POSIX")
def test_rlimit_as_is_a_limit_with_its_source(tmp_path: Path) -> None:
    """A job started with RLIMIT_AS = 6 GiB reports that limit and the source "RLIMIT_AS"."""
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({6 * GIB}, {6 * GIB}))
        from lensing_ssc.processing.managers.resource._manager import ResourceManager
        rm = ResourceManager(cgroup_root={str(tmp_path)!r}, proc_cgroup={str(tmp_path)!r})
        print(rm.memory_limit.limit_mb, rm.memory_limit.source)
        rm.close()
        """
    )

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.split() == ["6144.0", "RLIMIT_AS"]


def test_refresh_limits_picks_up_a_changed_cgroup_limit(tmp_path: Path) -> None:
    """After the job's cgroup limit changes (scontrol update), refresh_limits reads the new one."""
    rm = _manager_over(tmp_path, 4 * GIB)
    try:
        assert rm.memory_limit is not None
        assert rm.memory_limit.limit_mb == 4096.0
        (tmp_path / "cg" / "job" / "memory.max").write_text(str(2 * GIB))
        assert rm.memory_limit.limit_mb == 4096.0  # read once, not on every sample
        refreshed = rm.refresh_limits()
        assert refreshed is not None
        assert refreshed.limit_mb == 2048.0
        assert rm.thresholds.memory_limit_mb == 2048.0
    finally:
        rm.close()
