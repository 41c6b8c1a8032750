"""LogManager against structlog, python-json-logger and the stdlib, in one process.

What is compared (medians of repeats, contenders interleaved so load noise cancels):

1. JSON record, caller-side cost: microseconds the code that logs spends per record, in
   bursts of ``BURST`` records (``logger.info("processing item", extra={"item": i})``).
   * ours: ``LogManager(format_type="json", file_path=..., console=False)``; the writer
     thread runs as usual (it formats while the burst goes on when it wakes up); the
     queue is flushed between bursts, untimed. "ours end-to-end" times burst + flush().
   * structlog fast JSON: the configuration of structlog's performance page with the
     stdlib ``json`` serializer (orjson is not installed): ``make_filtering_bound_logger
     (INFO)``, ``cache_logger_on_first_use=True``, processors ``merge_contextvars,
     add_log_level, format_exc_info, TimeStamper(fmt="iso", utc=True), JSONRenderer()``,
     ``WriteLoggerFactory`` on a file, a bound local logger. Synchronous: caller cost is
     its whole cost.
   * stdlib + python-json-logger: ``FileHandler`` with ``JsonFormatter`` (synchronous),
     and the same behind ``QueueHandler`` + ``QueueListener`` (caller-side cost).
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
from pathlib import Path

import structlog
from pythonjsonlogger.json import JsonFormatter

from lensing_ssc.processing.managers import LogManager
from lensing_ssc.processing.managers.log._manager import LogWorkerConfig, list_backups

BURST = 5_000


def _median_us(samples: list[float], n: int) -> float:
    return statistics.median(samples) / n * 1e6


def _burst(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - start


def bench_json(tmp: Path, reps: int) -> dict[str, float]:
    ours = LogManager(
        level="INFO", file_path=tmp / "ours.log", format_type="json", console=False, max_bytes=None
    )
    ours_log = ours.get_logger("bench")

    sl_file = (tmp / "structlog.log").open("w")
    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=sl_file),
    )
    sl_log = structlog.get_logger().bind()

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

    contenders = {
        "ours": lambda i: ours_log.info("processing item", extra={"item": i}),
        "structlog": lambda i: sl_log.info("processing item", item=i),
        "pjl_sync": lambda i: pjl.info("processing item", extra={"item": i}),
        "pjl_queue": lambda i: pjlq.info("processing item", extra={"item": i}),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    times["ours_end_to_end"] = []
    names = list(contenders)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:  # rotate the order
            fn = contenders[name]
            times[name].append(_burst(fn, BURST))
            if name == "ours":
                ours.flush()
            if name == "pjl_queue":  # let the listener catch up, untimed
                while not q.empty():
                    time.sleep(0.01)
        start = time.perf_counter()
        for i in range(BURST):
            ours_log.info("processing item", extra={"item": i})
        ours.flush()
        times["ours_end_to_end"].append(time.perf_counter() - start)
    listener.stop()
    ours.close()
    sl_file.close()
    for handler in (file_handler, q_file):
        handler.close()
    return {name: _median_us(samples, BURST) for name, samples in times.items()}


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
        print("\n1. JSON record, caller-side cost (us/record)")
        for name, value in j.items():
            print(f"   {name:<18} {value:8.2f}")
        print(
            f"   ours / structlog fast JSON          = {j['ours'] / j['structlog']:.2f}  (target <= 1.00)"
        )
        print(
            f"   stdlib+pjl (sync) / ours            = {j['pjl_sync'] / j['ours']:.2f}  (target >= 1.50)"
        )
        print(f"   stdlib+pjl (QueueHandler) / ours    = {j['pjl_queue'] / j['ours']:.2f}")
        print(
            f"   ours end-to-end / structlog         = {j['ours_end_to_end'] / j['structlog']:.2f}"
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
