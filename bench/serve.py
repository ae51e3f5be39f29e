#!/usr/bin/env python
"""HTTP server benchmark: `rag serve` against calling rag in process, in one run.

An index of ../shared/corpus/txt is built in a temporary folder (default embedder), a
real `rag serve --index ...` process is started on a free loopback port (extractive
generator, no rate limit, 4 answer slots), and with the dev + extra questions:

* in process: ``rag.retrieve(question, index=...)`` in this process, after a warm-up;
* HTTP overhead at concurrency 1: client latency of POST /v1/retrieve minus the
  server's own retrieval time for that request (``timings.search``: the wall time of
  ``qa.search`` in the server's worker thread), and, as a cross-check, HTTP p50 minus
  the in-process p50 (questions interleaved);
* the server's CPU time per request (utime + stime of the server process from
  /proc/PID/stat over a batch): unlike latency, it hardly moves with the machine's load;
* the ceiling: ``rag.retrieve()`` calls per second in this process from 1 and 4 threads
  (the server cannot scale past the retrieval it calls);
* throughput and p50/p95 latency of POST /v1/retrieve and of extractive POST /v1/ask
  at concurrency 1, 4 and 16 (threads with keep-alive connections, each request a
  question from the list in turn).

Targets (issue 13): HTTP overhead <= 5 ms p50 at concurrency 1; retrieve throughput at
concurrency 4 >= 1.5x concurrency 1.

    python bench/serve.py            # 160 requests per level and endpoint
    python bench/serve.py --quick    # 48 per level
    python bench/serve.py --json
    python bench/serve.py --quick --workers 2   # rag serve --workers 2 (two processes)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.setup_path()

TARGET_OVERHEAD_MS = 5.0
TARGET_SCALING = 1.5
LEVELS = (1, 4, 16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, log_path: Path, log, workers: int = 1) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAG_"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", TOKENIZERS_PARALLELISM="false")
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", "--index", str(index), "--port", str(port),
             "--generator", "extractive", "--rate-limit", "0", "--max-generations", "4", "--queue", "64",
             "--log-level", "warning", "--workers", str(workers)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: rag serve exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                log(f"server ready on {url}")
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit("bench: rag serve not ready after 180 s")


def process_cpu_ms(pid: int) -> float:
    """User + system CPU time so far, in ms, of process ``pid`` (all its threads) and of its
    children (the worker processes of --workers N)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return own + sum(process_cpu_ms(int(c)) for c in (children.read_text().split() if children.exists() else []))


def in_process_throughput(questions: list[str], index: Path, threads: int, total: int) -> float:
    """rag.retrieve() calls per second from ``threads`` threads of this process."""
    import rag

    counter, lock = iter(range(total)), threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            rag.retrieve(questions[i % len(questions)], index=index)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total / (time.perf_counter() - started)


def load(url: str, path: str, payloads: list[dict], concurrency: int, total: int) -> dict:
    """``total`` requests from ``concurrency`` threads; latency of each, wall time of all."""
    import httpx

    latencies: list[float] = []
    errors: list[int] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def worker():
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                response = client.post(path, json=payloads[i % len(payloads)])
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        errors.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = [v * 1000 for v in latencies]
    return {"concurrency": concurrency, "requests": total, "errors": len(errors), "wall_s": wall,
            "rps": total / wall, "p50_ms": common.percentile(ms, 50), "p95_ms": common.percentile(ms, 95)}


