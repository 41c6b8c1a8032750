"""ManagerContext: the README's examples, coordination between managers, signals and crashes."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from lensing_ssc.cli import main as cli_main
from lensing_ssc.core.base.exceptions import InterruptedRunError, ResourceError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import (
    CacheManager,
    CheckpointManager,
    LogManager,
    ManagerContext,
    ProgressManager,
    ResourceManager,
    RunDir,
)

JOB = Path(__file__).with_name("context_job.py")


def quiet_config(run_dir: Path, **sections: Any) -> ProcessingConfig:
    """A config writing under ``run_dir`` with no console output."""
    sections.setdefault("logging", {"console": False, "format": "json"})
    sections.setdefault("progress", {"enabled": False})
    return ProcessingConfig(run_dir=run_dir, **sections)


def test_readme_coordinated_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's ManagerContext example works and builds all five managers."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LENSING_SSC_PROGRESS__ENABLED", "false")
    with ManagerContext(
        resource_limit_mb=8000,
        checkpoint_dir="./checkpoints",
        progress_total=1000,
        cache_size_mb=512,
        log_level="INFO",
    ) as ctx:
        ctx.resource.check_limits()
        ctx.progress.update(10)
        ctx.checkpoint.save_checkpoint({"step": 10})
        result = ctx.cache.get("key", default=None)
        status = ctx.get_manager_status()
    assert result is None
    assert set(status) == {"resource", "checkpoint", "progress", "cache", "log"}
    assert status["progress"]["current"] == 10
    assert status["progress"]["total"] == 1000
    assert isinstance(ctx.resource, ResourceManager)
    assert isinstance(ctx.checkpoint, CheckpointManager)
    assert isinstance(ctx.progress, ProgressManager)
    assert isinstance(ctx.cache, CacheManager)
    assert isinstance(ctx.log, LogManager)
    assert CheckpointManager("./checkpoints").load_checkpoint() == {"step": 10}
    json.dumps(status)


def test_a_checkpoint_dir_without_a_config_places_the_whole_run_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ManagerContext(checkpoint_dir=job/checkpoints): logs, cache, status under job/, not runs/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LENSING_SSC_PROGRESS__ENABLED", "false")
    with ManagerContext(checkpoint_dir="job/checkpoints", stop_signals=()) as ctx:
        ctx.save_checkpoint({"step": 1})
        ctx.cache.put("key", 1)
        ctx.log.get_logger("mine").info("hello")
        assert ctx.config.run_dir == Path("job")
    job = tmp_path / "job"
    names = sorted(p.name for p in job.iterdir())
    assert names == ["cache", "checkpoints", "logs", "run.lock", "status.json"]
    assert "hello" in (job / "logs" / "lensing_ssc.log").read_text()
    assert not (tmp_path / "runs").exists()
    with CheckpointManager(job / "checkpoints") as checkpoints:
        assert len(checkpoints.list_checkpoints()) == 1


def process_item_with_cache(item: int, cache: CacheManager) -> int:
    """The README pipeline example's per-item work: square, through the cache."""
    result = cache.get(("square", item))
    if result is None:
        result = item * item
        cache.put(("square", item), result)
    return result


def processing_pipeline(data: list[int], config: ProcessingConfig) -> list[int]:
    """The README's 'Integration with Processing Pipelines' example, made whole."""
    results: list[int] = []
    with ManagerContext(config=config) as ctx:
        ctx.log_operation_start("data_processing")
        state = ctx.load_checkpoint()
        start_idx = state.get("last_index", 0) if state else 0
        if state:
            results = list(state["results"])[:start_idx]
        for i, item in enumerate(data[start_idx:], start_idx):
            ctx.check_resources()
            results.append(process_item_with_cache(item, ctx.cache))
            ctx.update_progress(1)
            if i % 100 == 0:
                ctx.save_checkpoint({"last_index": i, "results": results})
        ctx.save_checkpoint({"completed": True, "results": results})
        ctx.log_operation_end("data_processing", success=True)
    return results


