"""CheckpointManager: the documented API, config, retention, incremental saves, async, status."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc import __version__
from lensing_ssc.core.base.exceptions import CheckpointError, ConfigError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.core.io import is_temp_file, temp_name_for
from lensing_ssc.processing.managers import CheckpointManager
from lensing_ssc.processing.managers.checkpoint._manager import CheckpointInfo


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "blobs").rglob("*") if p.is_file())


def test_readme_example_works_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's CheckpointManager example runs and resumes from step 10."""
    monkeypatch.chdir(tmp_path)
    data = np.linspace(0.0, 1.0, 50_000)
    params = {"nside": 512, "smoothing_arcmin": 2.0}
    checkpoint_mgr = CheckpointManager("./checkpoints")
    state = {"step": 10, "results": data, "config": params}
    checkpoint_mgr.save_checkpoint(state, description="Processing step 10")
    restored_state = checkpoint_mgr.load_checkpoint()
    assert restored_state is not None
    assert restored_state["step"] == 10
    np.testing.assert_array_equal(restored_state["results"], data)
    assert restored_state["config"] == params
    checkpoints = checkpoint_mgr.list_checkpoints()
    assert [c.description for c in checkpoints] == ["Processing step 10"]
    assert (tmp_path / "checkpoints" / "manifests").is_dir()
    checkpoint_mgr.close()


def test_no_checkpoint_loads_as_none(tmp_path: Path) -> None:
    """An empty directory gives load_checkpoint() -> None and an empty list."""
    with CheckpointManager(tmp_path) as ckpt:
        assert ckpt.load_checkpoint() is None
        assert ckpt.list_checkpoints() == []


def test_config_places_checkpoints_under_run_dir(tmp_path: Path) -> None:
    """CheckpointManager(config=...) uses run_dir/checkpoints and the checkpoint section."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run", checkpoint={"max_checkpoints": 2, "compression": "none"}
    )
    with CheckpointManager(config=config) as ckpt:
        assert ckpt.checkpoint_dir == tmp_path / "run" / "checkpoints"
        assert ckpt.settings.max_checkpoints == 2
        assert ckpt.get_status()["codec"] == "none"


def test_explicit_arguments_override_the_config(tmp_path: Path) -> None:
    """Explicit constructor arguments win over the config's checkpoint section."""
    config = ProcessingConfig(run_dir=tmp_path, checkpoint={"max_checkpoints": 2})
    with CheckpointManager(tmp_path / "other", max_checkpoints=7, config=config) as ckpt:
        assert ckpt.checkpoint_dir == tmp_path / "other"
        assert ckpt.settings.max_checkpoints == 7
        assert config.checkpoint.max_checkpoints == 2  # the caller's config is untouched


def test_settings_without_config_are_the_sections_defaults(tmp_path: Path) -> None:
    """Without a config or arguments the checkpoint section's defaults apply."""
    with CheckpointManager(tmp_path) as ckpt:
        settings = ckpt.settings
    assert (settings.max_checkpoints, settings.compression, settings.format) == (
        5,
        "auto",
        "native",
    )
    assert (settings.keep_tags, settings.auto_save_interval) == (["keep"], None)
    assert settings.dir == tmp_path


