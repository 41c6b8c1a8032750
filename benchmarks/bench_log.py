"""LogManager against structlog, python-json-logger and the stdlib, in one process.

What is compared (medians of repeats, contenders' order rotated so load noise cancels):

1. JSON records, in bursts of ``BURST`` records
   (``logger.info("processing item", extra={"item": i})``), three costs per record:
   *caller CPU*, the CPU time of the logging thread during the burst
   (``time.thread_time``: what the code that logs pays, whatever else the machine runs);
   *total CPU*, the process's CPU time (``time.process_time``, every thread) from the start
   of the burst until every record is in the file (``flush()``, or the queue listener
   drained): the caller's and the writer thread's work together; *caller wall*, the burst's
   wall time, which also holds the writer's turns at the interpreter lock and other jobs'.
   * ours: ``LogManager(format_type="json", file_path=..., console=False)``; the writer
     thread runs as usual (it formats while the burst goes on when it wakes up).
   * ours, stdlib json: the same manager writing its lines with the stdlib encoder
     (``JsonFormatter(encode=encode_stdlib)``), as on a machine without orjson.
   * structlog + orjson, the anchor: the configuration of structlog's performance page,
     "as fast as it gets": ``make_filtering_bound_logger(INFO)``,
     ``cache_logger_on_first_use=True``, processors ``merge_contextvars, add_log_level,
     format_exc_info, TimeStamper(fmt="iso", utc=True), JSONRenderer(serializer=
     orjson.dumps)``, ``BytesLoggerFactory`` on a file, a bound local logger. Synchronous:
     its caller cost is its whole cost.
   * structlog + json: the same with the stdlib serializer, ``JSONRenderer()`` and
     ``WriteLoggerFactory`` (what to compare with where orjson is not installed).
   * stdlib + python-json-logger: ``FileHandler`` with ``JsonFormatter`` (synchronous),
     and the same behind ``QueueHandler`` + ``QueueListener``.
2. A call below the level: ``logger.debug(...)`` at INFO, ours against a plain stdlib
   logger at INFO.
3. 4 threads x 100 000 records: exactly 400 000 lines, each (thread, i) once; time
   against stdlib ``QueueHandler`` + ``QueueListener`` + python-json-logger.
4. 4 processes x 25 000 records into one file rotating at 1 MB: every record exactly
   once across the files; ours (``worker_config``/``attach_worker``, spawn) against the
   stdlib cookbook (``QueueHandler`` on a ``multiprocessing.Queue``, ``QueueListener``
   with ``RotatingFileHandler`` + python-json-logger in the parent).

Run: ``python benchmarks/bench_log.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import logging.handlers
import multiprocessing
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog
from pythonjsonlogger.json import JsonFormatter

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log._format import JsonFormatter as OurJsonFormatter
from lensing_ssc.processing.managers.log._json import encode_stdlib
from lensing_ssc.processing.managers.log._manager import LogWorkerConfig, list_backups

BURST = 20_000


def _median_us(samples: list[float], n: int) -> float:
    return statistics.median(samples) / n * 1e6


def _burst(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - start


def _structlog_logger(renderer: Any, factory: Any) -> Any:
    """A bound local logger of structlog's performance-page configuration."""
    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        logger_factory=factory,
    )
    # bind() assembles the logger now, with the processors configured just above.
    return structlog.get_logger().bind()


def _json_burst(log: Callable[[int], object], settle: Callable[[], object]) -> tuple[float, ...]:
    """Caller CPU, total CPU and caller wall of one burst, in seconds."""
    cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    for i in range(BURST):
        log(i)
    thread1, wall1 = time.thread_time(), time.perf_counter()
    settle()
    return thread1 - thread0, time.process_time() - cpu0, wall1 - wall0