def test_readme_pipeline_example_runs_and_logs_the_operation(tmp_path: Path) -> None:
    """The README's pipeline example runs, checkpoints, and logs its operation with a duration."""
    config = quiet_config(tmp_path / "run")
    results = processing_pipeline(list(range(250)), config)
    assert results == [i * i for i in range(250)]
    final = CheckpointManager(config=config).load_checkpoint()
    assert final["state"]["completed"] is True
    lines = [json.loads(x) for x in config.log_file.read_text().splitlines()]
    ends = [x for x in lines if x.get("event") == "operation_end"]
    assert ends
    assert ends[0]["operation"] == "data_processing"
    assert ends[0]["success"] is True


def test_checkpoint_carries_progress_and_load_restores_it(tmp_path: Path) -> None:
    """A resumed context shows the saved progress position and returns the user's state."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(progress_total=1000, config=config) as ctx:
        ctx.update_progress(420)
        ctx.save_checkpoint({"last_index": 419})
    with ManagerContext(progress_total=1000, config=config) as ctx:
        state = ctx.load_checkpoint()
        status = ctx.progress.get_status()
    assert state == {"last_index": 419}
    assert status["current"] == 420
    assert status["resumed_from"] == 420


def test_close_order_is_reverse_and_a_closing_error_never_hides_the_body_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Managers close in reverse order; the body's exception wins over a close failure."""
    closed: list[str] = []
    ctx = ManagerContext(config=quiet_config(tmp_path / "run"))
    for attr in ("progress", "cache", "checkpoint", "resource", "log"):
        manager = getattr(ctx, attr)
        original = manager.close

        def close(original: Any = original, attr: str = attr) -> None:
            closed.append(attr)
            original()
            if attr == "cache":
                raise OSError("disk vanished while closing the cache")

        monkeypatch.setattr(manager, "close", close)
    with pytest.raises(ValueError, match="body failed"), ctx:
        raise ValueError("body failed")
    assert closed == ["progress", "cache", "checkpoint", "resource", "log"]


def test_a_closing_error_is_raised_after_every_manager_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a body error, a close failure is raised, once everything else is closed."""
    ctx = ManagerContext(config=quiet_config(tmp_path / "run"))

    def broken_close() -> None:
        raise OSError("cannot close checkpoints")

    monkeypatch.setattr(ctx.checkpoint, "close", broken_close)
    with pytest.raises(OSError, match="cannot close checkpoints"), ctx:
        pass
    assert ctx.log.closed
    assert ctx.cache.get_status()["closed"] is True


def test_memory_warning_shrinks_the_cache(tmp_path: Path) -> None:
    """When the job passes its memory warning level, the cache's memory tier is freed."""
    config = quiet_config(tmp_path / "run", cache={"disk": False})
    ctx = ManagerContext(resource_limit_mb=100_000, config=config)
    with ctx:
        for i in range(8):
            ctx.cache.put(f"map{i}", np.ones(2**17))  # 1 MiB each
        before = ctx.cache.get_stats().bytes
        usage = ctx.resource.get_current_usage()
        ctx._on_resource_warning(usage, {"memory": "memory at 85% of its limit"})
        after = ctx.cache.get_stats().bytes
    assert before >= 8 * 2**20
    assert after <= before / 2


def test_resource_breach_with_graceful_stop_saves_and_stops(tmp_path: Path) -> None:
    """A limit breach with graceful stop on checkpoints the registered state and raises."""
    config = quiet_config(tmp_path / "run", resources={"monitor_interval": 0.05})

    def loop() -> None:
        with ManagerContext(resource_limit_mb=1, graceful_stop=True, config=config) as ctx:
            ctx.save_on_stop(lambda: {"last_index": 41})
            for _ in range(200):
                ctx.check_resources()
                time.sleep(0.01)

    with pytest.raises(InterruptedRunError, match="rerun to resume") as info:
        loop()
    assert "resource limit exceeded" in str(info.value)
    newest = CheckpointManager(config=config).list_checkpoints()[0]
    assert "stop" in newest.tags
    assert CheckpointManager(config=config).load_checkpoint()["state"] == {"last_index": 41}


