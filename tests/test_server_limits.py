"""`rag serve` under pressure and with a broken upstream: rate limits (429), a full answer
queue (503), an unreachable OpenAI-compatible server (502), and the chat page at /ui
behind the same keys. One real server process, `--index` mode (collection ``default``),
the instant ``hash`` embedder: these tests are about the HTTP layer, not about meaning.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from server_process import RagServer, free_port, server_env
from test_server import create_key

TOPICS = ["rivers", "mountains", "deserts", "forests", "glaciers", "islands", "volcanoes", "lakes"]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    import rag

    root = tmp_path_factory.mktemp("serve-limits")
    docs = root / "uploads"
    docs.mkdir()
    for topic in TOPICS:  # enough text that an extractive answer over k=20 chunks takes a moment
        (docs / f"{topic}.txt").write_text("\n\n".join(
            f"Paragraph {i} about {topic}: the {topic} of region {i} were surveyed in {1900 + i}, and the survey "
            f"counted {i * 7} sites, measured their size, and described how the {topic} changed over time."
            for i in range(12)), encoding="utf-8")
    rag.ingest([docs], root / "index", embed_model="hash", progress=False)
    keys_file = root / "keys.json"
    keys = {name: create_key(keys_file, "--name", name) for name in ("ui", "load", "limited", "upstream")}
    keys["ui-reader"] = create_key(keys_file, "--name", "ui-reader", "--read-only")
    closed = free_port()  # nothing listens there: the upstream is down
    env = server_env(OPENAI_BASE_URL=f"http://127.0.0.1:{closed}/v1", OPENAI_API_KEY="sk-test")
    server = RagServer(["--index", str(root / "index"), "--generator", "extractive", "--ui",
                        "--rate-limit", "1", "--burst", "20", "--max-generations", "1", "--queue", "0",
                        "--log-format", "text"], root / "server.log", env=env)
    with server:
        yield server, keys


def client(server, key) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_full_answer_queue_is_503_while_retrieval_stays_available(limited_server):
    server, keys = limited_server
    question = {"question": "How were the rivers surveyed over time?", "k": 20, "min_score": -1}
    with client(server, keys["load"]) as http, ThreadPoolExecutor(16) as pool:
        asks = [pool.submit(http.post, "/v1/ask", json=question) for _ in range(12)]
        retrieves = [pool.submit(http.post, "/v1/retrieve", json={"question": "glaciers"}) for _ in range(4)]
        asked = [f.result() for f in asks]
        retrieved = [f.result() for f in retrieves]
    statuses = sorted(r.status_code for r in asked)
    assert set(statuses) == {200, 503}, statuses
    busy = next(r for r in asked if r.status_code == 503)
    assert busy.json()["error"]["code"] == "overloaded" and int(busy.headers["retry-after"]) >= 1
    assert all(r.status_code == 200 for r in retrieved)  # retrieval takes no answer slot


def test_rate_limit_is_429_with_retry_after(limited_server):
    server, keys = limited_server
    with client(server, keys["limited"]) as http:
        statuses = [http.post("/v1/retrieve", json={"question": "lakes"}) for _ in range(24)]
    assert [r.status_code for r in statuses[:20]] == [200] * 20  # the burst
    limited = [r for r in statuses[20:] if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert int(limited[0].headers["retry-after"]) >= 1
    with client(server, keys["load"]) as other:  # buckets are per key
        assert other.post("/v1/retrieve", json={"question": "lakes"}).status_code == 200


def test_unreachable_upstream_is_502_with_the_reason_not_a_hang(limited_server):
    server, keys = limited_server
    with client(server, keys["upstream"]) as http:
        started = time.monotonic()
        failed = http.post("/v1/ask", json={"question": "What about deserts?", "generator": "openai",
                                            "model": "gpt-4o-mini", "min_score": -1})
        assert failed.status_code == 502, failed.text
        assert "cannot reach the OpenAI-compatible server" in failed.json()["error"]["message"]
        streamed = http.post("/v1/ask", json={"question": "What about deserts?", "generator": "openai",
                                              "stream": True, "min_score": -1})
        assert streamed.status_code == 502  # failed before the first piece: a status, not half a stream
        assert time.monotonic() - started < 30


def test_chat_page_is_behind_the_same_keys(limited_server):
    server, keys = limited_server
    anonymous = httpx.get(server.url + "/ui/")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    page = httpx.get(server.url + "/ui/", auth=("me", keys["ui"]))  # a browser sends the key as its password
    assert page.status_code == 200 and "gradio" in page.text.lower()
    config = httpx.get(server.url + "/ui/config", headers={"Authorization": f"Bearer {keys['ui']}"})
    assert config.status_code == 200 and json.loads(config.text)
    # the page can upload files: a read-only key may not open it
    assert httpx.get(server.url + "/ui/", auth=("me", keys["ui-reader"])).status_code == 403
    assert keys["ui"] not in server.log()


def test_two_worker_processes_both_answer_and_share_ingest_jobs(tmp_path):
    # `--workers 2`: two processes behind one port. An upload job submitted to one is read from
    # either (jobs live in files beside the collection); rate limits and metrics are per process.
    import rag

    docs = tmp_path / "uploads"
    docs.mkdir()
    (docs / "rivers.txt").write_text("The rivers of the region were surveyed in 1907.", encoding="utf-8")
    rag.ingest([docs], tmp_path / "index", embed_model="hash", progress=False)
    with RagServer(["--index", str(tmp_path / "index"), "--generator", "extractive", "--workers", "2",
                    "--rate-limit", "0"], tmp_path / "server.log") as server:

        def worker_of(http: httpx.Client) -> int:
            return http.get("/healthz").json()["pid"]  # the worker that owns this keep-alive connection

        with httpx.Client(base_url=server.url, timeout=30) as http:
            job = http.post("/v1/documents", files=[("files", ("lakes.txt", b"The lakes froze in 1911.",
                                                                "text/plain"))]).json()
        seen: dict[int, int] = {}  # worker pid -> status of GET /v1/jobs/{id} there
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            # a fresh connection each time: the kernel spreads them over the two workers
            with httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=1)) as http:
                pid = worker_of(http)
                seen[pid] = http.get(f"/v1/jobs/{job['id']}").status_code
        assert len(seen) == 2, f"only worker(s) {list(seen)} answered in 60 s"
        assert set(seen.values()) == {200}, seen
        assert server.process.pid not in seen  # the parent only supervises the workers