def main() -> None:
    parser = common.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="rag serve --workers N (default 1)")
    args = parser.parse_args()
    quiet = args.quiet or args.json
    log = common.Log(quiet)
    import httpx

    import rag

    questions = [q["question"] for q in common.read_questions()]
    per_level = 48 if args.quick else 160
    overhead_n = 30 if args.quick else 100
    work = Path(tempfile.mkdtemp(prefix="rag-bench-serve-"))
    process = None
    try:
        log("building the index of ../shared/corpus/txt")
        build_s, summary = common.timed(rag.ingest, [common.shared_path("corpus", "txt")], work / "index",
                                        progress=False)
        log(f"index: {summary.chunks} chunks in {build_s:.1f} s")
        process, url = start_server(work / "index", work / "server.log", log, args.workers)

        # in process vs over HTTP, interleaved question by question
        for q in questions[:5]:
            rag.retrieve(q, index=work / "index")
        in_process, http_total, server_side, in_server = [], [], [], []
        with httpx.Client(base_url=url, timeout=60) as client:
            for q in questions[:5]:
                client.post("/v1/retrieve", json={"question": q})
            for i in range(overhead_n):
                q = questions[i % len(questions)]
                seconds, _ = common.timed(rag.retrieve, q, index=work / "index")
                in_process.append(seconds * 1000)
                started = time.perf_counter()
                response = client.post("/v1/retrieve", json={"question": q})
                http_total.append((time.perf_counter() - started) * 1000)
                timings = response.json()["timings"]
                server_side.append(timings.get("search", timings["total"]) * 1000)
                in_server.append(float(response.headers["server-timing"].split("dur=")[1].split(",")[0]))
            floor = []  # the transport alone: a request that does no work
            for _ in range(overhead_n):
                started = time.perf_counter()
                client.get("/healthz")
                floor.append((time.perf_counter() - started) * 1000)
            cpu = {}  # server CPU ms per request, sequential requests on one connection
            for name, call in (("healthz", lambda i: client.get("/healthz")),
                               ("retrieve", lambda i: client.post("/v1/retrieve",
                                                                  json={"question": questions[i % len(questions)]}))):
                before = process_cpu_ms(process.pid)
                for i in range(overhead_n):
                    call(i)
                cpu[name] = (process_cpu_ms(process.pid) - before) / overhead_n
            in_process_cpu = time.process_time()
            for i in range(overhead_n):
                rag.retrieve(questions[i % len(questions)], index=work / "index")
            cpu["retrieve_in_process"] = (time.process_time() - in_process_cpu) * 1000 / overhead_n
        # The ceiling for the server: rag.retrieve() itself from 1 and 4 threads of this process.
        in_process_rps = {n: in_process_throughput(questions, work / "index", n, per_level) for n in (1, 4)}
        overhead = [h - s for h, s in zip(http_total, server_side)]
        app_overhead = [a - s for a, s in zip(in_server, server_side)]  # inside the server process only
        comparison = {
            "in_process_p50_ms": common.percentile(in_process, 50), "in_process_p95_ms": common.percentile(in_process, 95),
            "http_p50_ms": common.percentile(http_total, 50), "http_p95_ms": common.percentile(http_total, 95),
            "overhead_p50_ms": common.percentile(overhead, 50), "overhead_p95_ms": common.percentile(overhead, 95),
            "http_minus_in_process_p50_ms": common.percentile(http_total, 50) - common.percentile(in_process, 50),
            "app_overhead_p50_ms": common.percentile(app_overhead, 50),
            "app_overhead_p95_ms": common.percentile(app_overhead, 95),
            "healthz_p50_ms": common.percentile(floor, 50), "healthz_p95_ms": common.percentile(floor, 95),
            "n": overhead_n, "server_cpu_ms_per_request": cpu,
        }
        log(f"overhead p50 {comparison['overhead_p50_ms']:.2f} ms")

        levels = {"retrieve": [], "ask": []}
        payloads = {"retrieve": [{"question": q} for q in questions],
                    "ask": [{"question": q, "generator": "extractive"} for q in questions]}
        for endpoint in ("retrieve", "ask"):
            # warm-up; with --workers N on enough connections that every worker gets requests
            load(url, f"/v1/{endpoint}", payloads[endpoint], 4 * args.workers, 16 * args.workers)
            for level in LEVELS:
                result = load(url, f"/v1/{endpoint}", payloads[endpoint], level, per_level)
                levels[endpoint].append(result)
                log(f"/v1/{endpoint} x{level}: {result['rps']:.1f} req/s, p50 {result['p50_ms']:.1f} ms")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)

    scaling = levels["retrieve"][1]["rps"] / levels["retrieve"][0]["rps"]
    targets = [
        common.target("HTTP overhead p50 at concurrency 1 (ms)", comparison["overhead_p50_ms"], "<=", TARGET_OVERHEAD_MS),
        common.target("retrieve throughput, concurrency 4 / concurrency 1", scaling, ">=", TARGET_SCALING),
    ]
    report = {"machine": common.machine(), "workers": args.workers, "index_chunks": summary.chunks, "requests_per_level": per_level,
              "in_process_vs_http": comparison, "levels": levels, "retrieve_scaling_4_vs_1": scaling,
              "in_process_retrieve_per_s": in_process_rps,
              "in_process_scaling_4_vs_1": in_process_rps[4] / in_process_rps[1],
              "targets": targets}
    rows = [[f"/v1/{endpoint}", r["concurrency"], r["rps"], r["p50_ms"], r["p95_ms"], r["errors"]]
            for endpoint in ("retrieve", "ask") for r in levels[endpoint]]
    text = "\n\n".join([
        common.table(["endpoint", "concurrency", "req/s", "p50 ms", "p95 ms", "errors"], rows),
        common.table(["retrieve, concurrency 1", "p50 ms", "p95 ms"], [
            ["rag.retrieve() in process", comparison["in_process_p50_ms"], comparison["in_process_p95_ms"]],
            ["POST /v1/retrieve", comparison["http_p50_ms"], comparison["http_p95_ms"]],
            ["HTTP overhead (client time - server's retrieval time)", comparison["overhead_p50_ms"],
             comparison["overhead_p95_ms"]],
            ["  of which inside the server (Server-Timing - retrieval)", comparison["app_overhead_p50_ms"],
             comparison["app_overhead_p95_ms"]],
            ["GET /healthz round trip (no work)", comparison["healthz_p50_ms"], comparison["healthz_p95_ms"]],
        ]),
        common.table(["CPU ms per request (load-independent)", "ms"], [
            ["server process, GET /healthz", cpu["healthz"]],
            ["server process, POST /v1/retrieve", cpu["retrieve"]],
            ["rag.retrieve() in process (this process)", cpu["retrieve_in_process"]],
            ["HTTP layer (server /v1/retrieve - in process)", cpu["retrieve"] - cpu["retrieve_in_process"]],
        ]),
        f"rag.retrieve() in process (the ceiling): {in_process_rps[1]:.1f} calls/s from 1 thread, "
        f"{in_process_rps[4]:.1f} from 4 ({in_process_rps[4] / in_process_rps[1]:.2f}x)",
        common.targets_block(targets),
        f"rag serve --workers {args.workers}; load average at start: "
        f"{report['machine'].get('load_average_at_start')} on {os.cpu_count()} cores",
    ])
    common.emit("serve" if args.workers == 1 else f"serve-workers{args.workers}", report, text, args.json)


if __name__ == "__main__":
    main()