def test_resource_breach_without_graceful_stop_raises_resource_error(tmp_path: Path) -> None:
    """Without graceful stop, a breach raises ResourceError from check_resources."""
    config = quiet_config(tmp_path / "run")
    with (
        pytest.raises(ResourceError, match="memory"),
        ManagerContext(resource_limit_mb=1, config=config) as ctx,
    ):
        ctx.check_resources()


def test_signal_requests_graceful_stop_and_handlers_are_restored(tmp_path: Path) -> None:
    """SIGUSR1 (SLURM's early warning) makes the next call raise; old handlers come back."""
    before = signal.getsignal(signal.SIGUSR1)
    config = quiet_config(tmp_path / "run")
    during: list[Any] = []

    def job() -> None:
        with ManagerContext(progress_total=10, config=config) as ctx:
            during.append(signal.getsignal(signal.SIGUSR1))
            ctx.update_progress(1)
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.05)
            ctx.update_progress(1)

    with pytest.raises(InterruptedRunError) as info:
        job()
    assert during[0] is not before
    assert info.value.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before
    status = json.loads(config.status_file.read_text())
    assert status["state"] == "interrupted"


def test_a_signal_arriving_while_a_stop_is_being_recorded_does_not_deadlock() -> None:
    """A handler runs in the thread it interrupts: recording a stop there must not self-block."""
    from lensing_ssc.processing.managers._signals import StopSignals

    stops = StopSignals()
    done = threading.Event()

    def nested() -> None:
        with stops._lock:  # as a first handler inside request_stop, when the second one runs
            stops.request_stop("SIGINT")
        done.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    assert done.wait(5), "request_stop blocked on the lock its own thread held"
    assert stops.request is not None
    assert stops.request.reason == "SIGINT"


def _ctrl_c_and_wait() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)  # the handler runs at once, between bytecodes of this thread


def test_a_first_ctrl_c_during_another_stop_is_acknowledged_and_a_second_stops_at_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With a breach's stop pending, Ctrl-C says so; only the next Ctrl-C interrupts."""
    with ManagerContext(config=quiet_config(tmp_path / "run")) as ctx:
        ctx.request_stop("resource limit exceeded: memory")
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        except KeyboardInterrupt:
            pytest.fail("the first Ctrl-C interrupted instead of saying a stop is under way")
        assert capfd.readouterr().err == (
            "\nSIGINT: already stopping (resource limit exceeded: memory); "
            "Ctrl-C again to stop at once\n"
        )
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c_and_wait()


def test_handlers_are_not_installed_outside_the_main_thread(tmp_path: Path) -> None:
    """A context entered in a worker thread leaves signal handling alone."""
    before = signal.getsignal(signal.SIGTERM)
    seen: list[Any] = []

    def body() -> None:
        with ManagerContext(config=quiet_config(tmp_path / "run")):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


