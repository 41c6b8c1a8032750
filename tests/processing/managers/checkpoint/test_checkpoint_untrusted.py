"""CheckpointManager on files someone else wrote: crafted manifests, decompression bombs,
FIFOs and symbolic links where files belong, links planted in a shared directory.

A manifest's checksum covers only itself, so anyone can write one that passes it. Whatever
such a file holds, loading, listing, verifying, the status and the command line end in a
state, a warning or a ``CheckpointError``: never another exception, a hang or a memory
blow-up. The fuzz tests at the end draw the crafted values with hypothesis.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensing_ssc.cli import main
from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import get_codec, hash_bytes
from lensing_ssc.processing.managers import CheckpointManager
from lensing_ssc.processing.managers.checkpoint._format import pack_blob_header

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="FIFO and O_NOFOLLOW semantics")

HANG_SECONDS = 20.0  # far above what any operation below needs on a loaded machine
BOMB_BYTES = 64 << 20
PEAK_LIMIT = 8 << 20


# -- helpers -------------------------------------------------------------------------------


def read_body(path: Path) -> dict[str, Any]:
    text = path.read_bytes()
    return json.loads(text[: text.rindex(b"\nchecksum ")])


def deep_list(depth: int) -> str:
    """Stands for a list nested ``depth`` deep in a body given to :func:`seal` (too deep for
    ``json.dumps`` to write)."""
    return f"\x00deep:{depth}"


def seal(body: Any) -> bytes:
    """A manifest file holding ``body`` with a correct checksum (NaN and infinities allowed)."""
    text = json.dumps(body, allow_nan=True)
    text = re.sub(r'"\\u0000deep:(\d+)"', lambda m: "[" * int(m[1]) + "0" + "]" * int(m[1]), text)
    data = text.encode("ascii")
    return data + b"\nchecksum " + hash_bytes(data).encode("ascii") + b"\n"


def base_state() -> dict[str, Any]:
    """Every kind of node the encoder writes, a blob-backed array among them."""
    return {
        "step": 2,
        "kappa": np.linspace(0.0, 1.0, 10_000),
        "small": np.arange(6, dtype=np.int32).reshape(2, 3),
        "pair": (1, "two"),
        "members": {3, 4},
        "raw": b"\x00\x01" * 3000,
        "keys": {1: "one", (2, 3): "pair"},
        "scalar": np.float32(1.5),
        "number": complex(1.0, -2.0),
        "odd": [float("nan"), float("inf"), 2**9000],
    }


def checkpoint_pair(root: Path) -> tuple[str, str]:
    """An intact older checkpoint (step 1) and the newest one (step 2); their ids."""
    with CheckpointManager(root, compression="none", max_checkpoints=10) as ckpt:
        older = ckpt.save_checkpoint({"step": 1, "note": "intact"})
        newest = ckpt.save_checkpoint(base_state())
    return older.id, newest.id


def run_bounded(call: Callable[[], Any], fifo: Path | None = None) -> Any:
    """Run ``call`` in a thread; fail if it has not finished in HANG_SECONDS."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if thread.is_alive():
        if fifo is not None:  # let the stuck reader go: a writer opens, then closes
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5.0)
        pytest.fail(f"{call} did not finish in {HANG_SECONDS} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def cli(*args: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["checkpoints", *args])
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code


def exercise(root: Path, checkpoint_id: str) -> dict[str, Any]:
    """Every reading operation, a save and the CLI on ``root``: only CheckpointError may
    escape each, status and records must be JSON-ready. Returns what each gave."""
    results: dict[str, Any] = {}

    def attempt(name: str, call: Callable[[], Any]) -> None:
        try:
            results[name] = call()
        except CheckpointError as exc:
            results[name] = exc

    attempt("open", lambda: CheckpointManager(root, allow_pickle=False, max_checkpoints=2))
    with CheckpointManager(root, allow_pickle=False, read_only=True) as reader:
        attempt("load", reader.load_checkpoint)
        attempt("load_id", lambda: reader.load_checkpoint(checkpoint_id))
        attempt("load_mmap", lambda: reader.load_checkpoint(checkpoint_id, mmap=True))
        attempt("list", lambda: [info.to_dict() for info in reader.list_checkpoints()])
        attempt("status", reader.get_status)
        attempt("info", lambda: reader.get_checkpoint_info(checkpoint_id).to_dict())
        attempt("verify", lambda: reader.verify_checkpoint(checkpoint_id).to_dict())
    json.dumps([results["list"], results["status"]])
    for command in (["list", str(root)], ["show", str(root)], ["verify", str(root), "--all"]):
        results[f"cli {command[0]}"] = code = cli(*command)
        assert code in (0, 1, 2)
    writer = results["open"]
    if isinstance(writer, CheckpointManager):
        with writer:
            attempt("save", lambda: writer.save_checkpoint({"step": 9}, tags=["keep"]))
            attempt("save_again", lambda: writer.save_checkpoint({"step": 10}))
            attempt("list_after", writer.list_checkpoints)
    return results


@pytest.fixture(scope="module")
def template() -> Iterator[tuple[Path, str, str]]:
    """A checkpoint directory to copy: (directory, older id, newest id)."""
    with tempfile.TemporaryDirectory() as top:
        root = Path(top) / "template"
        older, newest = checkpoint_pair(root)
        yield root, older, newest


@contextlib.contextmanager
def crafted_copy(template: tuple[Path, str, str], body: Any) -> Iterator[tuple[Path, str, str]]:
    """A copy of the template whose newest manifest holds ``body`` (correctly checksummed)."""
    source, older, newest = template
    with tempfile.TemporaryDirectory() as top:
        root = Path(top) / "ckpt"
        shutil.copytree(source, root)
        (root / "manifests" / f"{newest}.json").write_bytes(seal(body))
        yield root, older, newest


# -- 10. crafted manifests -----------------------------------------------------------------

CRAFTED: dict[str, Callable[[dict[str, Any]], None]] = {
    "created is text": lambda b: b.update(created="yesterday"),
    "created beyond year 9999": lambda b: b.update(created=1e300),
    "created is NaN": lambda b: b.update(created=math.nan),
    "created is true": lambda b: b.update(created=True),
    "tags is a number": lambda b: b.update(tags=5),
    "tags holds a list": lambda b: b.update(tags=[[1]]),
    "pid is text": lambda b: b.update(pid="x"),
    "pid is infinite": lambda b: b.update(pid=math.inf),
    "data_bytes is a list": lambda b: b.update(data_bytes=[]),
    "pickled is a number": lambda b: b.update(pickled=5),
    "blob sizes are text": lambda b: b.update(blobs=dict.fromkeys(b["blobs"], "x")),
    "blob sizes are negative": lambda b: b.update(blobs={key: [-1, -1] for key in b["blobs"]}),
    "blob digest is not one": lambda b: b.update(blobs={"sha1:00": [1, 129]}),
    "state is missing": lambda b: b.pop("state"),
    "state nested 2000 deep": lambda b: b.update(state=deep_list(2000)),
    "state nested 500 deep": lambda b: b.update(state=deep_list(500)),
    "layout unknown": lambda b: b.update(layout="zip"),
    "version is true": lambda b: b.update(version=True),
}

# Nodes of the state tree that cannot be decoded: found when loading (verify checks files).
CRAFTED_NODES: dict[str, Any] = {
    "array shape overflows": {"$array": {"dtype": "<f8", "shape": [0, 2**62, 2**62], "b64": ""}},
    "array shape too long": {"$array": {"dtype": "<f8", "shape": [1] * 70, "values": [1.0]}},
    "array values too deep": {"$array": {"dtype": "<f8", "shape": [1], "values": deep_list(70)}},
    "dtype nested deep": {"$array": {"dtype": {"fields": "[" * 300}, "shape": [1], "b64": ""}},
    "dtype of a huge item": {"$scalar": {"dtype": "<U999999999999", "value": "x"}},
    "int not hex": {"$int": "0xZZ"},
    "unknown tag": {"$module": "os"},
    "bytes not base64": {"$bytes": "!!not base64"},
    "bytes naming no blob": {"$bytes": {"nbytes": 5000, "blob": "xxh3_128:" + "0" * 32}},
    "dict key unhashable": {"$dict": [[{"$set": [1]}, 1]]},
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_manifest_is_damage_not_a_crash(
    template: tuple[Path, str, str], name: str
) -> None:
    """Each crafted field makes its checkpoint damaged: listed as damaged, skipped with a
    warning by load_checkpoint(), a CheckpointError by id, and no other exception anywhere."""
    body = read_body(template[0] / "manifests" / f"{template[2]}.json")
    CRAFTED[name](body)
    with crafted_copy(template, body) as (root, _, newest):
        results = exercise(root, newest)
        assert results["load"] == {"step": 1, "note": "intact"}
        assert isinstance(results["load_id"], CheckpointError)
        assert str(results["load_id"]).startswith(f"checkpoint {newest} is damaged")
        assert results["status"]["damaged"] == [newest]
        assert results["verify"]["ok"] is False
        assert results["verify"]["problems"][0].startswith(f"manifest of {newest}: ")
        assert not isinstance(results["save"], CheckpointError)
        assert results["cli verify"] == 1


@pytest.mark.parametrize("name", list(CRAFTED_NODES))
def test_a_crafted_state_node_is_damage_not_a_crash(
    template: tuple[Path, str, str], name: str
) -> None:
    """A state node that cannot be decoded makes loading skip its checkpoint (or raise
    CheckpointError by id), and no other exception escapes anything."""
    body = read_body(template[0] / "manifests" / f"{template[2]}.json")
    body["state"] = {"step": 2, "bad": CRAFTED_NODES[name]}
    with crafted_copy(template, body) as (root, _, newest):
        results = exercise(root, newest)
        assert results["load"] == {"step": 1, "note": "intact"}
        assert isinstance(results["load_id"], CheckpointError)
        assert str(results["load_id"]).startswith(f'checkpoint {newest} is damaged: state["bad"]')


def test_a_bad_tags_value_does_not_break_later_saves(template: tuple[Path, str, str]) -> None:
    """After a manifest with tags=5 is written, saves with retention keep working."""
    body = read_body(template[0] / "manifests" / f"{template[2]}.json")
    body["tags"] = 5
    with (
        crafted_copy(template, body) as (root, _, _),
        CheckpointManager(root, max_checkpoints=1) as ckpt,
    ):
        for step in range(3):
            ckpt.save_checkpoint({"step": step})
        assert ckpt.load_checkpoint() == {"step": 2}


# -- 10. FIFOs and symbolic links where files belong -----------------------------------------


def test_a_fifo_in_place_of_a_manifest_is_damage_and_never_blocks(tmp_path: Path) -> None:
    """A FIFO named like a manifest is reported damaged by list, status and verify, and
    never blocks them, the constructor or a load."""
    _, newest = checkpoint_pair(tmp_path)
    fifo = tmp_path / "manifests" / f"{newest}.json"
    fifo.unlink()
    os.mkfifo(fifo)
    results = run_bounded(lambda: exercise(tmp_path, newest), fifo)
    assert results["load"] == {"step": 1, "note": "intact"}
    assert results["status"]["damaged"] == [newest]
    assert "not a regular file" in results["verify"]["problems"][0]


def test_a_fifo_in_place_of_a_blob_is_damage_and_never_blocks(tmp_path: Path) -> None:
    """A FIFO in place of a blob makes its checkpoint damaged; a save of the same data
    writes the blob afresh instead of blocking on it."""
    _, newest = checkpoint_pair(tmp_path)
    fifo = tmp_path / "blobs" / hash_bytes(base_state()["kappa"]).replace(":", "-")
    fifo.unlink()
    os.mkfifo(fifo)

    def attempt() -> Any:
        with CheckpointManager(tmp_path, compression="none") as ckpt:
            assert ckpt.load_checkpoint() == {"step": 1, "note": "intact"}
            report = ckpt.verify_checkpoint(newest)
            ckpt.save_checkpoint(base_state())
            return report, ckpt.verify_checkpoint(newest)

    before, after = run_bounded(attempt, fifo)
    assert not before.ok
    assert "not a regular file" in before.problems[0]
    assert after.ok


@pytest.mark.parametrize("kind", ["manifest", "blob"])
def test_a_symlink_in_place_of_a_file_is_not_followed(tmp_path: Path, kind: str) -> None:
    """A manifest or blob that is a symbolic link, even to an intact copy, counts as damaged."""
    _, newest = checkpoint_pair(tmp_path)
    if kind == "manifest":
        link = tmp_path / "manifests" / f"{newest}.json"
    else:
        link = tmp_path / "blobs" / hash_bytes(base_state()["kappa"]).replace(":", "-")
    copy = tmp_path / "elsewhere"
    shutil.copyfile(link, copy)
    link.unlink()
    link.symlink_to(copy)
    with CheckpointManager(tmp_path, read_only=True) as reader:
        report = reader.verify_checkpoint(newest)
        with pytest.raises(CheckpointError, match=f"checkpoint {newest} is damaged"):
            reader.load_checkpoint(newest)
    assert not report.ok
    assert "not a regular file" in report.problems[0]


# -- 11. decompression bombs, and loading from anyone ----------------------------------------


def plant_bomb(root: Path, codec: str, declared: int = 16) -> str:
    """A checkpoint whose one bytes piece declares ``declared`` bytes but inflates to 64 MiB."""
    with CheckpointManager(root) as ckpt:
        info = ckpt.save_checkpoint({"step": 0})
    digest = hash_bytes(b"\x00" * declared)
    stored = get_codec(codec).compress(bytes(BOMB_BYTES))
    header = pack_blob_header(codec, declared, len(stored), hash_bytes(stored))
    (root / "blobs" / digest.replace(":", "-")).write_bytes(header + stored)
    body = read_body(info.path)
    body["state"] = {"bomb": {"$bytes": {"nbytes": declared, "blob": digest}}}
    body["blobs"] = {digest: [declared, len(header) + len(stored)]}
    info.path.write_bytes(seal(body))
    return info.id


def peak_bytes(call: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        try:
            result: Any = call()
        except CheckpointError as exc:
            result = exc
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4"])
def test_a_decompression_bomb_is_stopped_at_its_declared_size(tmp_path: Path, codec: str) -> None:
    """A compressed piece inflating far beyond its declared 16 bytes is damage, found
    without inflating it: loading and verifying stay under 8 MiB of memory."""
    pytest.importorskip({"gzip": "gzip", "zstd": "zstandard", "lz4": "lz4.frame"}[codec])
    checkpoint_id = plant_bomb(tmp_path, codec)
    with CheckpointManager(tmp_path, read_only=True) as reader:
        peak, outcome = peak_bytes(lambda: reader.load_checkpoint(checkpoint_id))
        assert isinstance(outcome, CheckpointError)
        assert "more than 16 bytes" in str(outcome)
        assert peak < PEAK_LIMIT
        peak, report = peak_bytes(lambda: reader.verify_checkpoint(checkpoint_id))
        assert not report.ok
        assert peak < PEAK_LIMIT


class _Marker:
    """Unpickling this creates a file: the proof that loading ran code from the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_a_hostile_directory_is_safe_to_load_with_allow_pickle_false(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With allow_pickle=False, crafted checkpoints (a decompression bomb, a manifest 2000
    deep, a FIFO, code hidden as a pickle the manifest does not list) run no code, stay in
    bounded memory and time: loading yields the one intact plain checkpoint, and the hidden
    pickle by id is refused."""
    pytest.importorskip("zstandard")
    marker = tmp_path / "code-ran"
    root = tmp_path / "ckpt"
    with CheckpointManager(root, max_checkpoints=20) as ckpt:
        ckpt.save_checkpoint({"step": 1, "plain": [1.5, "x"]})
        hidden = ckpt.save_checkpoint({"step": 2, "payload": _Marker(str(marker))})
        plant_bomb(root, "zstd")
        deep = ckpt.save_checkpoint({"step": 4})
        last = ckpt.save_checkpoint({"step": 5})
    body = read_body(hidden.path)
    body["pickled"] = []
    hidden.path.write_bytes(seal(body))
    body = read_body(deep.path)
    body["state"] = deep_list(2000)
    deep.path.write_bytes(seal(body))
    last.path.unlink()
    os.mkfifo(last.path)

    def load() -> Any:
        with CheckpointManager(root, read_only=True, allow_pickle=False) as reader:
            with pytest.raises(CheckpointError, match="refusing to unpickle"):
                reader.load_checkpoint(hidden.id)
            with pytest.raises(CheckpointError, match="refusing to unpickle"):
                reader.load_checkpoint()  # skips the FIFO, the deep one and the bomb
            return reader.load_checkpoint([info.id for info in reader.list_checkpoints()][-1])

    with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
        peak, state = peak_bytes(lambda: run_bounded(load, last.path))
    assert state == {"step": 1, "plain": [1.5, "x"]}
    skipped = [r.getMessage() for r in caplog.records if "was skipped" in r.getMessage()]
    assert len(skipped) == 3, skipped
    assert not marker.exists()
    assert peak < PEAK_LIMIT


# -- 12. links planted in a shared directory -------------------------------------------------


def test_a_planted_write_probe_link_truncates_nothing(tmp_path: Path) -> None:
    """A symbolic link planted where the write probe goes does not truncate its target."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    root = tmp_path / "shared"
    root.mkdir()
    (root / f".write-probe-{os.getpid()}").symlink_to(victim)
    with CheckpointManager(root) as ckpt:
        ckpt.save_checkpoint({"step": 1})
    assert victim.read_bytes() == b"precious"


def test_a_planted_lock_link_creates_nothing_elsewhere(tmp_path: Path) -> None:
    """A dangling symbolic link planted as .lock is not followed to create its target."""
    target = tmp_path / "created-through-the-link"
    root = tmp_path / "shared"
    root.mkdir()
    (root / ".lock").symlink_to(target)
    with CheckpointManager(root) as ckpt:
        ckpt.save_checkpoint({"step": 1})
        assert ckpt.load_checkpoint() == {"step": 1}
    assert not target.exists()


# -- fuzzing the manifest's fields and the state tree ----------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["<f8", "|u1", "<U3", "xxh3_128:" + "0" * 32, "$tuple", "$array", "C"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["$tuple", "$array", "dtype", "shape", "b64", "blob"])
            | st.text(max_size=6),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


def tree_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, item in node.items():
            yield from tree_paths(item, (*path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from tree_paths(item, (*path, i))


def replaced(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = replaced(node[path[0]], path[1:], value)  # type: ignore[index]
    return copy


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@given(data=st.data())
@FUZZ
def test_fuzzed_manifest_fields_never_escape_as_other_exceptions(
    template: tuple[Path, str, str], data: st.DataObject
) -> None:
    """Any top-level field replaced or removed: only CheckpointError escapes anything."""
    body = read_body(template[0] / "manifests" / f"{template[2]}.json")
    field = data.draw(st.sampled_from(sorted(body)))
    if data.draw(st.booleans()):
        body.pop(field)
    else:
        body[field] = data.draw(json_values)
    with crafted_copy(template, body) as (root, _, newest):
        exercise(root, newest)


@given(data=st.data())
@FUZZ
def test_fuzzed_state_trees_never_escape_as_other_exceptions(
    template: tuple[Path, str, str], data: st.DataObject
) -> None:
    """Any node of the state tree (a dtype, a shape, a tag, a blob name...) replaced by any
    JSON value: only CheckpointError escapes anything."""
    body = read_body(template[0] / "manifests" / f"{template[2]}.json")
    path = data.draw(st.sampled_from(list(tree_paths(body["state"]))))
    body["state"] = replaced(body["state"], path, data.draw(json_values))
    with crafted_copy(template, body) as (root, _, newest):
        exercise(root, newest)
