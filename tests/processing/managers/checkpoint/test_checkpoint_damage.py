"""CheckpointManager against damage it did not cause: shared data rotting, clocks that
disagree, foreign files in its directory, bogus newer checkpoints, states too deep to load.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lensing_ssc.cli import app
from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import hash_bytes
from lensing_ssc.processing.managers import CheckpointManager

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="flock and symlink semantics")

CONSTANT = np.arange(10_000.0)  # an array that never changes: one blob shared by every save


def blob_of(root: Path, data: Any) -> Path:
    algorithm, hexdigest = hash_bytes(data).split(":")
    return root / "blobs" / f"{algorithm}-{hexdigest}"


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(data)


# -- 1. a damaged shared blob --------------------------------------------------------------


@pytest.mark.parametrize("fresh_manager", [False, True], ids=["same manager", "fresh manager"])
def test_a_damaged_shared_blob_is_rewritten_by_the_next_save(
    tmp_path: Path, fresh_manager: bool
) -> None:
    """After one byte of data every checkpoint shares is flipped, the next save writes it
    afresh, so every later checkpoint verifies and loads."""
    ckpt = CheckpointManager(tmp_path, compression="none", max_checkpoints=3)
    ckpt.save_checkpoint({"step": 0, "constant": CONSTANT})
    flip_byte(blob_of(tmp_path, CONSTANT), 5000)
    if fresh_manager:
        ckpt.close()
        ckpt = CheckpointManager(tmp_path, compression="none", max_checkpoints=3)
    with ckpt:
        for step in range(1, 6):
            info = ckpt.save_checkpoint({"step": step, "constant": CONSTANT})
            report = ckpt.verify_checkpoint(info.id)
            assert report.ok, report.problems
        state = ckpt.load_checkpoint()
    assert state["step"] == 5
    np.testing.assert_array_equal(state["constant"], CONSTANT)


def test_loading_when_every_checkpoint_is_damaged_raises_naming_the_damage(
    tmp_path: Path,
) -> None:
    """When checkpoints exist but none is intact, load_checkpoint() raises CheckpointError
    naming each one and what is damaged in it, instead of answering None."""
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        first = ckpt.save_checkpoint({"step": 1, "constant": CONSTANT})
        second = ckpt.save_checkpoint({"step": 2, "constant": CONSTANT})
    flip_byte(blob_of(tmp_path, CONSTANT))
    with (
        CheckpointManager(tmp_path, read_only=True) as reader,
        pytest.raises(CheckpointError) as info,
    ):
        reader.load_checkpoint()
    message = str(info.value)
    assert message.startswith(f"no intact checkpoint in {str(tmp_path)!r}: 2 are damaged")
    assert f'{second.id}: state["constant"] (blob blobs/' in message
    assert first.id in message
    assert "checksum mismatch" in message
    assert info.value.value == str(tmp_path)


def test_an_empty_directory_still_loads_as_none(tmp_path: Path) -> None:
    """No checkpoint at all is still None: only damage raises."""
    with CheckpointManager(tmp_path) as ckpt:
        assert ckpt.load_checkpoint() is None


# -- 2. a clock running ahead ----------------------------------------------------------------


def test_a_checkpoint_from_a_clock_ahead_does_not_hide_later_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint written by a process whose clock ran two minutes ahead is still older
    than every later save: each save is kept and loaded, none deleted by retention."""
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 120.0)
    with CheckpointManager(tmp_path, max_checkpoints=1) as ahead:
        early = ahead.save_checkpoint({"step": 0})
    monkeypatch.setattr(time, "time", real_time)
    with CheckpointManager(tmp_path, max_checkpoints=1) as ckpt:
        for step in range(1, 4):
            info = ckpt.save_checkpoint({"step": step})
            assert info.path.is_file()
            assert ckpt.load_checkpoint() == {"step": step}
            assert [c.id for c in ckpt.list_checkpoints()] == [info.id]
    assert not early.path.exists()


def test_ids_order_saves_by_their_sequence_number(tmp_path: Path) -> None:
    """Ids carry the directory's sequence number, so they sort in the order of the saves."""
    with CheckpointManager(tmp_path, max_checkpoints=20) as ckpt:
        saved = [ckpt.save_checkpoint({"step": step}).id for step in range(12)]
        listed = [info.id for info in ckpt.list_checkpoints()]
    assert listed == saved[::-1]
    assert [int(cid.split("-")[1]) for cid in saved] == list(range(1, 13))


def test_a_name_at_the_sequence_limit_does_not_stop_later_saves(tmp_path: Path) -> None:
    """A manifest named with the largest sequence number (only a crafted one can be) leaves
    later saves numbered, listed and loaded."""
    with CheckpointManager(tmp_path) as ckpt:
        first = ckpt.save_checkpoint({"step": 1})
        number = first.id.split("-")[1]
        planted = first.path.with_name(first.path.name.replace(number, "9" * 18, 1))
        planted.write_bytes(first.path.read_bytes())
        second = ckpt.save_checkpoint({"step": 2})
        assert second.id.split("-")[1] == "00000002"
        assert [info.id for info in ckpt.list_checkpoints()] == [second.id, first.id]
        assert ckpt.load_checkpoint() == {"step": 2}  # the planted one is skipped as damaged


# -- 3. garbage collection and files it never wrote ------------------------------------------