def test_status_file_is_refreshed_and_read_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status.json is rewritten while the run lives and `lensing-ssc status` shows it."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(progress_total=50, config=config, status_interval=0.05) as ctx:
        first = json.loads(config.status_file.read_text())["updated"]
        ctx.update_progress(7)
        time.sleep(0.3)
        running = json.loads(config.status_file.read_text())
        assert running["updated"] > first
        assert running["state"] == "running"
        assert running["managers"]["progress"]["current"] == 7
    assert cli_main(["status", str(config.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out
    assert "7/50" in out


def test_start_and_close_flush_nothing_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A context's start and close call no fsync: status.json is replaced, never flushed."""
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config):
        assert json.loads(config.status_file.read_text())["state"] == "running"
    assert json.loads(config.status_file.read_text())["state"] == "finished"
    assert synced == []


def test_map_runs_resumes_and_counts_progress(tmp_path: Path) -> None:
    """ctx.map returns results in order, skips finished items on rerun, and counts progress."""
    config = quiet_config(tmp_path / "run")
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    with ManagerContext(config=config) as ctx:
        first = ctx.map(square, range(20), name="squares")
    with ManagerContext(config=config) as ctx:
        again = ctx.map(square, range(25), name="squares")
        progress = ctx.progress.get_status()
    assert first.results == [i * i for i in range(20)]
    assert again.results == [i * i for i in range(25)]
    assert sorted(calls) == list(range(20)) + list(range(20, 25))
    assert progress["children"] == [] or all(c["current"] == 25 for c in progress["children"])


def test_a_resumed_map_shows_the_restored_items_as_resumed_and_counts_no_rate_for_them(
    tmp_path: Path,
) -> None:
    """On rerun, the map's row is "resumed at 20" with no rate until this run finishes an item."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config) as ctx:
        ctx.map(abs, range(20), name="values")
    seen: list[dict[str, Any]] = []
    with ManagerContext(config=config) as ctx:

        @functools.wraps(abs)  # abs, peeking at the progress: the journal's function
        def look(x: int) -> int:
            if not seen:
                seen.append(ctx.progress.get_status()["children"][0])
            return abs(x)

        ctx.map(look, range(30), name="values")
    row = seen[0]
    counts = (row["name"], row["current"], row["total"], row["resumed_from"])
    assert counts == ("values", 20, 30, 20)
    assert (row["rate"], row["eta"]) == (None, None)  # 20 restored items are no work of this run


def test_map_carries_log_context_into_threads(tmp_path: Path) -> None:
    """Records logged by thread workers carry the caller's context fields."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config) as ctx:
        logger = ctx.log.get_logger("lensing_ssc.test_worker")

        def work(x: int) -> int:
            logger.info("item %d", x)
            return x

        with ctx.log.log_context(map_id=7):
            ctx.map(work, range(4), name="ctx", executor="threads", max_workers=2)
    records = [json.loads(x) for x in config.log_file.read_text().splitlines()]
    items = [r for r in records if r["message"].startswith("item ")]
    assert len(items) == 4
    assert all(r["map_id"] == 7 for r in items)


def logged_pid(x: int) -> int:
    """Log one line per item and return the pid of the process that ran it."""
    logging.getLogger("lensing_ssc.test_worker").info("item %d", x)
    time.sleep(0.01)
    return os.getpid()


def test_map_keeps_its_process_pool_for_the_next_call_and_closes_it_on_exit(
    tmp_path: Path,
) -> None:
    """Successive process maps share one pool, labelled per call in the log; exit ends it."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config, executor="processes", max_workers=2) as ctx:
        first = set(ctx.map(logged_pid, range(8), name="first").results)
        second = set(ctx.map(logged_pid, range(8, 16), name="second").results)
        single = set(ctx.map(logged_pid, range(16, 20), name="single", max_workers=1).results)
    workers = first | second
    assert len(workers) <= 2
    assert os.getpid() not in workers
    assert single.isdisjoint(workers)  # other settings, another pool
    assert not any(psutil.pid_exists(pid) for pid in workers | single)
    records = [json.loads(x) for x in config.log_file.read_text().splitlines()]
    labels = {r["message"]: r["task"] for r in records if r["message"].startswith("item ")}
    assert labels == {
        **{f"item {i}": "first" for i in range(8)},
        **{f"item {i}": "second" for i in range(8, 16)},
        **{f"item {i}": "single" for i in range(16, 20)},
    }


def test_runner_for_answers_for_the_runner_that_map_then_uses(tmp_path: Path) -> None:
    """ctx.runner_for() gives the very runner the next map with those settings runs on."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config, executor="threads", max_workers=3) as ctx:
        runner = ctx.runner_for()
        answers = (runner.max_workers, runner.runs_in_this_process, runner.forks_workers)
        idle = runner.get_status()["workers"]
        ctx.map(abs, [-1, 2], name="abs")
        started = runner.get_status()["workers"]
        other = ctx.runner_for("processes", max_workers=2)
    assert answers == (3, True, False)
    assert (idle, started) == (0, 3)  # map started this runner's pool, of the size it said
    assert other is not runner
    assert (other.max_workers, other.runs_in_this_process) == (2, False)


def test_map_journals_and_status_go_where_run_dir_says(tmp_path: Path) -> None:
    """The context writes its status file and each map's journal at RunDir's paths."""
    config = quiet_config(tmp_path / "run")
    layout = RunDir.from_config(config)
    with ManagerContext(config=config) as ctx:
        ctx.map(abs, [-1, 2], name="signs/abs")
    assert layout.journal("signs/abs").parent == tmp_path / "run" / "tasks"
    assert layout.journal("signs/abs").name.startswith("signs_abs-")
    assert layout.journal("signs/abs").is_file()
    assert json.loads(layout.status_file.read_text())["state"] == "finished"


def run_job(run_dir: Path, mode: str, n: int, delay: float = 0.02) -> subprocess.Popen[str]:
    """Start context_job.py in a subprocess."""
    return subprocess.Popen(
        [sys.executable, str(JOB), str(run_dir), mode, str(n), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def executions(run_dir: Path) -> list[int]:
    """Items executed so far, in order, across runs."""
    path = run_dir / "executions.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def wait_for_executions(run_dir: Path, count: int, timeout: float = 60.0) -> None:
    """Wait until at least ``count`` items were executed."""
    deadline = time.monotonic() + timeout
    while len(executions(run_dir)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not reach {count} executions")
        time.sleep(0.02)


def test_readme_pipeline_killed_and_rerun_gives_the_same_results(tmp_path: Path) -> None:
    """SIGKILLed mid-run, the README's pipeline resumes, redoing only items since its checkpoint."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = run_job(run_dir, "pipeline", 60)
    wait_for_executions(run_dir, 27)
    job.kill()
    job.communicate()
    killed_at = len(executions(run_dir))
    rerun = run_job(run_dir, "pipeline", 60)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert json.loads((run_dir / "results.json").read_text()) == [i * i for i in range(60)]
    done = executions(run_dir)
    redone = len(done) - 60
    # Checkpoints every 10 items: at most the items since the last one are done twice.
    assert 0 <= redone <= 11, (killed_at, redone)
    assert sorted(set(done)) == list(range(60))


def test_sigterm_during_map_saves_finished_items_and_rerun_completes(tmp_path: Path) -> None:
    """SIGTERM stops ctx.map within seconds with every finished item kept for the rerun."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = run_job(run_dir, "map", 80, 0.05)
    wait_for_executions(run_dir, 10)
    sent = time.monotonic()
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert job.returncode != 0
    assert "InterruptedRunError" in err
    assert "SIGTERM" in err
    first_run = len(executions(run_dir))
    rerun = run_job(run_dir, "map", 80, 0.0)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert json.loads((run_dir / "results.json").read_text()) == [i * i for i in range(80)]
    total = len(executions(run_dir))
    # The rerun does what the first run had not finished, plus at most the in-flight items.
    assert total - 80 <= 4, (first_run, total)
    log = (run_dir / "logs" / "lensing_ssc.log").read_text()
    assert "stopping gracefully: SIGTERM" in log


def test_second_sigint_during_a_graceful_stop_stops_at_once_and_keeps_finished_items(
    tmp_path: Path, children: Any
) -> None:
    """Ctrl-C twice: running items end, not awaited; status says interrupted; the rerun resumes."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = children.start(
        [sys.executable, str(JOB), str(run_dir), "map", "20", "4.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
    )
    wait_for_executions(run_dir, 4)  # items 0 and 1 done, 2 and 3 running for 4 s
    time.sleep(0.3)
    workers = [psutil.Process(c.pid) for c in psutil.Process(job.pid).children(recursive=True)]
    os.killpg(job.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    time.sleep(0.5)
    assert job.poll() is None  # stopping gracefully: waiting for the running items
    os.killpg(job.pid, signal.SIGINT)
    sent = time.monotonic()
    _, err = job.communicate(timeout=30)
    assert time.monotonic() - sent < 2.0, err  # the running items had 3 s left
    assert job.returncode == -signal.SIGINT, err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted"
    assert status["stop_reason"] == "SIGINT, then SIGINT: stopped at once without waiting"
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]
    first_run = len(executions(run_dir))
    rerun = run_job(run_dir, "map", 20, 0.0)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert json.loads((run_dir / "results.json").read_text()) == [i * i for i in range(20)]
    assert len(executions(run_dir)) - first_run == 18  # all but the two finished items
    log = (run_dir / "logs" / "lensing_ssc.log").read_text()
    assert "SIGINT, then SIGINT: stopped at once without waiting; what finished is saved" in log
