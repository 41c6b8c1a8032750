"""The index's journal mode: WAL on a local disk, DELETE where hosts share the filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from lensing_ssc.core.base.exceptions import CacheError, ConfigError
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache._disk import DiskTier
from lensing_ssc.processing.managers.cache._filesystem import (
    choose_journal_mode,
    filesystem_type,
)

_MOUNTS = """\
sysfs /sys sysfs rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /shared nfs4 rw,vers=4.2 0 0
10.0.0.1@tcp:/scratch /lus lustre rw,flock 0 0
/dev/sdb1 /shared/local\\040disk xfs rw 0 0
sshfs#me@host: /mnt/remote fuse.sshfs rw 0 0
"""


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        ("/home/me/run", "ext4"),
        ("/shared/run/cache", "nfs4"),
        ("/shared", "nfs4"),
        ("/sharedother", "ext4"),
        ("/lus/project/cache", "lustre"),
        ("/shared/local disk/cache", "xfs"),
        ("/mnt/remote/x", "fuse.sshfs"),
    ],
)
def test_filesystem_type_is_the_longest_mount_holding_the_path(
    tmp_path: Path, directory: str, expected: str
) -> None:
    """The mount table's longest mount point above a path gives its type (escapes decoded)."""
    mounts = tmp_path / "mounts"
    mounts.write_text(_MOUNTS)
    assert filesystem_type(Path(directory), mounts=mounts) == expected


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("ext4", "wal"),
        ("xfs", "wal"),
        ("tmpfs", "wal"),
        ("nfs", "delete"),
        ("nfs4", "delete"),
        ("lustre", "delete"),
        ("gpfs", "delete"),
        ("cifs", "delete"),
        ("fuse.sshfs", "delete"),
        (None, "delete"),
    ],
)
def test_auto_uses_wal_only_on_a_local_filesystem(
    tmp_path: Path, kind: str | None, mode: str
) -> None:
    """'auto' picks DELETE on a shared or unknown filesystem, WAL on a local one."""
    assert choose_journal_mode("auto", tmp_path, fstype=lambda _: kind) == mode
    assert choose_journal_mode("wal", tmp_path, fstype=lambda _: "nfs") == "wal"


def test_a_directory_reported_as_nfs_opens_its_index_in_delete_mode(tmp_path: Path) -> None:
    """A disk tier on a path the filesystem lookup calls NFS writes no WAL and works."""
    disk = DiskTier(
        tmp_path,
        max_bytes=1 << 20,
        policy="lru",
        codec="none",
        memory_map=False,
        journal_mode="auto",
        fstype=lambda _: "nfs",
    )
    try:
        assert disk.journal_mode == "delete"
        disk.put(b"k", b"value", label="k", ttl=None, tags=())
        found = disk.get(b"k")
        assert found is not None
        assert found[0] == b"value"
        assert not (tmp_path / "index.sqlite-wal").exists()
    finally:
        disk.close()


def test_explicit_wal_is_refused_on_an_index_kept_in_delete_mode(tmp_path: Path) -> None:
    """journal_mode='wal' cannot switch back an index that a DELETE opener marked."""
    CacheManager(cache_dir=tmp_path, journal_mode="delete").close()
    with pytest.raises(CacheError, match=r"cache\.journal_mode='wal'") as info:
        CacheManager(cache_dir=tmp_path, journal_mode="wal")
    assert info.value.value == "wal"
    with CacheManager(cache_dir=tmp_path, journal_mode="auto") as cache:
        assert cache.get_status()["index_journal_mode"] == "delete"


def test_a_wal_index_held_open_refuses_a_delete_opener(tmp_path: Path) -> None:
    """A DELETE opener meeting a WAL index still open elsewhere is refused, not silently WAL."""
    with CacheManager(cache_dir=tmp_path, journal_mode="wal") as cache:
        cache.put("k", 1)
        with pytest.raises(CacheError, match="WAL mode and open in another process"):
            CacheManager(cache_dir=tmp_path, journal_mode="delete")


def test_an_unknown_journal_mode_is_a_config_error(tmp_path: Path) -> None:
    """cache.journal_mode accepts auto, wal and delete only."""
    with pytest.raises(ConfigError, match=r"cache\.journal_mode"):
        CacheManager(cache_dir=tmp_path, journal_mode="truncate")