def test_collection_leaves_foreign_files_in_blobs_alone(tmp_path: Path) -> None:
    """Opening a manager and saving remove only unreferenced files named like this store's
    content addresses; other files in blobs/ stay."""
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        ckpt.save_checkpoint({"step": 1, "a": np.zeros(10_000)})
    blobs = tmp_path / "blobs"
    foreign = [
        blobs / "notes-2024.txt",
        blobs / "xxh3_128-not-hex",
        blobs / f"xxh3_128-{'0' * 31}",  # one digit short
        blobs / f"md5-{'0' * 32}",
    ]
    for path in foreign:
        path.write_text("mine")
    (blobs / "my-subdirectory").mkdir()
    garbage = blobs / hash_bytes(b"orphan").replace(":", "-")
    garbage.write_bytes(b"an unreferenced blob of ours")
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        ckpt.save_checkpoint({"step": 2, "a": np.ones(10_000)})
    assert all(path.read_text() == "mine" for path in foreign)
    assert (blobs / "my-subdirectory").is_dir()
    assert not garbage.exists()


def test_a_symlinked_blob_directory_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """A blobs/ that is a symbolic link is not written or cleaned through: opening a manager
    raises CheckpointError saying so, and the files it points to stay."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / hash_bytes(b"someone else's").replace(":", "-")
    victim.write_bytes(b"someone else's file")
    root = tmp_path / "ckpt"
    with CheckpointManager(root) as ckpt:
        ckpt.save_checkpoint({"step": 1})
    (root / "blobs").rmdir()
    (root / "blobs").symlink_to(outside)
    with pytest.raises(CheckpointError, match=r"blobs.* is a symbolic link") as info:
        CheckpointManager(root)
    assert "real directory" in (info.value.hint or "")
    assert victim.read_bytes() == b"someone else's file"
    with CheckpointManager(root, read_only=True) as reader:
        assert reader.load_checkpoint() == {"step": 1}


def test_checkpoints_delete_collects_nothing_before_the_user_confirms(tmp_path: Path) -> None:
    """`checkpoints delete` answered "no" removes nothing, not even unreferenced data."""
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        info = ckpt.save_checkpoint({"step": 1, "a": np.zeros(10_000)})
    garbage = tmp_path / "blobs" / hash_bytes(b"orphan").replace(":", "-")
    garbage.write_bytes(b"left by a deleted checkpoint")
    result = CliRunner().invoke(app, ["checkpoints", "delete", str(tmp_path), info.id], input="n\n")
    assert result.exit_code == 1
    assert garbage.exists()
    assert info.path.exists()
    result = CliRunner().invoke(app, ["checkpoints", "delete", str(tmp_path), info.id], input="y\n")
    assert result.exit_code == 0, result.output
    assert not garbage.exists()
    assert not info.path.exists()


# -- 10. retention counts only checkpoints whose data is intact ------------------------------


def test_retention_counts_only_checkpoints_whose_data_is_intact(tmp_path: Path) -> None:
    """A newer checkpoint whose data is missing does not count toward max_checkpoints, so
    the intact ones it would displace are kept."""
    with CheckpointManager(tmp_path, max_checkpoints=2, compression="none") as ckpt:
        ckpt.save_checkpoint({"step": 1, "a": np.full(10_000, 1.0)})
        good = ckpt.save_checkpoint({"step": 2, "a": np.full(10_000, 2.0)})
        bogus = ckpt.save_checkpoint({"step": 3, "a": np.full(10_000, 3.0)})
        blob_of(tmp_path, np.full(10_000, 3.0)).unlink()
        newest = ckpt.save_checkpoint({"step": 4, "a": np.full(10_000, 4.0)})
        assert [info.id for info in ckpt.list_checkpoints()] == [newest.id, bogus.id, good.id]
        assert ckpt.load_checkpoint(good.id)["step"] == 2
        assert not ckpt.verify_checkpoint(bogus.id).ok


# -- 22. states too deep to load are refused at save -----------------------------------------


def nested(depth: int, make: Callable[[Any], Any] = lambda inner: (inner,)) -> Any:
    value: Any = "core"
    for _ in range(depth):
        value = make(value)
    return value


def at_stack_depth(frames: int, call: Callable[[], Any]) -> Any:
    """Run ``call`` with about ``frames`` more frames on the stack than now."""
    if frames <= 0:
        return call()
    return at_stack_depth(frames - 1, call)


def stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def test_a_state_nested_too_deep_to_load_is_refused_at_save(tmp_path: Path) -> None:
    """A state nested 248 tuples deep raises CheckpointError at save, naming the limit, and
    nothing is written."""
    with CheckpointManager(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match="nested more than 100 levels deep"):
            ckpt.save_checkpoint({"deep": nested(248)})
        with pytest.raises(CheckpointError, match="nested more than 100 levels deep"):
            ckpt.save_checkpoint(nested(101, lambda inner: [inner]))
        assert ckpt.list_checkpoints() == []


@pytest.mark.parametrize(
    "make",
    [lambda inner: (inner,), lambda inner: [inner], lambda inner: {"k": inner}, lambda i: {1: i}],
    ids=["tuple", "list", "dict", "dict with int keys"],
)
def test_the_deepest_state_that_saves_loads_from_a_deep_stack(
    tmp_path: Path, make: Callable[[Any], Any]
) -> None:
    """A state at the nesting limit saves from a shallow stack and loads from one that
    already uses half the interpreter's recursion limit."""
    state = nested(100, make)
    with CheckpointManager(tmp_path) as ckpt:
        ckpt.save_checkpoint(state)
        frames = sys.getrecursionlimit() // 2 - stack_depth()
        assert at_stack_depth(frames, ckpt.load_checkpoint) == state
    with os.scandir(tmp_path / "manifests") as entries:
        assert len(list(entries)) == 1