def test_keep_tags_take_any_collection_but_not_one_string(tmp_path: Path) -> None:
    """keep_tags=("a", "b") is a list of two tags; keep_tags="keep" is refused, not split."""
    with CheckpointManager(tmp_path, keep_tags=("a", "b"), compression=False) as ckpt:
        assert (ckpt.settings.keep_tags, ckpt.settings.compression) == (["a", "b"], "none")
    with pytest.raises(ConfigError, match="a list of names, not one string") as info:
        CheckpointManager(tmp_path, keep_tags="keep")
    assert (info.value.field, info.value.value) == ("checkpoint.keep_tags", "keep")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_checkpoints": 0}, "max_checkpoints"),
        ({"compression": "brotli"}, "compression"),
        ({"format": "xml"}, "format"),
        ({"auto_save_interval": -1.0}, "auto_save_interval"),
    ],
)
def test_invalid_settings_raise_config_error_naming_the_field(
    tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    """A bad setting raises ConfigError naming the field and the value, before touching disk."""
    with pytest.raises(ConfigError) as info:
        CheckpointManager(tmp_path / "c", **kwargs)
    value = next(iter(kwargs.values()))
    assert (info.value.field, info.value.value) == (f"checkpoint.{field}", value)
    assert str(info.value).startswith(f"invalid value {value!r} for 'checkpoint.{field}': ")
    assert not (tmp_path / "c").exists()


def test_info_records_metadata(tmp_path: Path) -> None:
    """save_checkpoint returns a frozen CheckpointInfo with id, time, step, tags, size, version."""
    before = time.time()
    with CheckpointManager(tmp_path) as ckpt:
        info = ckpt.save_checkpoint(
            {"step": np.int64(42), "x": np.zeros(10_000)}, description="d", tags=("a", "b")
        )
    assert isinstance(info, CheckpointInfo)
    assert before <= info.created <= time.time()
    assert (info.step, info.description, info.tags) == (42, "d", ("a", "b"))
    assert info.package_version == __version__
    assert info.pid == os.getpid()
    assert info.size == info.path.stat().st_size + sum(
        p.stat().st_size for p in blob_files(tmp_path)
    )
    assert info.data_bytes == 80_000
    with pytest.raises(AttributeError):
        info.step = 1  # type: ignore[misc]
    assert json.loads(json.dumps(info.to_dict()))["tags"] == ["a", "b"]


def test_list_is_newest_first_and_load_by_id_or_prefix(tmp_path: Path) -> None:
    """list_checkpoints is newest first; a checkpoint loads by id or by unique id prefix."""
    with CheckpointManager(tmp_path, max_checkpoints=10) as ckpt:
        ids = [ckpt.save_checkpoint({"step": i}).id for i in range(4)]
        listed = ckpt.list_checkpoints()
        assert [c.id for c in listed] == ids[::-1]
        assert [c.step for c in listed] == [3, 2, 1, 0]
        assert ckpt.load_checkpoint(ids[1]) == {"step": 1}
        assert ckpt.load_checkpoint(ids[2][:-1]) == {"step": 2}  # unique prefix
        assert ckpt.get_checkpoint_info().id == ids[3]


def test_unknown_id_lists_what_exists(tmp_path: Path) -> None:
    """An unknown id raises CheckpointError naming the id and listing the existing ones."""
    with CheckpointManager(tmp_path) as ckpt:
        first = ckpt.save_checkpoint({"step": 1}).id
        second = ckpt.save_checkpoint({"step": 2}).id
        with pytest.raises(CheckpointError, match=r"'ckpt-nope' in .* does not exist") as info:
            ckpt.load_checkpoint("ckpt-nope")
        assert f"available: {second}, {first}" in str(info.value)
        assert info.value.value == "ckpt-nope"
        with pytest.raises(CheckpointError, match="is ambiguous"):
            ckpt.load_checkpoint("ckpt-")
        for call in (ckpt.delete_checkpoint, ckpt.verify_checkpoint, ckpt.get_checkpoint_info):
            with pytest.raises(CheckpointError, match="does not exist"):
                call("ckpt-nope")


def test_delete_checkpoint_removes_it_and_its_unshared_blobs(tmp_path: Path) -> None:
    """delete_checkpoint removes the checkpoint and blobs no other checkpoint uses."""
    shared = np.arange(100_000.0)
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        keep = ckpt.save_checkpoint({"s": shared, "own": np.ones(5000)})
        gone = ckpt.save_checkpoint({"s": shared, "own": np.zeros(5000)})
        assert len(blob_files(tmp_path)) == 3
        assert ckpt.delete_checkpoint(gone.id) == gone.id
        assert [c.id for c in ckpt.list_checkpoints()] == [keep.id]
        assert len(blob_files(tmp_path)) == 2
        np.testing.assert_array_equal(ckpt.load_checkpoint()["own"], np.ones(5000))


def test_retention_keeps_newest_and_tagged(tmp_path: Path) -> None:
    """max_checkpoints newest survive, plus checkpoints tagged "keep"; the rest are removed."""
    with CheckpointManager(tmp_path, max_checkpoints=2) as ckpt:
        for step in range(6):
            tags = ["keep"] if step == 1 else []
            ckpt.save_checkpoint({"step": step, "x": np.full(2000, step)}, tags=tags)
        assert [c.step for c in ckpt.list_checkpoints()] == [5, 4, 1]
        referenced = {p.name for p in blob_files(tmp_path)}
        assert len(referenced) == 3  # garbage collected: one blob per kept checkpoint


def test_custom_keep_tags_protect_checkpoints(tmp_path: Path) -> None:
    """keep_tags names the tags that protect a checkpoint from retention."""
    with CheckpointManager(tmp_path, max_checkpoints=1, keep_tags=["epoch-end"]) as ckpt:
        ckpt.save_checkpoint({"step": 0}, tags="epoch-end")
        ckpt.save_checkpoint({"step": 1}, tags="keep")
        ckpt.save_checkpoint({"step": 2})
        assert [c.step for c in ckpt.list_checkpoints()] == [2, 0]


def test_unchanged_arrays_are_not_written_again(tmp_path: Path) -> None:
    """Re-saving with 1 of 10 arrays changed writes about a tenth of the bytes."""
    rng = np.random.default_rng(0)
    arrays = [rng.random(50_000) for _ in range(10)]
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        first = ckpt.save_checkpoint({"arrays": arrays})
        arrays[3] = rng.random(50_000)
        second = ckpt.save_checkpoint({"arrays": arrays})
        assert first.written_bytes > 4_000_000
        assert second.written_bytes < 0.12 * first.written_bytes
        assert second.size == pytest.approx(first.size, rel=0.01)
        np.testing.assert_array_equal(ckpt.load_checkpoint()["arrays"][3], arrays[3])
        np.testing.assert_array_equal(ckpt.load_checkpoint(first.id)["arrays"][0], arrays[0])


def test_compression_settings(tmp_path: Path) -> None:
    """compression='none' stores raw; zstd/True shrink compressible data; noise stays raw."""
    pytest.importorskip("zstandard", reason="zstd needs the fast extra")
    smooth = np.zeros(200_000)
    noise = np.random.default_rng(1).random(200_000)
    with CheckpointManager(tmp_path / "raw", compression=False) as ckpt:
        assert ckpt.save_checkpoint({"a": smooth}).size > smooth.nbytes
    with CheckpointManager(tmp_path / "z", compression="zstd") as ckpt:
        info = ckpt.save_checkpoint({"a": smooth, "n": noise})
        assert info.size < noise.nbytes + 20_000  # zeros shrank, noise stored raw
        restored = ckpt.load_checkpoint()
        np.testing.assert_array_equal(restored["a"], smooth)
        np.testing.assert_array_equal(restored["n"], noise)
    with CheckpointManager(tmp_path / "auto", compression=True) as ckpt:
        assert ckpt.settings.compression == "auto"
        assert ckpt.save_checkpoint({"a": smooth}).size < 20_000
        assert ckpt.load_checkpoint()["a"].flags.writeable


def test_json_format_is_one_readable_manifest(tmp_path: Path) -> None:
    """format='json' writes no blobs and a manifest whose state is plain, indented JSON."""
    state = {"step": 3, "done": [1, 2, 3], "kappa": np.arange(3.0), "nested": {"a": None}}
    with CheckpointManager(tmp_path, format="json") as ckpt:
        info = ckpt.save_checkpoint(state)
        assert blob_files(tmp_path) == []
        text = info.path.read_text()
        body = json.loads(text[: text.rindex("\nchecksum ")])
        assert body["state"]["done"] == [1, 2, 3]
        assert body["state"]["kappa"] == {
            "$array": {"dtype": "<f8", "shape": [3], "values": [0.0, 1.0, 2.0]}
        }
        assert '\n "state": {\n' in text
        restored = ckpt.load_checkpoint()
    assert restored["nested"] == {"a": None}
    np.testing.assert_array_equal(restored["kappa"], state["kappa"])


class _Model:
    def __init__(self, weights: list[float]) -> None:
        self.weights = weights


def test_other_objects_are_pickled_and_refused_without_allow_pickle(tmp_path: Path) -> None:
    """Objects beyond plain data round-trip by pickle; allow_pickle=False refuses them by path."""
    with CheckpointManager(tmp_path) as ckpt:
        info = ckpt.save_checkpoint({"model": _Model([1.0, 2.0]), "step": 1})
        assert info.pickled == ('state["model"]',)
        assert ckpt.load_checkpoint()["model"].weights == [1.0, 2.0]
        with pytest.raises(
            CheckpointError, match=r'pickled pieces \(state\["model"\]\).*allow_pickle=False'
        ):
            ckpt.load_checkpoint(allow_pickle=False)
    with CheckpointManager(tmp_path, allow_pickle=False) as strict:
        with pytest.raises(CheckpointError, match="allow_pickle=False"):
            strict.load_checkpoint(info.id)
        plain = strict.save_checkpoint({"step": 2, "x": np.ones(3)})
        assert plain.pickled == ()
        assert strict.load_checkpoint()["step"] == 2


def test_unpicklable_object_names_its_key_path(tmp_path: Path) -> None:
    """A piece that cannot be pickled raises CheckpointError naming its key path; nothing saved."""
    state = {"results": [1, 2, 3, threading.Lock()]}
    with CheckpointManager(tmp_path) as ckpt:
        with pytest.raises(
            CheckpointError, match=r'cannot store state\["results"\]\[3\]: a _thread.lock'
        ) as info:
            ckpt.save_checkpoint(state)
        assert info.value.value == 'state["results"][3]'
        assert ckpt.list_checkpoints() == []


def test_reference_cycle_is_refused(tmp_path: Path) -> None:
    """A state containing itself raises CheckpointError naming where the cycle closes."""
    loop: list[Any] = [1]
    loop.append({"back": loop})
    with (
        CheckpointManager(tmp_path) as ckpt,
        pytest.raises(CheckpointError, match=r'state\[1\]\["back"\]: it contains itself'),
    ):
        ckpt.save_checkpoint(loop)


def test_bad_description_and_tags_are_rejected(tmp_path: Path) -> None:
    """A non-str description or an empty tag raises CheckpointError with the value."""
    with CheckpointManager(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match="description must be a str, got int"):
            ckpt.save_checkpoint({}, description=5)  # type: ignore[arg-type]
        with pytest.raises(CheckpointError, match="tags must be non-empty strings"):
            ckpt.save_checkpoint({}, tags=["ok", ""])


def test_mmap_load_maps_raw_arrays_copy_on_write(tmp_path: Path) -> None:
    """mmap=True returns memory-mapped arrays; writing to them never changes the checkpoint."""
    big = np.arange(300_000, dtype=np.float32).reshape(600, 500)
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        ckpt.save_checkpoint({"big": big, "fortran": np.asfortranarray(big)})
        mapped = ckpt.load_checkpoint(mmap=True)
        assert isinstance(mapped["big"], np.memmap)
        np.testing.assert_array_equal(mapped["big"], big)
        assert mapped["fortran"].flags.f_contiguous
        mapped["big"][0, 0] = -1.0
        assert ckpt.load_checkpoint()["big"][0, 0] == 0.0
        assert ckpt.verify_checkpoint().ok


def test_async_save_snapshots_the_state(tmp_path: Path) -> None:
    """save_checkpoint_async returns at once; changing the state afterwards does not leak in."""
    arr = np.zeros(1_000_000)
    progress = {"done": [1, 2]}
    with CheckpointManager(tmp_path) as ckpt:
        future = ckpt.save_checkpoint_async({"step": 1, "arr": arr, "progress": progress})
        arr[:] = 7.0
        progress["done"].append(3)
        info = future.result(timeout=30)
        assert info.step == 1
        restored = ckpt.load_checkpoint()
    assert restored["arr"].max() == 0.0
    assert restored["progress"] == {"done": [1, 2]}


def test_close_waits_for_pending_async_saves(tmp_path: Path) -> None:
    """Leaving the with block finishes every queued async save and joins the thread."""
    with CheckpointManager(tmp_path, max_checkpoints=10) as ckpt:
        futures = [
            ckpt.save_checkpoint_async({"step": i, "x": np.full(100_000, i)}) for i in range(4)
        ]
        assert any(
            t.name == "lensing_ssc-checkpoint-saver" and t.daemon for t in threading.enumerate()
        )
    assert all(f.done() for f in futures)
    assert not any(t.name == "lensing_ssc-checkpoint-saver" for t in threading.enumerate())
    assert [c.step for c in CheckpointManager(tmp_path).list_checkpoints()] == [3, 2, 1, 0]


def test_async_errors_reach_the_future_and_the_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background save that fails sets the future's CheckpointError and status last_error."""
    import lensing_ssc.processing.managers.checkpoint._store as store_module

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    with CheckpointManager(tmp_path) as ckpt:
        monkeypatch.setattr(store_module, "atomic_write", refuse)
        future = ckpt.save_checkpoint_async({"x": np.ones(10_000)})
        with pytest.raises(CheckpointError, match="No space left on device"):
            future.result(timeout=30)
        assert ckpt.wait_for_saves(timeout=30)
        assert "No space left on device" in ckpt.get_status()["last_error"]


def test_unstorable_state_fails_async_save_at_once(tmp_path: Path) -> None:
    """save_checkpoint_async raises in the caller when the state cannot be encoded."""
    with (
        CheckpointManager(tmp_path) as ckpt,
        pytest.raises(CheckpointError, match=r'state\["gen"\]'),
    ):
        ckpt.save_checkpoint_async({"gen": (i for i in range(3))})


def test_should_auto_save_after_interval(tmp_path: Path) -> None:
    """should_auto_save() turns true auto_save_interval seconds after the last save began."""
    with CheckpointManager(tmp_path, auto_save_interval=0.2) as ckpt:
        ckpt.save_checkpoint({"step": 1})
        assert not ckpt.should_auto_save()
        time.sleep(0.25)
        assert ckpt.should_auto_save()
        ckpt.save_checkpoint({"step": 2})
        assert not ckpt.should_auto_save()
    with CheckpointManager(tmp_path / "never") as never:
        assert not never.should_auto_save()


def test_status_is_json_ready(tmp_path: Path) -> None:
    """get_status() serialises to JSON and reports checkpoints, the last save and settings."""
    with CheckpointManager(tmp_path, max_checkpoints=3) as ckpt:
        info = ckpt.save_checkpoint({"step": 5}, description="five")
        status = json.loads(json.dumps(ckpt.get_status()))
    assert status["checkpoints"] == 1
    assert status["latest"]["id"] == info.id
    assert status["latest"]["step"] == 5
    assert status["last_save"]["id"] == info.id
    assert status["max_checkpoints"] == 3
    assert status["pending_saves"] == 0
    assert status["damaged"] == []
    assert status["closed"] is False
    assert ckpt.get_status()["closed"] is True


def test_close_is_idempotent_and_blocks_saving(tmp_path: Path) -> None:
    """close() twice is fine; saving after close raises, loading still works."""
    ckpt = CheckpointManager(tmp_path)
    ckpt.save_checkpoint({"step": 1})
    ckpt.close()
    ckpt.close()
    with pytest.raises(CheckpointError, match="manager is closed"):
        ckpt.save_checkpoint({"step": 2})
    with pytest.raises(CheckpointError, match="manager is closed"):
        ckpt.save_checkpoint_async({"step": 2})
    assert ckpt.load_checkpoint() == {"step": 1}


def test_read_only_manager_writes_nothing(tmp_path: Path) -> None:
    """read_only=True lists and loads but creates no directory and refuses saves and deletes."""
    with CheckpointManager(tmp_path / "w") as writer:
        first = writer.save_checkpoint({"step": 1})
    with CheckpointManager(tmp_path / "w", read_only=True) as reader:
        assert reader.load_checkpoint() == {"step": 1}
        with pytest.raises(CheckpointError, match="read-only"):
            reader.save_checkpoint({"step": 2})
        with pytest.raises(CheckpointError, match="read-only"):
            reader.delete_checkpoint(first.id)
    CheckpointManager(tmp_path / "absent", read_only=True).close()
    assert not (tmp_path / "absent").exists()


def test_threads_saving_at_once_produce_whole_distinct_checkpoints(tmp_path: Path) -> None:
    """Four threads saving concurrently each get distinct, loadable, uncorrupted checkpoints."""
    errors: list[BaseException] = []
    with CheckpointManager(tmp_path, max_checkpoints=100) as ckpt:

        def work(worker: int) -> None:
            try:
                for i in range(6):
                    ckpt.save_checkpoint(
                        {"worker": worker, "i": i, "x": np.full(3000, worker * 10 + i)}
                    )
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        infos = ckpt.list_checkpoints()
        assert len({info.id for info in infos}) == 24
        for info in infos:
            state = ckpt.load_checkpoint(info.id)
            assert state["x"][0] == state["worker"] * 10 + state["i"]


def test_temp_files_of_dead_writers_are_removed_on_start(tmp_path: Path) -> None:
    """A temp file left by a dead process is removed when a manager opens the directory."""
    with CheckpointManager(tmp_path) as ckpt:
        ckpt.save_checkpoint({"x": np.ones(10_000)})
    blob = blob_files(tmp_path)[0]
    # A temp name of this host with pid 2**22 + 1, above Linux's pid_max: never alive.
    parts = temp_name_for(blob).name.split("~")
    parts[2] = str(2**22 + 1)
    leftover = blob.parent / "~".join(parts)
    leftover.write_bytes(b"partial")
    assert is_temp_file(leftover)
    with CheckpointManager(tmp_path):
        assert not leftover.exists()


def test_large_states_hash_ahead_and_round_trip(tmp_path: Path) -> None:
    """A state above 16 MiB (hashed on a helper thread) saves, dedupes and verifies whole."""
    rng = np.random.default_rng(3)
    arrays = [rng.random(1 << 20) for _ in range(3)]  # 3 x 8 MiB
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        first = ckpt.save_checkpoint({"a": arrays})
        again = ckpt.save_checkpoint({"a": [arrays[0], arrays[1], arrays[2] + 1.0]})
        assert again.written_bytes < 0.4 * first.written_bytes
        assert ckpt.verify_checkpoint(first.id).ok
        for got, want in zip(ckpt.load_checkpoint(first.id)["a"], arrays, strict=True):
            np.testing.assert_array_equal(got, want)
    assert not any(t.name.startswith("lensing_ssc-checkpoint-hash") for t in threading.enumerate())


def test_async_saves_reuse_their_copy_buffers(tmp_path: Path) -> None:
    """After a background save the copy buffers are kept for the next one, until close()."""
    arr = np.ones(500_000)
    ckpt = CheckpointManager(tmp_path)
    assert ckpt.get_status()["snapshot_buffer_bytes"] == 0
    ckpt.save_checkpoint_async({"a": arr}).result(timeout=30)
    assert ckpt.get_status()["snapshot_buffer_bytes"] == arr.nbytes
    arr[:] = 2.0
    ckpt.save_checkpoint_async({"a": arr}).result(timeout=30)
    np.testing.assert_array_equal(ckpt.load_checkpoint()["a"], arr)
    ckpt.close()
    assert ckpt.get_status()["snapshot_buffer_bytes"] == 0


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd paths from /proc")
def test_a_save_syncs_the_blob_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many blobs a save writes, their directory is fsynced once, before the manifest."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    with CheckpointManager(tmp_path, compression="none") as ckpt:
        monkeypatch.setattr(os, "fsync", spy)
        info = ckpt.save_checkpoint({"a": [np.full(10_000, float(i)) for i in range(5)]})
    assert info.blobs == 5
    assert synced == ["blobs", "manifests"]


@pytest.mark.parametrize(
    ("name", "value", "field", "argument"),
    [
        ("checkpoint_dir", Path("elsewhere"), "checkpoint_dir", "checkpoint_dir=..."),
        ("read_only", True, None, "read_only=..."),
        ("settings", None, "checkpoint", "the settings as arguments (max_checkpoints=..., ...)"),
    ],
)
def test_assigning_a_setting_after_construction_is_refused(
    tmp_path: Path, name: str, value: object, field: str | None, argument: str
) -> None:
    """Assigning a setting attribute raises ConfigError saying to pass it to the constructor."""
    with CheckpointManager(tmp_path) as ckpt:
        before = getattr(ckpt, name)
        with pytest.raises(ConfigError) as caught:
            setattr(ckpt, name, value)
        assert getattr(ckpt, name) == before
    assert str(caught.value).startswith(f"CheckpointManager.{name} is read-only after construction")
    assert f"pass {argument} to CheckpointManager(...)" in str(caught.value)
    assert caught.value.field == field
