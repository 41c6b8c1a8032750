"""CheckpointManager under faults: bad directories, a full disk, bit rot, SIGKILL, rivals.

Crash tests fork real processes and kill them with real SIGKILLs at random moments; the
parent then opens the directory with a fresh manager, as a restarted job would.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import hash_bytes, is_temp_file
from lensing_ssc.processing.managers import CheckpointManager

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork, /proc and flock semantics")

LOCK_FILES = (".lock", ".commit.lock")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in LOCK_FILES)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_file(p)]


def blob_names(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def referenced_blob_names(ckpt: CheckpointManager) -> set[str]:
    names = set()
    for info in ckpt.list_checkpoints():
        text = info.path.read_text()
        body = json.loads(text[: text.rindex("\nchecksum ")])
        names.update(digest.replace(":", "-") for digest in body["blobs"])
    return names


def fork(child: Callable[[int], None]) -> tuple[int, int]:
    """Run ``child(write_fd)`` in a forked process; returns (pid, read_fd)."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_fd)
            child(write_fd)
        except BaseException as exc:
            os.write(write_fd, f"E{type(exc).__name__}: {exc}\n".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def drain(read_fd: int) -> list[str]:
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    return b"".join(chunks).decode().splitlines()


# -- bad directories ---------------------------------------------------------------------


def test_directory_below_a_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    """A checkpoint_dir that cannot be created raises CheckpointError naming it and why."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        CheckpointError, match=r"cannot use checkpoint directory '.*file/ckpt': Not a directory"
    ) as info:
        CheckpointManager(blocker / "ckpt")
    assert info.value.value == str(blocker / "ckpt")
    with pytest.raises(CheckpointError, match="File exists"):
        CheckpointManager(blocker)


def test_unwritable_directory_is_a_checkpoint_error() -> None:
    """A directory the process may not write raises CheckpointError saying permission denied."""
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        os.chmod(top, 0o755)
        locked = Path(top) / "locked"
        locked.mkdir(mode=0o555)
        os.chmod(locked, 0o555)

        def attempt(out: int) -> None:
            if os.geteuid() == 0:  # root ignores permissions: become nobody first
                os.setgid(65534)
                os.setuid(65534)
            try:
                CheckpointManager(locked)
            except CheckpointError as exc:
                os.write(out, f"M{exc}\n".encode())

        pid, read_fd = fork(attempt)
        lines = drain(read_fd)
        os.waitpid(pid, 0)
    assert [line[:1] for line in lines] == ["M"], lines
    assert f"cannot use checkpoint directory '{locked}': Permission denied" in lines[0]


# -- a full disk -------------------------------------------------------------------------


@pytest.fixture
def disk_budget(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[int]]:
    """Make writes under tmp_path fail with ENOSPC once budget[0] bytes are used up."""
    budget = [sys.maxsize]
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if not target.startswith(str(tmp_path)):
            return real_write(fd, data)
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = real_write(fd, memoryview(data)[: budget[0]])
        budget[0] -= done
        return done

    monkeypatch.setattr(os, "write", write)
    return budget


@pytest.mark.parametrize("budget_bytes", [0, 100, 150_000, 400_200, 800_300])
def test_disk_full_during_save_keeps_earlier_checkpoints(
    tmp_path: Path, disk_budget: list[int], budget_bytes: int
) -> None:
    """ENOSPC at any point of a save raises CheckpointError, leaves no temp file, loses nothing."""
    with CheckpointManager(tmp_path, compression="none", max_checkpoints=1) as ckpt:
        first = ckpt.save_checkpoint({"step": 1, "a": np.ones(50_000)})
        # The new save needs two 400 KB blobs, then a manifest: fail in each of them.
        disk_budget[0] = budget_bytes
        big = {"step": 2, "a": np.arange(50_000.0), "b": np.arange(50_000.0) + 1}
        with pytest.raises(CheckpointError, match="No space left on device") as info:
            ckpt.save_checkpoint(big)
        assert "earlier checkpoints are intact" in str(info.value)
        assert temp_files(tmp_path) == []
        assert [c.id for c in ckpt.list_checkpoints()] == [first.id]
        np.testing.assert_array_equal(ckpt.load_checkpoint()["a"], np.ones(50_000))
        disk_budget[0] = sys.maxsize
        assert ckpt.save_checkpoint(big).step == 2
        assert ckpt.load_checkpoint()["step"] == 2


# -- bit rot ------------------------------------------------------------------------------


class _Note:
    def __init__(self, text: str) -> None:
        self.text = text


def _varied_state() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    return {
        "step": 3,
        "raw": rng.random(8000),  # incompressible: a raw blob
        "smooth": np.repeat(np.arange(100.0), 100),  # compressible: a zstd blob
        "bytes": bytes(range(256)) * 40,
        "note": _Note("x" * 6000),  # a pickle blob
        "inline": {"k": [1, 2.5, None], 7: np.arange(4)},
    }


def test_a_thousand_random_byte_flips_are_all_detected(tmp_path: Path) -> None:
    """Any changed byte in any stored file makes verify fail and loading by id raise."""
    pytest.importorskip("zstandard", reason="zstd needs the fast extra")
    rng = random.Random(1234)
    with CheckpointManager(tmp_path, compression="zstd") as ckpt:
        info = ckpt.save_checkpoint(_varied_state())
        files = all_files(tmp_path)
        assert len(files) == 5  # the manifest and four blobs
        originals = {path: path.read_bytes() for path in files}
        undetected = []
        for trial in range(1000):
            path = rng.choice(files)
            data = bytearray(originals[path])
            offset = rng.randrange(len(data))
            data[offset] ^= rng.randrange(1, 256)
            path.write_bytes(data)
            try:
                if ckpt.verify_checkpoint(info.id).ok:
                    undetected.append((path.name, offset, "verify"))
                with pytest.raises(CheckpointError):
                    ckpt.load_checkpoint(info.id, mmap=trial % 10 == 0)
            finally:
                path.write_bytes(originals[path])
        assert undetected == []
        assert ckpt.verify_checkpoint(info.id).ok


def test_damaged_newest_falls_back_with_a_log_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """load_checkpoint() logs the damage (no Python warning), returns the newest intact one."""
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        ckpt.save_checkpoint({"step": 1, "kappa": np.zeros(10_000)})
        newest = ckpt.save_checkpoint({"step": 2, "kappa": np.ones(10_000)})
        algorithm, hexdigest = hash_bytes(np.ones(10_000)).split(":")
        blob = tmp_path / "blobs" / f"{algorithm}-{hexdigest}"
        data = bytearray(blob.read_bytes())
        data[5000] ^= 0x10
        blob.write_bytes(data)
        with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
            state = ckpt.load_checkpoint()
        assert [r.name for r in caplog.records] == ["lensing_ssc.processing.managers.checkpoint"]
        assert re.search(
            rf'{newest.id} is damaged .*state\["kappa"\].*checksum mismatch', caplog.text
        )
        assert state["step"] == 1
        with pytest.raises(
            CheckpointError, match=rf'checkpoint {newest.id} is damaged: state\["kappa"\]'
        ):
            ckpt.load_checkpoint(newest.id)
        report = ckpt.verify_checkpoint(newest.id)
        assert not report.ok
        assert report.problems[0].startswith('state["kappa"] (blob blobs/')


def test_missing_blob_and_truncated_manifest_are_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deleted blob or a truncated manifest is reported as damage, never loaded as good."""
    with CheckpointManager(tmp_path, compression="none", max_checkpoints=5) as ckpt:
        ckpt.save_checkpoint({"step": 1})
        second = ckpt.save_checkpoint({"step": 2, "x": np.full(10_000, 2.0)})
        third = ckpt.save_checkpoint({"step": 3})
        third.path.write_bytes(third.path.read_bytes()[:-10])
        for blob in (tmp_path / "blobs").rglob("*-*"):
            blob.unlink()
        with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
            assert ckpt.load_checkpoint() == {"step": 1}
        messages = [record.getMessage() for record in caplog.records]
        assert any(third.id in m and "checksum" in m for m in messages)
        assert any(second.id in m and "blob file is missing" in m for m in messages)
        assert [c.step for c in ckpt.list_checkpoints()] == [2, 1]  # damaged manifest omitted
        assert ckpt.get_status()["damaged"] == [third.id]


# -- SIGKILL at random moments -----------------------------------------------------------


class _DamageRecords(logging.Handler):
    """Collects the checkpoint manager's WARNING records: each damaged checkpoint it skipped."""

    logger = logging.getLogger("lensing_ssc.processing.managers.checkpoint")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _DamageRecords:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)


