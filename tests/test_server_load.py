"""`rag serve` with many clients at once, and killed with `kill -9` in the middle of an
ingest job. Real server processes, the instant ``hash`` embedder (retrieval still finds
an invented word through BM25), the extractive generator.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from server_process import RagServer, patiently, wait_for_job

CLIENTS, REQUESTS = 16, 10
SLOWEST_ALLOWED_S = 30.0  # any single request, on a busy 2-core machine with ingest jobs running
INTENDED = {429, 503}  # rate limit and full answer queue: the client retries after Retry-After


def make_collection(root: Path, name: str, files: dict[str, str]) -> Path:
    import rag

    uploads = root / name / "uploads"
    uploads.mkdir(parents=True)
    for file, text in files.items():
        (uploads / file).write_text(text, encoding="utf-8")
    rag.ingest([uploads], root / name / "index", embed_model="hash", progress=False)
    return root


BASE_DOCS = {
    "harbour.txt": "The harbour of Valletta was dredged in 1921. Ships of up to 300 metres can dock there.",
    "orchard.txt": "The orchard grows forty kinds of apples; the oldest tree was planted in 1870.",
}


def test_sixteen_clients_mixing_retrieve_ask_and_upload(tmp_path):
    data = make_collection(tmp_path / "data", "load", BASE_DOCS)
    server = RagServer(["--data", str(data), "--generator", "extractive", "--rate-limit", "40", "--burst", "60",
                        "--max-generations", "1", "--queue", "2"], tmp_path / "server.log")
    outcomes: list[tuple[str, int, float]] = []  # (kind, final status, seconds of the slowest try)
    intended: list[int] = []
    lock = threading.Lock()

    def call(http: httpx.Client, kind: str, client_id: int, i: int):
        for attempt in range(8):
            started = time.monotonic()
            if kind == "upload":
                text = f"Report {client_id}. The code word of client {client_id} is zorblax{client_id}q."
                response = http.post("/v1/documents", params={"collection": "load"},
                                     files={"files": (f"client-{client_id}.txt", text.encode(), "text/plain")})
            elif kind == "ask":
                response = http.post("/v1/ask", json={"question": "When was the harbour dredged?",
                                                      "collection": "load", "min_score": -1})
            else:
                response = http.post("/v1/retrieve", json={"question": "oldest apple tree", "collection": "load"})
            elapsed = time.monotonic() - started
            with lock:
                if response.status_code in INTENDED:
                    intended.append(response.status_code)
            if response.status_code not in INTENDED:
                with lock:
                    outcomes.append((kind, response.status_code, elapsed, response.json()))
                return response
            assert response.json()["error"]["code"] in ("rate_limit_exceeded", "overloaded")
            time.sleep(min(float(response.headers["retry-after"]), 2.0) * random.uniform(0.5, 1.0))
        raise AssertionError(f"{kind} of client {client_id} still refused after 8 tries")

    def client(client_id: int):
        kinds = ["retrieve", "ask", "retrieve", "ask", "retrieve", "upload", "retrieve", "ask", "retrieve", "ask"]
        with httpx.Client(base_url=server.url, timeout=SLOWEST_ALLOWED_S * 2) as http:
            return [call(http, kind, client_id, i) for i, kind in enumerate(kinds[:REQUESTS])]

    with server:
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(client, range(CLIENTS)))
        wall = time.monotonic() - started

        assert len(outcomes) == CLIENTS * REQUESTS  # every request answered
        bad = [(k, s, body) for k, s, _, body in outcomes if s not in (200, 202)]
        assert not bad, bad[:3]
        slowest = max(seconds for _, _, seconds, _ in outcomes)
        assert slowest < SLOWEST_ALLOWED_S, slowest
        with httpx.Client(base_url=server.url, timeout=60) as http:
            jobs = [wait_for_job(http, r.json()["id"]) for rs in results for r in rs if r.status_code == 202]
            assert len(jobs) == CLIENTS and all(job["status"] == "succeeded" for job in jobs), jobs
            # the load may have emptied this client's token bucket: these checks honour Retry-After too
            listing = patiently(http, "GET", "/v1/documents", params={"collection": "load"})
            assert listing.status_code == 200, listing.text
            files = {d["file"] for d in listing.json()["data"]}
            assert files == set(BASE_DOCS) | {f"client-{c}.txt" for c in range(CLIENTS)}  # nothing lost
            hit = patiently(http, "POST", "/v1/retrieve",
                            json={"question": "zorblax7q", "collection": "load", "k": 1}).json()
            assert hit["sources"][0]["file"] == "client-7.txt"
    print(f"\n{CLIENTS}x{REQUESTS} requests in {wall:.1f} s, slowest {slowest:.2f} s, "
          f"{len(intended)} intended refusals ({sorted(set(intended))})")


def test_kill_9_during_an_upload_job_leaves_the_last_complete_version(tmp_path):
    data = make_collection(tmp_path / "data", "docs", BASE_DOCS)
    current = data / "docs" / "index" / "CURRENT"
    version_before = current.read_text()
    words = "survey river delta sediment flow gauge station reading season flood basin".split()
    rng = random.Random(7)
    big = "\n\n".join(" ".join(rng.choice(words) for _ in range(80)) + "." for _ in range(700))
    big += "\n\nThe flood gauge code is quexalot9."
    args = ["--data", str(data), "--generator", "extractive", "--rate-limit", "0"]

    first = RagServer(args, tmp_path / "first.log").start()
    try:
        with httpx.Client(base_url=first.url, timeout=60) as http:
            job = http.post("/v1/documents", params={"collection": "docs"},
                            files={"files": ("survey.txt", big.encode(), "text/plain")}).json()
            deadline = time.monotonic() + 30
            while http.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)  # into the ingest: loading, chunking, embedding
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
    finally:
        first.kill9()
    assert current.read_text() == version_before  # the new version never went live

    with RagServer(args, tmp_path / "second.log") as second, httpx.Client(base_url=second.url, timeout=60) as http:
        interrupted = http.get(f"/v1/jobs/{job['id']}").json()
        assert interrupted["status"] == "interrupted" and "submit the files again" in interrupted["error"]
        answer = http.post("/v1/ask", json={"question": "When was the harbour dredged?", "collection": "docs"}).json()
        assert answer["sources"][0]["source"] == "harbour.txt"
        assert {d["file"] for d in http.get("/v1/documents", params={"collection": "docs"}).json()["data"]} == \
            set(BASE_DOCS)

        again = http.post("/v1/documents", params={"collection": "docs"},
                          files={"files": ("survey.txt", big.encode(), "text/plain")})
        assert again.status_code == 202
        done = wait_for_job(http, again.json()["id"])
        assert done["status"] == "succeeded" and done["files"][0]["saved_as"] == "survey.txt"  # the saved copy reused
        hit = http.post("/v1/retrieve", json={"question": "quexalot9", "collection": "docs", "k": 1}).json()
        assert hit["sources"][0]["file"] == "survey.txt"
    assert current.read_text() != version_before


def test_a_stuck_upstream_is_a_504_and_does_not_hold_the_shutdown(tmp_path):
    import signal
    import socket

    from server_process import server_env

    data = make_collection(tmp_path / "data", "docs", BASE_DOCS)
    # An upstream that accepts connections and never answers (the kernel completes the handshake).
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(16)
    env = server_env(OPENAI_BASE_URL=f"http://127.0.0.1:{stuck.getsockname()[1]}/v1", OPENAI_API_KEY="sk-test")
    server = RagServer(["--data", str(data), "--generator", "openai", "--rate-limit", "0",
                        "--generation-timeout", "2", "--queue-timeout", "1"], tmp_path / "server.log", env=env)
    try:
        with server, httpx.Client(base_url=server.url, timeout=60) as http:
            started = time.monotonic()
            late = http.post("/v1/ask", json={"question": "When was the harbour dredged?", "collection": "docs",
                                              "min_score": -1})
            assert late.status_code == 504 and late.json()["error"]["code"] == "generation_timeout"
            assert time.monotonic() - started < 15
            assert http.post("/v1/retrieve", json={"question": "harbour", "collection": "docs"}).status_code == 200
            stopping = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=30)
            assert time.monotonic() - stopping < 12  # not the upstream client's 60 s x 3 tries
    finally:
        stuck.close()
