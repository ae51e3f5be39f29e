"""`rag serve` as its users see it: a real server process on a loopback port, the official
`openai` client and httpx over HTTP, real indexes with the default multilingual embedder,
the extractive generator (no LLM needed).

Collections: ``alpha`` (two model reports), ``beta`` (bees, a volcano), ``gamma`` (created
and filled through the API). Keys: ``admin`` (everything), ``alpha-only``, ``beta-only``,
``reader`` (read-only).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner
from openai import OpenAI

from rag.cli import main as cli
from server_process import RagServer, server_env, wait_for_job

DOCS = {
    "alpha": {
        "titanic.txt": "The Titanic survival model reached a precision of 0.83 and a recall of 0.71 on the test "
                       "passengers. Its recall is lower because many survivors were missed.",
        "iris.txt": "The iris classifier reached an accuracy of 0.97 and a recall of 0.95 on the test flowers. "
                    "It separates the three species of iris.",
    },
    "beta": {
        "bees.txt": "The waggle dance of honey bees tells the other bees the direction and the distance of the "
                    "flowers. Bees communicate through such dances.",
        "volcano.txt": "Mount Etna erupted in 2021 with fountains of lava over one kilometre high. It is the most "
                       "active volcano in Europe.",
    },
}
MAX_UPLOAD_MB = 0.05  # small, so the 413 test uploads 60 KB


def create_key(keys_file: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["keys", "create", "--keys", str(keys_file), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["key"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, embedder) -> Path:
    import rag

    data = tmp_path_factory.mktemp("serve-data")
    for collection, files in DOCS.items():
        uploads = data / collection / "uploads"
        uploads.mkdir(parents=True)
        for name, text in files.items():
            (uploads / name).write_text(text, encoding="utf-8")
        rag.ingest([uploads], data / collection / "index", progress=False)
    return data


@pytest.fixture(scope="module")
def keys(data_dir) -> dict[str, str]:
    keys_file = data_dir / "keys.json"
    return {
        "admin": create_key(keys_file, "--name", "admin"),
        "alpha": create_key(keys_file, "--name", "alpha-only", "--collection", "alpha"),
        "beta": create_key(keys_file, "--name", "beta-only", "--collection", "beta"),
        "reader": create_key(keys_file, "--name", "reader", "--read-only"),
    }


@pytest.fixture(scope="module")
def server(data_dir, keys, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with RagServer(["--data", str(data_dir), "--generator", "extractive", "--rate-limit", "0",
                    "--max-upload-mb", str(MAX_UPLOAD_MB)], log) as running:
        yield running


def client_for(server, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


@pytest.fixture()
def admin(server, keys):
    with client_for(server, keys["admin"]) as client:
        yield client


# -- health, docs -------------------------------------------------------------------------

def test_health_readiness_and_openapi_page(server):
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    assert httpx.get(server.url + "/readyz").json() == {"status": "ready", "collections": 2}
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/ask", "/v1/retrieve", "/v1/documents", "/v1/jobs/{job_id}",
                 "/v1/models", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    assert httpx.get(server.url + "/").json()["openai_base_url"] == "/v1"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_pages_work_offline_without_a_key(server, page):
    # The keyed server: the docs need no key, and load only files this server serves (no CDN).
    html = httpx.get(server.url + page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(a.endswith(".js") for a in assets), html.text
    assert "//" not in "".join(assets), assets  # same origin: no http(s):// nor //cdn...
    for asset in assets:
        response = httpx.get(server.url + asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert "openapi.json" in html.text
    assert httpx.get(server.url + "/docs/assets/..%2Fcore.py").status_code == 404


# -- the OpenAI-compatible endpoint --------------------------------------------------------

def test_openai_client_gets_a_cited_answer_with_its_sources(server, keys):
    client = OpenAI(base_url=server.v1, api_key=keys["admin"])
    response = client.chat.completions.create(
        model="rag/alpha", messages=[{"role": "user", "content": "What precision did the Titanic survival model reach?"}],
        temperature=0.1, max_tokens=200)
    assert "0.83" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "rag/alpha"
    sources = response.model_extra["sources"]
    assert sources[0]["file"] == "titanic.txt" and "0.83" in sources[0]["text"]
    assert set(sources[0]) >= {"file", "page", "score", "text"}
    assert response.usage.completion_tokens > 0
    assert response.model_extra["confidence"] == "high" and response.model_extra["note"] == ""
    # Below the caution threshold (here raised past any score) the answer comes with its note.
    cautious = client.chat.completions.create(
        model="rag/alpha", messages=[{"role": "user", "content": "What precision did the Titanic survival model reach?"}],
        extra_body={"caution_score": 1.01})
    assert cautious.model_extra["confidence"] == "low" and cautious.model_extra["note"].startswith("Low confidence")
    assert "0.83" in cautious.choices[0].message.content


def test_openai_client_streams_with_sources_in_the_first_chunk(server, keys):
    client = OpenAI(base_url=server.v1, api_key=keys["admin"])
    chunks = list(client.chat.completions.create(
        model="rag/alpha", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What accuracy did the iris classifier reach?"}]))
    assert chunks[0].model_extra["sources"][0]["file"] == "iris.txt"
    assert chunks[0].model_extra["confidence"] in ("high", "low")  # known before the text streams
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "0.97" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_follow_up_through_messages_history_finds_the_right_document(server, keys):
    client = OpenAI(base_url=server.v1, api_key=keys["admin"])
    response = client.chat.completions.create(model="rag/alpha", messages=[
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What precision did the Titanic survival model reach?"},
        {"role": "assistant", "content": "It reached a precision of 0.83 [1]."},
        {"role": "user", "content": "And its recall?"},
    ])
    assert response.model_extra["sources"][0]["file"] == "titanic.txt"
    assert "0.71" in response.choices[0].message.content


def test_models_list_what_each_key_may_ask(server, keys):
    admin_models = {m.id for m in OpenAI(base_url=server.v1, api_key=keys["admin"]).models.list()}
    assert admin_models == {"rag", "rag/alpha", "rag/beta"}
    alpha_models = {m.id for m in OpenAI(base_url=server.v1, api_key=keys["alpha"]).models.list()}
    assert alpha_models == {"rag", "rag/alpha"}


def test_two_keys_limited_to_two_collections_cannot_see_each_others_documents(server, keys):
    alpha = OpenAI(base_url=server.v1, api_key=keys["alpha"])
    # "rag" is the key's own collection: a question about bees finds nothing about bees.
    answer = alpha.chat.completions.create(model="rag", messages=[{"role": "user", "content": "How do bees communicate?"}])
    assert {s["file"] for s in answer.model_extra["sources"]} <= set(DOCS["alpha"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        alpha.chat.completions.create(model="rag/beta", messages=[{"role": "user", "content": "How do bees communicate?"}])
    assert "beta" in denied.value.message

    with client_for(server, keys["beta"]) as beta:
        hits = beta.post("/v1/retrieve", json={"question": "Titanic precision", "k": 5}).json()["sources"]
        assert {h["file"] for h in hits} <= set(DOCS["beta"])
        assert beta.get("/v1/documents", params={"collection": "alpha"}).status_code == 403
        assert {d["file"] for d in beta.get("/v1/documents").json()["data"]} == set(DOCS["beta"])
        forbidden = beta.post("/v1/ask", json={"question": "What precision?", "collection": "alpha"})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "collection_forbidden"


# -- native API ------------------------------------------------------------------------------

def test_ask_returns_the_answer_as_json(admin):
    body = admin.post("/v1/ask", json={"question": "When did Mount Etna erupt?", "collection": "beta", "k": 2}).json()
    assert "2021" in body["text"] and body["refused"] is False
    assert body["sources"][0]["source"] == "volcano.txt" and "path" not in body["sources"][0]
    assert len(body["sources"]) == 2
    assert {"retrieval", "generation", "total"} <= set(body["timings"])
    assert "citations" in body and body["generator"] == "extractive"
    assert body["confidence"] == "high" and body["note"] == ""


def test_ask_streams_server_sent_events(admin):
    with admin.stream("POST", "/v1/ask", json={"question": "What does the waggle dance tell?", "collection": "beta",
                                                "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith(("event:", "data:"))]
    assert events[0] == "event: sources" and json.loads(events[1][6:])["sources"][0]["file"] == "bees.txt"
    assert "event: delta" in events
    final = json.loads(events[events.index("event: answer") + 1][6:])
    assert "direction" in final["text"] and events[-1] == "data: [DONE]"


def test_retrieve_returns_sources(admin):
    body = admin.post("/v1/retrieve", json={"question": "iris accuracy", "collection": "alpha", "k": 1}).json()
    assert [s["file"] for s in body["sources"]] == ["iris.txt"]
    assert body["sources"][0]["score"] is not None and body["timings"]["server"] > 0


# -- bad requests: the OpenAI error shape, the right status ------------------------------------

BAD_REQUESTS = [
    # (what, method, path, body, status, code, words in the message)
    ("malformed JSON", "POST", "/v1/ask", b'{"question": "x",', 400, "invalid_json", ["JSON", "at character 17"]),
    ("a body that is no JSON object", "POST", "/v1/ask", b'hello', 400, "invalid_json", ["JSON"]),
    ("a JSON list", "POST", "/v1/ask", [1, 2], 400, "invalid_json", ["not a JSON object"]),
    ("missing question", "POST", "/v1/ask", {"collection": "alpha"}, 422, "invalid_field", ["question", "required"]),
    ("wrong type", "POST", "/v1/ask", {"question": "x?", "temperature": "hot"}, 422, "invalid_field",
     ["temperature", "number"]),
    ("misspelled field", "POST", "/v1/retrieve", {"question": "x?", "kk": 3}, 422, "invalid_field", ["kk", "question"]),
    ("empty question", "POST", "/v1/ask", {"question": "   ", "collection": "alpha"}, 400, "invalid_value",
     ["question", "empty"]),
    ("temperature out of range", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "user", "content": "x?"}], "temperature": 3}, 400, "invalid_value",
     ["temperature", "0 to 2"]),
    ("k below 1", "POST", "/v1/retrieve", {"question": "x?", "collection": "alpha", "k": 0}, 400, "invalid_value",
     ["k=0"]),
    ("unknown generator", "POST", "/v1/ask", {"question": "x?", "collection": "alpha", "generator": "gpt9"}, 400,
     "invalid_value", ["gpt9", "extractive"]),
    ("a model to load", "POST", "/v1/ask", {"question": "x?", "collection": "alpha", "generator": "hf",
                                            "model": "/etc/passwd"}, 400, "invalid_value", ["model", "rag serve --model"]),
    ("no messages", "POST", "/v1/chat/completions", {"model": "rag"}, 422, "invalid_field", ["messages"]),
    ("last message not the user's", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "invalid_value", ["user"]),
    ("unknown collection", "POST", "/v1/ask", {"question": "x?", "collection": "nope"}, 404, "collection_not_found",
     ["nope", "alpha"]),
    ("unknown model", "POST", "/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]},
     404, "model_not_found", ["gpt-4", "rag/alpha"]),
    ("unknown document", "DELETE", "/v1/documents/0123456789abcdef?collection=alpha", None, 404, "document_not_found",
     ["0123456789abcdef"]),
    ("unknown job", "GET", "/v1/jobs/job-00000000", None, 404, "job_not_found", ["job-00000000"]),
    ("JSON body over the limit", "POST", "/v1/ask", {"question": "x" * 1_100_000}, 413, "request_too_large",
     ["limit"]),
    ("upload not multipart", "POST", "/v1/documents?collection=alpha", {"files": "x"}, 415, "unsupported_media_type",
     ["multipart"]),
    ("empty body", "POST", "/v1/ask", b"", 400, "invalid_json", ["empty", "JSON object"]),
    ("a body that is not UTF-8", "POST", "/v1/ask", '{"question": "caf\u00e9?"}'.encode("latin-1"), 400,
     "invalid_json", ["UTF-8"]),
    ("misspelled chat field", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "user", "content": "x?"}], "temprature": 0.1}, 422,
     "invalid_field", ["'temprature'", "did you mean 'temperature'"]),
    ("misspelled setting in extra_body", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "user", "content": "x?"}], "min_scor": 0.5}, 422,
     "invalid_field", ["'min_scor'", "did you mean 'min_score'"]),
    ("JSON output asked", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "user", "content": "x?"}], "response_format": {"type": "json_object"}},
     422, "invalid_field", ["json_object", "leave response_format out"]),
    ("tools offered", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "user", "content": "x?"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]}, 422, "invalid_field", ["tools are not supported"]),
    ("content of the wrong type", "POST", "/v1/chat/completions",
     {"model": "rag/alpha", "messages": [{"role": "user", "content": 42}]}, 422, "invalid_field",
     ["'messages.0.content' should be a valid string or a valid list", "got 42"]),
    ("a history turn of the wrong shape", "POST", "/v1/ask", {"question": "x?", "history": ["x"]}, 422,
     "invalid_field", ["'history.0' should be"]),
]


@pytest.mark.parametrize("what,method,path,body,status,code,words", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_the_openai_error_shape(admin, what, method, path, body, status, code, words):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else \
        ({"json": body} if body is not None else {})
    response = admin.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"]
    for word in words:
        assert word in error["message"], (word, error["message"])


def test_fields_openai_clients_send_by_default_are_accepted(admin):
    body = {"model": "rag/alpha", "messages": [{"role": "user", "content": "What accuracy did the iris model reach?"}],
            "seed": 1, "user": "u", "frequency_penalty": 0, "presence_penalty": 0, "logprobs": False,
            "response_format": {"type": "text"}, "tools": [], "stream_options": None}
    response = admin.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


def test_a_method_the_endpoint_does_not_take_is_a_request_error(admin):
    response = admin.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_plain_text_body_is_a_bad_request_not_a_field_error(admin):
    response = admin.post("/v1/ask", content=b"What is LoRA?", headers={"content-type": "text/plain"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert "Content-Type: application/json" in response.json()["error"]["message"]


def test_missing_and_unknown_keys_get_401(server, keys):
    missing = httpx.post(server.url + "/v1/retrieve", json={"question": "x?"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=server.v1, api_key="rag-not-a-key").models.list()
    for path in ("/healthz", "/readyz", "/metrics"):  # probes and scrapers need no key
        assert httpx.get(server.url + path).status_code == 200


def test_read_only_key_may_ask_but_not_upload_or_delete(server, keys):
    with client_for(server, keys["reader"]) as reader:
        assert reader.post("/v1/retrieve", json={"question": "bees", "collection": "beta"}).status_code == 200
        upload = reader.post("/v1/documents", params={"collection": "beta"},
                             files={"files": ("new.txt", b"some text", "text/plain")})
        assert upload.status_code == 403 and upload.json()["error"]["code"] == "read_only_key"
        doc_id = reader.get("/v1/documents", params={"collection": "beta"}).json()["data"][0]["id"]
        assert reader.delete(f"/v1/documents/{doc_id}", params={"collection": "beta"}).status_code == 403


def test_upload_limits_and_types(admin):
    too_big = admin.post("/v1/documents", params={"collection": "alpha"},
                         files={"files": ("big.txt", b"word " * 12_000, "text/plain")})
    assert too_big.status_code == 413 and "big.txt" in too_big.json()["error"]["message"]
    wrong_type = admin.post("/v1/documents", params={"collection": "alpha"},
                            files={"files": ("tool.exe", b"MZ\x90\x00", "application/octet-stream")})
    assert wrong_type.status_code == 415
    assert ".pdf" in wrong_type.json()["error"]["message"]
    assert admin.post("/v1/documents", params={"collection": "alpha"}, files={"other": ("a.txt", b"x")}).status_code == 400
    assert {d["file"] for d in admin.get("/v1/documents", params={"collection": "alpha"}).json()["data"]} == set(DOCS["alpha"])


# -- documents: upload, ask, delete, refused -------------------------------------------------------

def test_upload_then_ask_then_delete_then_refused(admin, data_dir):
    created = admin.post("/v1/collections", json={"name": "gamma"})
    assert created.status_code == 201
    question = {"question": "When was the Fastnet lighthouse first lit?", "collection": "gamma"}
    empty = admin.post("/v1/ask", json=question)
    assert empty.status_code == 409 and empty.json()["error"]["code"] == "collection_empty"

    upload = admin.post("/v1/documents", params={"collection": "gamma"}, files=[
        ("files", ("../../Fastnet lighthouse.txt", "The Fastnet lighthouse was first lit in 1854. It stands on a "
                   "rock off the coast of Ireland and was rebuilt in granite in 1904.".encode(), "text/plain")),
        ("files", ("pasta.md", b"# Pasta\n\nBoil the water, salt it, cook the spaghetti for nine minutes.",
                   "text/markdown")),
        ("files", ("broken.pdf", b"%PDF-1.4\n this is not really a PDF", "application/pdf")),
    ])
    assert upload.status_code == 202 and upload.headers["location"] == f"/v1/jobs/{upload.json()['id']}"
    job = wait_for_job(admin, upload.json()["id"])
    assert job["status"] == "partial", job
    files = {f["saved_as"]: f for f in job["files"]}
    assert set(files) == {"Fastnet_lighthouse.txt", "pasta.md", "broken.pdf"}  # sanitized, no ../
    assert all(files[name]["status"] == "added" and files[name]["chunks"] >= 1
               for name in ("Fastnet_lighthouse.txt", "pasta.md"))
    assert files["broken.pdf"]["status"] == "failed" and files["broken.pdf"]["error"]  # the reason, per file
    assert not (data_dir / "gamma" / "uploads" / "broken.pdf").exists()  # later jobs do not trip over it
    assert (data_dir / "gamma" / "uploads" / "pasta.md").is_file()

    answer = admin.post("/v1/ask", json=question).json()
    assert "1854" in answer["text"] and answer["sources"][0]["source"] == "Fastnet_lighthouse.txt"
    documents = admin.get("/v1/documents", params={"collection": "gamma"}).json()["data"]
    lighthouse = next(d for d in documents if d["file"] == "Fastnet_lighthouse.txt")
    assert lighthouse["chunks"] >= 1 and len(lighthouse["hash"]) == 64 and lighthouse["ingested_at"]

    deleted = admin.delete(f"/v1/documents/{lighthouse['id']}", params={"collection": "gamma"})
    assert deleted.status_code == 202
    assert wait_for_job(admin, deleted.json()["id"])["status"] == "succeeded"
    assert [d["file"] for d in admin.get("/v1/documents", params={"collection": "gamma"}).json()["data"]] == ["pasta.md"]
    after = admin.post("/v1/ask", json=question).json()
    assert after["refused"] is True and after["sources"] == [] and after["confidence"] == "none"


# -- keys --------------------------------------------------------------------------------------

def test_keys_file_holds_only_hashes_and_revocation_is_immediate(server, data_dir, keys):
    keys_file = data_dir / "keys.json"
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    stored = keys_file.read_text()
    assert all(key not in stored for key in keys.values())

    temporary = create_key(keys_file, "--name", "temporary")
    with client_for(server, temporary) as client:
        assert client.get("/v1/models").status_code == 200
        listed = CliRunner().invoke(cli, ["keys", "list", "--keys", str(keys_file), "--json"])
        names = [k["name"] for k in json.loads(listed.output)]
        assert "temporary" in names and "hash" not in listed.output and temporary not in listed.output
        revoked = CliRunner().invoke(cli, ["keys", "revoke", "temporary", "--keys", str(keys_file)])
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/v1/models").status_code == 401
    unknown = CliRunner().invoke(cli, ["keys", "revoke", "no-such-key", "--keys", str(keys_file)])
    assert unknown.exit_code == 2 and "no key 'no-such-key'" in unknown.output


def test_no_keys_on_a_network_address_is_refused(tmp_path):
    started = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--host", "0.0.0.0", "--index",
                              str(tmp_path / "index")], env=server_env(), capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0 without API keys" in lines[0]


# -- logs and metrics (last: they read what the tests above did) --------------------------------------

def test_one_log_line_per_request_with_the_key_label_never_the_key(server, keys, admin):
    admin.post("/v1/retrieve", json={"question": "volcano", "collection": "beta"}, headers={"x-request-id": "trace-42"})
    deadline = time.monotonic() + 10  # the line is written once the response has gone out
    while '"trace-42"' not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    line = next(json.loads(l) for l in log.splitlines() if '"trace-42"' in l)
    assert line["method"] == "POST" and line["path"] == "/v1/retrieve" and line["status"] == 200
    assert line["collection"] == "beta" and line["key"] == "admin" and line["duration_ms"] > 0
    assert all(key not in log for key in keys.values())


def test_metrics_in_prometheus_format(server, keys, admin):
    admin.post("/v1/ask", json={"question": "What accuracy did the iris classifier reach?", "collection": "alpha"})
    text = httpx.get(server.url + "/metrics").text
    assert 'rag_http_requests_total{endpoint="/v1/ask",method="POST",status="200"}' in text
    assert 'rag_http_request_duration_seconds_bucket{endpoint="/v1/retrieve",le="0.1",method="POST"}' in text
    assert 'rag_generation_tokens_total{collection="alpha",generator="extractive"}' in text
    assert 'rag_ingest_jobs_total{collection="gamma",status="succeeded"}' in text
    assert all(key not in text for key in keys.values())


def test_settings_come_from_the_environment_and_a_config_file(tmp_path):
    # A non-loopback host without keys is refused before anything loads: a quick way to see
    # which setting won.
    config_file = tmp_path / "serve.yaml"
    config_file.write_text("host: 0.0.0.0\nrate-limit: 5\n")
    index = ["--index", str(tmp_path / "index")]
    from_file = CliRunner().invoke(cli, ["serve", *index, "--config", str(config_file)])
    assert from_file.exit_code == 2 and "refusing to serve on 0.0.0.0" in from_file.output
    from_env = CliRunner(env={"RAG_SERVE_HOST": "192.0.2.1"}).invoke(cli, ["serve", *index, "--config",
                                                                             str(config_file)])
    assert "refusing to serve on 192.0.2.1" in from_env.output  # the environment wins over the file
    bad = CliRunner(env={"RAG_SERVE_PORT": "eighty"}).invoke(cli, ["serve", *index])
    assert bad.exit_code == 2 and "RAG_SERVE_PORT='eighty'" in bad.output
    config_file.write_text("hots: 0.0.0.0\n")
    typo = CliRunner().invoke(cli, ["serve", *index, "--config", str(config_file)])
    assert typo.exit_code == 2 and "unknown option hots" in typo.output