def _state_at(step: int) -> dict[str, Any]:
    return {
        "step": step,
        "arrays": [np.full(2048, step - (step - j) % 4, dtype=np.float64) for j in range(6)],
        "big": np.full(60_000, float(step)),
        "log": list(range(step % 40)),
        "meta": {"k": step, 3: (step, "x"), "ok": True},
    }


def _assert_state(state: dict[str, Any], step: int) -> None:
    expected = _state_at(step)
    assert state["step"] == step
    for got, want in zip(state["arrays"], expected["arrays"], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(state["big"], expected["big"])
    assert state["log"] == expected["log"]
    assert state["meta"] == expected["meta"]


def _saving_job(directory: Path, use_async: bool) -> Callable[[int], None]:
    def job(out: int) -> None:  # pragma: no cover - runs in the child
        ckpt = CheckpointManager(directory, max_checkpoints=2, compression="auto")
        state = ckpt.load_checkpoint()
        step = -1 if state is None else state["step"]
        os.write(out, f"L{step}\n".encode())
        while True:
            step += 1
            if use_async:
                future = ckpt.save_checkpoint_async(_state_at(step))
                future.add_done_callback(lambda f, s=step: os.write(out, f"S{s}\n".encode()))
            else:
                ckpt.save_checkpoint(_state_at(step))
                os.write(out, f"S{step}\n".encode())

    return job


def _kill_and_check(directory: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    expected: int | None = None  # the newest step known to be committed
    for round_no in range(rounds):
        pid, read_fd = fork(_saving_job(directory, use_async=round_no % 3 == 2))
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        lines = drain(read_fd)
        assert os.WIFSIGNALED(status), lines
        assert not [line for line in lines if line.startswith("E")], lines
        steps = [int(line[1:]) for line in lines if line[0] in "LS"]
        committed = max(steps) if steps else expected
        with _DamageRecords() as damage:  # a damaged checkpoint would be logged: fail then
            fresh = CheckpointManager(directory, max_checkpoints=2)
            state = fresh.load_checkpoint()
            if committed is None or committed < 0:
                assert state is None or state["step"] == 0
            else:
                assert state is not None
                assert state["step"] in (committed, committed + 1), (committed, lines[-3:])
            if state is not None:
                _assert_state(state, state["step"])
                expected = state["step"]
            for info in fresh.list_checkpoints():
                assert fresh.verify_checkpoint(info.id).ok
            assert temp_files(directory) == []
            assert blob_names(directory) == referenced_blob_names(fresh)
            fresh.close()
        assert damage.messages == []


def test_sigkill_at_random_moments_never_loses_the_last_state(tmp_path: Path) -> None:
    """30 SIGKILLs during saves, retention and clean-up: a fresh manager loads a whole state."""
    _kill_and_check(tmp_path, rounds=30, seed=2024)


@pytest.mark.slow
def test_sigkill_two_hundred_times(tmp_path: Path) -> None:
    """200 SIGKILLs at random moments: every restart loads the newest or the previous state."""
    _kill_and_check(tmp_path, rounds=200, seed=99)


def test_killed_job_resumes_in_a_new_interpreter(tmp_path: Path) -> None:
    """A job SIGKILLed mid-run and restarted as a new Python process continues its steps."""
    script = (
        "import sys, numpy as np\n"
        "from lensing_ssc.processing.managers import CheckpointManager\n"
        "ckpt = CheckpointManager(sys.argv[1], max_checkpoints=2)\n"
        "state = ckpt.load_checkpoint() or {'step': -1, 'seen': []}\n"
        "print('resumed', state['step'], flush=True)\n"
        "while True:\n"
        "    state = {'step': state['step'] + 1, 'seen': state['seen'] + [state['step'] + 1],\n"
        "             'kappa': np.full(50_000, state['step'] + 1.0)}\n"
        "    ckpt.save_checkpoint(state)\n"
    )
    resumed = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        resumed.append(int(proc.stdout.readline().split()[1]))
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert resumed[0] == -1
    assert resumed[1] > resumed[0]
    assert resumed[2] > resumed[1]
    with CheckpointManager(tmp_path) as ckpt:
        state = ckpt.load_checkpoint()
    assert state["seen"] == list(range(state["step"] + 1))
    assert state["kappa"][0] == state["step"]


# -- several processes, one directory ----------------------------------------------------


def test_processes_sharing_a_directory_write_whole_distinct_checkpoints(tmp_path: Path) -> None:
    """Three writers (small retention) and a reader at once: every checkpoint whole, none mixed."""
    shared = np.arange(20_000.0)  # identical in every writer: one blob, raced for

    def writer(worker: int) -> Callable[[int], None]:
        def job(out: int) -> None:  # pragma: no cover - runs in the child
            with CheckpointManager(tmp_path, max_checkpoints=3) as ckpt:
                for i in range(12):
                    info = ckpt.save_checkpoint(
                        {
                            "worker": worker,
                            "i": i,
                            "own": np.full(5000, worker * 100.0 + i),
                            "shared": shared,
                        }
                    )
                    os.write(out, f"S{info.id}\n".encode())

        return job

    def reader(out: int) -> None:  # pragma: no cover - runs in the child
        with _DamageRecords() as damage, CheckpointManager(tmp_path, max_checkpoints=3) as ckpt:
            for _ in range(60):
                state = ckpt.load_checkpoint()
                if state is not None and (
                    state["own"][0] != state["worker"] * 100.0 + state["i"]
                    or not np.array_equal(state["shared"], shared)
                ):
                    os.write(out, b"Emixed state\n")
                time.sleep(0.002)
        for message in damage.messages:
            os.write(out, f"E{message}\n".encode())

    children = [fork(writer(w)) for w in range(3)] + [fork(reader)]
    outputs = []
    for pid, read_fd in children:
        outputs.append(drain(read_fd))
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0, outputs[-1]
    assert [line for lines in outputs for line in lines if line.startswith("E")] == []
    ids = [line[1:] for lines in outputs for line in lines if line.startswith("S")]
    assert len(ids) == len(set(ids)) == 36
    with CheckpointManager(tmp_path, max_checkpoints=3) as ckpt:
        infos = ckpt.list_checkpoints()
        assert 3 <= len(infos) <= 36
        for info in infos:
            assert ckpt.verify_checkpoint(info.id).ok
            state = ckpt.load_checkpoint(info.id)
            assert state["own"][0] == state["worker"] * 100.0 + state["i"]
        ckpt.save_checkpoint({"final": True})  # retention and collection run once more, alone
        assert blob_names(tmp_path) == referenced_blob_names(ckpt)


def test_disk_full_during_a_large_pipelined_save(tmp_path: Path, disk_budget: list[int]) -> None:
    """ENOSPC in a save hashed ahead on a helper thread still fails cleanly and stops it."""
    with CheckpointManager(tmp_path, compression="none") as ckpt:
        ckpt.save_checkpoint({"step": 1})
        disk_budget[0] = 10 << 20  # the second of three 8 MiB arrays hits the full disk
        big = {"a": [np.full(1 << 20, float(i)) for i in range(3)]}
        with pytest.raises(CheckpointError, match="No space left on device"):
            ckpt.save_checkpoint(big)
        assert temp_files(tmp_path) == []
        assert ckpt.load_checkpoint() == {"step": 1}
    assert not any(t.name.startswith("lensing_ssc-checkpoint-hash") for t in threading.enumerate())


def test_a_failed_clean_up_is_a_log_record_and_in_the_status_not_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Retention that cannot delete keeps the save, logs a WARNING and shows in get_status()."""
    from lensing_ssc.processing.managers.checkpoint import _manager

    def refuse(*args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_manager, "maintain", refuse)
    with (
        CheckpointManager(tmp_path) as ckpt,
        caplog.at_level(logging.WARNING, logger="lensing_ssc"),
    ):
        info = ckpt.save_checkpoint({"step": 1})  # no Python warning (filterwarnings=error)
        assert ckpt.load_checkpoint(info.id) == {"step": 1}
        status = ckpt.get_status()
    message = f"clean-up of {tmp_path} failed: [Errno 13] Permission denied"
    assert {(r.name, r.getMessage()) for r in caplog.records} == {
        ("lensing_ssc.processing.managers.checkpoint", message)  # on opening, and after the save
    }
    assert status["last_error"] == message