def bench_json(tmp: Path, reps: int) -> dict[str, dict[str, float]]:
    ours = LogManager(
        level="INFO", file_path=tmp / "ours.log", format_type="json", console=False, max_bytes=None
    )
    ours_log = ours.get_logger("bench")
    pipeline = ours._pipeline  # "ours, stdlib json" is this manager with another formatter
    formatters = {
        "ours": pipeline.formatter,
        "ours_stdlib_json": OurJsonFormatter(encode=encode_stdlib),
    }

    orjson_file = (tmp / "structlog-orjson.log").open("wb")
    sl_orjson = _structlog_logger(
        structlog.processors.JSONRenderer(serializer=orjson.dumps),
        structlog.BytesLoggerFactory(file=orjson_file),
    )
    json_file = (tmp / "structlog-json.log").open("w")
    sl_json = _structlog_logger(
        structlog.processors.JSONRenderer(), structlog.WriteLoggerFactory(file=json_file)
    )

    fmt = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    pjl = logging.getLogger("bench_pjl_sync")
    pjl.propagate = False
    pjl.setLevel(logging.INFO)
    file_handler = logging.FileHandler(tmp / "pjl.log")
    file_handler.setFormatter(fmt)
    pjl.addHandler(file_handler)

    pjlq = logging.getLogger("bench_pjl_queue")
    pjlq.propagate = False
    pjlq.setLevel(logging.INFO)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    pjlq.addHandler(logging.handlers.QueueHandler(q))
    q_file = logging.FileHandler(tmp / "pjlq.log")
    q_file.setFormatter(fmt)
    listener = logging.handlers.QueueListener(q, q_file)
    listener.start()

    def drain_listener() -> None:
        while not q.empty():
            time.sleep(0.005)
        q_file.flush()

    contenders: dict[str, tuple[Callable[[int], object], Callable[[], object]]] = {
        "ours": (lambda i: ours_log.info("processing item", extra={"item": i}), ours.flush),
        "ours_stdlib_json": (
            lambda i: ours_log.info("processing item", extra={"item": i}),
            ours.flush,
        ),
        "structlog_orjson": (
            lambda i: sl_orjson.info("processing item", item=i),
            orjson_file.flush,
        ),
        "structlog_json": (lambda i: sl_json.info("processing item", item=i), json_file.flush),
        "pjl_sync": (
            lambda i: pjl.info("processing item", extra={"item": i}),
            file_handler.flush,
        ),
        "pjl_queue": (
            lambda i: pjlq.info("processing item", extra={"item": i}),
            drain_listener,
        ),
    }
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name in contenders}
    names = list(contenders)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:  # rotate the order
            if name in formatters:  # set between bursts, after the previous one's flush
                pipeline.formatter = formatters[name]
            samples[name].append(_json_burst(*contenders[name]))
    listener.stop()
    ours.close()
    orjson_file.close()
    json_file.close()
    for handler in (file_handler, q_file):
        handler.close()
    for name in ("ours", "structlog-orjson", "structlog-json", "pjl", "pjlq"):
        with (tmp / f"{name}.log").open("rb") as fh:  # every contender wrote every record
            first = json.loads(fh.readline())
            count = 1 + sum(1 for _ in fh)
        if count != reps * BURST * (2 if name == "ours" else 1) or first.get("item") != 0:
            raise RuntimeError(f"{name}: {count} lines, the first {first}; comparison void")
    return {
        name: {
            measure: _median_us([sample[index] for sample in runs], BURST)
            for index, measure in enumerate(("caller_cpu", "total_cpu", "caller_wall"))
        }
        for name, runs in samples.items()
    }


def bench_below_level(reps: int) -> dict[str, float]:
    ours = LogManager(level="INFO", console=False)
    ours_log = ours.get_logger("bench_below")
    plain = logging.getLogger("bench_plain_below")
    plain.setLevel(logging.INFO)
    plain.propagate = False
    n = 200_000
    times: dict[str, list[float]] = {"ours": [], "stdlib": []}
    for rep in range(reps):
        pair = [("ours", ours_log), ("stdlib", plain)]
        for name, logger in pair if rep % 2 else pair[::-1]:
            times[name].append(_burst(lambda i, lg=logger: lg.debug("item %d", i), n))
    ours.close()
    return {name: _median_us(samples, n) for name, samples in times.items()}


def _thread_work(logger: logging.Logger, tid: int, n: int) -> None:
    for i in range(n):
        logger.info("record", extra={"t": tid, "i": i})


