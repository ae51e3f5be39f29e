"""The openai generator against a REAL OpenAI-compatible server: llama.cpp's
(`python -m llama_cpp.server`) serving the bundled SmolLM2-135M GGUF, called
through rag with the official openai client. Skipped when llama_cpp is missing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from reporting import report

import rag
from rag.settings import GenerationSettings
from rag.errors import ServerUnavailableError
from rag.generators import GenerationRequest, get_generator

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")

pytestmark = pytest.mark.slow

CHATBOTS = "Besides ChatGPT, which platforms are mentioned for building chatbots without complex programming?"
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, process, url, model, start_s):
        self.process, self.url, self.model, self.start_s = process, url, model, start_s

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    from rag.generators.hf import bundled_gguf

    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    models = None
    while time.perf_counter() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                models = json.load(response)
            break
        except OSError:
            time.sleep(0.2)
    start_s = time.perf_counter() - started
    srv = Server(process, url, models["data"][0]["id"] if models else None, start_s)
    if models is None:
        srv.stop()
        pytest.fail(f"llama_cpp.server did not answer within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")
    report(request, f"\nllama_cpp.server ready in {start_s:.1f} s (model id {srv.model})")
    yield srv
    srv.stop()


@pytest.fixture
def openai_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for name in ("RAG_GENERATOR", "RAG_MODEL", "OPENAI_MODEL", "RAG_MIN_SCORE", "RAG_PROMPTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return server


def test_server_reports_the_bundled_model(openai_env):
    assert openai_env.model and openai_env.model.endswith(".gguf")
    assert openai_env.start_s < START_TIMEOUT_S


# The rag.ask tests below all send the same prompt (same question, k=1): llama.cpp
# reuses the evaluated prompt, so only the first pays for it (~15-40 s on 2 busy cores).


def ask(index, **options):
    return rag.ask(CHATBOTS, index, k=1, **{"generator": "openai", "max_tokens": 48, "temperature": 0, **options})


def test_ask_through_the_server_returns_text_and_sources(openai_env, corpus_txt_index):
    answer = ask(corpus_txt_index.path, model=openai_env.model)
    assert answer.generator == "openai" and answer.model == openai_env.model
    assert answer.text.strip()
    assert not answer.refused
    assert len(answer.sources) == 1 and answer.sources[0].source.startswith("004")
    assert "Dialogflow" in answer.sources[0].text
    assert answer.timings["generation"] > 0


def test_openai_is_the_default_when_a_base_url_is_set(openai_env, corpus_txt_index):
    answer = ask(corpus_txt_index.path, generator=None, model=openai_env.model, max_tokens=8)
    assert answer.generator == "openai" and answer.text


def test_streaming_yields_several_pieces(openai_env, corpus_txt_index):
    streamed = ask(corpus_txt_index.path, model=openai_env.model, stream=True)
    assert streamed.sources  # known before the first piece
    pieces = list(streamed)
    assert len(pieces) >= 3
    assert "".join(pieces) == streamed.answer.text and streamed.answer.text


def test_stop_sequence_is_honoured_through_ask(openai_env, corpus_txt_index):
    free = ask(corpus_txt_index.path, model=openai_env.model)
    stopped = ask(corpus_txt_index.path, model=openai_env.model, stop=["\n"])
    assert stopped.text and "\n" not in stopped.text
    if "\n" in free.text:  # greedy decoding: the same reply, cut at the first line break
        assert free.text.startswith(stopped.text) and len(stopped.text) < len(free.text)


def test_temperature_top_p_and_limits_reach_the_server(openai_env, corpus_txt_index, monkeypatch):
    gen = get_generator("openai", openai_env.model)
    sent = []
    create = gen.client.chat.completions.create

    def spy(**kwargs):
        sent.append(kwargs)
        return create(**kwargs)  # the real call: the server must accept these values

    monkeypatch.setattr(gen.client.chat.completions, "create", spy)
    answer = ask(corpus_txt_index.path, model=openai_env.model, max_tokens=16, temperature=0.7, top_p=0.5,
                 stop=["###"])
    assert answer.text
    (kwargs,) = sent
    assert kwargs["model"] == openai_env.model and kwargs["stream"] is True
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["max_tokens"], kwargs["stop"]) == (0.7, 0.5, 16, ["###"])
    assert kwargs["messages"][0]["role"] == "system" and "[1]" in kwargs["messages"][-1]["content"]


# Short direct prompts from here on.


def _colors(**options):
    return GenerationRequest(messages=[{"role": "user", "content": "List three colors, one per line."}],
                             settings=GenerationSettings(**{"temperature": 0.0, "max_tokens": 48, **options}))


def test_stop_sequence_is_honoured_by_the_generator(openai_env):
    gen = get_generator("openai", openai_env.model)
    free = gen.generate(_colors())
    stopped = gen.generate(_colors(stop=["\n"]))
    assert "\n" in free.strip()  # the model does write several lines
    assert stopped and "\n" not in stopped and free.startswith(stopped)


def test_max_tokens_bounds_the_reply(openai_env):
    gen = get_generator("openai", openai_env.model)
    request = GenerationRequest(messages=[{"role": "user", "content": "Write a long story about a cat."}],
                                settings=GenerationSettings(temperature=0.0, max_tokens=5))
    pieces = list(gen.stream(request))
    assert 1 <= len(pieces) <= 5


def test_a_stopped_server_is_reported(openai_env, corpus_txt_index):
    openai_env.stop()  # the last test of the module: the fixture's teardown is then a no-op
    with pytest.raises(ServerUnavailableError) as caught:
        ask(corpus_txt_index.path, model=openai_env.model, max_tokens=8)
    assert openai_env.url in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)