def _count_pairs(paths: list[Path], a: str, b: str) -> Counter[tuple[int, int]]:
    seen: Counter[tuple[int, int]] = Counter()
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if a in rec:
                    seen[(rec[a], rec[b])] += 1
    return seen


def _exactly_once(seen: Counter[tuple[int, int]], outer: int, inner: int) -> bool:
    expected = {(o, i) for o in range(outer) for i in range(inner)}
    return set(seen) == expected and all(c == 1 for c in seen.values())


def bench_threads(tmp: Path, reps: int, threads: int, per: int) -> dict[str, object]:
    results: dict[str, list[float]] = {"ours": [], "stdlib_queue_pjl": []}
    ok = True
    lines = 0
    for rep in range(reps):
        path = tmp / f"threads-{rep}.log"
        mgr = LogManager(
            level="INFO", file_path=path, format_type="json", console=False, max_bytes=None
        )
        log = mgr.get_logger("threads")
        workers = [
            threading.Thread(target=_thread_work, args=(log, t, per)) for t in range(threads)
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        mgr.close()
        results["ours"].append(time.perf_counter() - start)
        seen = _count_pairs([path], "t", "i")
        lines = sum(1 for _ in path.open())
        ok = ok and lines == threads * per and _exactly_once(seen, threads, per)

        spath = tmp / f"threads-std-{rep}.log"
        std = logging.getLogger(f"bench_threads_std_{rep}")
        std.propagate = False
        std.setLevel(logging.INFO)
        q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        std.addHandler(logging.handlers.QueueHandler(q))
        fh = logging.FileHandler(spath)
        fh.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        listener = logging.handlers.QueueListener(q, fh)
        listener.start()
        workers = [
            threading.Thread(target=_thread_work, args=(std, t, per)) for t in range(threads)
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        listener.stop()
        results["stdlib_queue_pjl"].append(time.perf_counter() - start)
        fh.close()
    return {
        "ours_s": statistics.median(results["ours"]),
        "stdlib_queue_pjl_s": statistics.median(results["stdlib_queue_pjl"]),
        "lines": lines,
        "exactly_once": ok,
    }


def _ours_worker(config: LogWorkerConfig, pid: int, n: int) -> None:
    mgr = LogManager.attach_worker(config)
    log = mgr.get_logger("procs")
    for i in range(n):
        log.info("record", extra={"p": pid, "i": i})
    mgr.close()


def _std_worker(q: multiprocessing.Queue, pid: int, n: int) -> None:  # type: ignore[type-arg]
    log = logging.getLogger("procs_std")
    log.handlers[:] = [logging.handlers.QueueHandler(q)]
    log.setLevel(logging.INFO)
    log.propagate = False
    for i in range(n):
        log.info("record", extra={"p": pid, "i": i})


def bench_processes(tmp: Path, reps: int, procs: int, per: int) -> dict[str, object]:
    ctx = multiprocessing.get_context("spawn")
    times: dict[str, list[float]] = {"ours": [], "stdlib_cookbook": []}
    ok = True
    std_counts: list[int] = []
    files = 0
    for rep in range(reps):
        base = tmp / f"procs-{rep}" / "run.log"
        start = time.perf_counter()
        with LogManager(
            level="INFO",
            file_path=base,
            format_type="json",
            console=False,
            max_bytes=1_000_000,
            backup_count=1000,
        ) as mgr:
            config = mgr.worker_config()
            workers = [
                ctx.Process(target=_ours_worker, args=(config, p, per)) for p in range(procs)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        times["ours"].append(time.perf_counter() - start)
        paths = [base, *list_backups(base)]
        files = len(paths)
        ok = ok and _exactly_once(_count_pairs(paths, "p", "i"), procs, per)

        sbase = tmp / f"procs-std-{rep}" / "run.log"
        sbase.parent.mkdir(parents=True)
        start = time.perf_counter()
        q = ctx.Queue()
        rfh = logging.handlers.RotatingFileHandler(sbase, maxBytes=1_000_000, backupCount=1000)
        rfh.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        listener = logging.handlers.QueueListener(q, rfh)
        listener.start()
        workers = [ctx.Process(target=_std_worker, args=(q, p, per)) for p in range(procs)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        listener.stop()
        rfh.close()
        times["stdlib_cookbook"].append(time.perf_counter() - start)
        spaths = sorted(sbase.parent.iterdir())
        std_counts.append(sum(_count_pairs(spaths, "p", "i").values()))
    return {
        "ours_s": statistics.median(times["ours"]),
        "stdlib_cookbook_s": statistics.median(times["stdlib_cookbook"]),
        "files": files,
        "exactly_once": ok,
        "stdlib_records": std_counts[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and records")
    args = parser.parse_args()
    reps = 5 if args.quick else 15
    threads_per = 10_000 if args.quick else 100_000
    procs_per = 2_500 if args.quick else 25_000
    tmp = Path(tempfile.mkdtemp(prefix="bench_log_"))
    try:
        print(
            f"python {sys.version.split()[0]}, structlog {structlog.__version__}, "
            f"burst {BURST} records, median of {reps} repeats"
        )
        j = bench_json(tmp, reps)
        print(f"\n1. JSON records, {BURST} per burst (us/record)")
        print(f"   {'':<18} {'caller CPU':>10} {'total CPU':>10} {'caller wall':>12}")
        for name, m in j.items():
            print(
                f"   {name:<18} {m['caller_cpu']:10.2f} {m['total_cpu']:10.2f} "
                f"{m['caller_wall']:12.2f}"
            )
        ours, anchor = j["ours"], j["structlog_orjson"]
        for measure, label in (
            ("caller_cpu", "caller CPU"),
            ("total_cpu", "total CPU "),
            ("caller_wall", "caller wall"),
        ):
            target = "  (target <= 1.00)" if measure != "caller_wall" else ""
            print(
                f"   ours / structlog+orjson, {label} = "
                f"{ours[measure] / anchor[measure]:.2f}{target}"
            )
        print(
            f"   ours / structlog+json, total CPU   = "
            f"{ours['total_cpu'] / j['structlog_json']['total_cpu']:.2f}"
        )
        print(
            f"   ours with stdlib json / structlog+orjson, total CPU = "
            f"{j['ours_stdlib_json']['total_cpu'] / anchor['total_cpu']:.2f}"
        )
        print(
            f"   stdlib+pjl (sync) / ours, total CPU = "
            f"{j['pjl_sync']['total_cpu'] / ours['total_cpu']:.2f}  (target >= 1.50)"
        )
        print(
            f"   stdlib+pjl (QueueHandler) / ours, total CPU = "
            f"{j['pjl_queue']['total_cpu'] / ours['total_cpu']:.2f}"
        )

        b = bench_below_level(reps)
        print("\n2. Call below the level (us/call)")
        print(
            f"   ours {b['ours']:.3f}  stdlib {b['stdlib']:.3f}  ratio {b['ours'] / b['stdlib']:.2f}  (target <= 1.20)"
        )

        t = bench_threads(tmp, max(1, reps // 5), 4, threads_per)
        print(
            f"\n3. 4 threads x {threads_per}: {t['lines']} lines, exactly once: {t['exactly_once']}"
        )
        print(
            f"   ours {t['ours_s']:.2f} s  stdlib QueueHandler+pjl {t['stdlib_queue_pjl_s']:.2f} s  "
            f"ratio stdlib/ours {t['stdlib_queue_pjl_s'] / t['ours_s']:.2f}"
        )

        p = bench_processes(tmp, max(1, reps // 5), 4, procs_per)
        print(
            f"\n4. 4 processes x {procs_per}, rotation at 1 MB: {p['files']} files, "
            f"exactly once: {p['exactly_once']}"
        )
        print(
            f"   ours {p['ours_s']:.2f} s  stdlib cookbook {p['stdlib_cookbook_s']:.2f} s "
            f"({p['stdlib_records']} records found)  ratio stdlib/ours "
            f"{p['stdlib_cookbook_s'] / p['ours_s']:.2f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
