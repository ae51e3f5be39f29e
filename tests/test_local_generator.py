"""The `local` generator: the bundled SmolLM2-135M-Instruct GGUF run in process by
llama.cpp. Streaming, max_tokens, stop sequences, CJK prompts, two threads sharing
one model, cancelling by closing the stream, and rag.ask end to end over a small index.

Answers are greedy (temperature 0) so a run can be compared with another."""

from __future__ import annotations

import threading
import time

import pytest

import rag
from rag.errors import ModelLoadError
from rag.generators import GenerationRequest, get_generator
from rag.generators.local import LocalGenerator
from rag.qa import fitted_excerpt
from rag.settings import GenerationSettings

pytestmark = pytest.mark.slow

FRANCE = [{"role": "user", "content": "Write two sentences about Paris, the capital of France."}]


@pytest.fixture(scope="module")
def local():
    return get_generator("local")


def _request(messages=FRANCE, **options) -> GenerationRequest:
    return GenerationRequest(messages=messages, settings=GenerationSettings(
        **{"temperature": 0.0, "top_p": 1.0, "max_tokens": 24, **options}))


def test_the_bundled_model_streams_text_piece_by_piece(local):
    assert local.name == "local" and local.path.suffix == ".gguf"
    assert get_generator("local") is local  # loaded once per process
    pieces = list(local.stream(_request()))
    assert len(pieces) > 3 and all(isinstance(p, str) and p for p in pieces)
    assert "Paris" in "".join(pieces) or len("".join(pieces).split()) > 3


def test_the_bundled_model_runs_from_a_q8_0_copy_made_once(local, tmp_path, monkeypatch):
    """Q4_1 has no fast prompt kernel in llama.cpp on x86; Q8_0 holds the same weights."""
    from rag.generators.local import faster_copy

    assert local.weights.name.endswith(".Q8_0.gguf") and local.weights.is_file()
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    copy = faster_copy(local.path)
    assert copy.parent == tmp_path / "local" and copy.stat().st_size > local.path.stat().st_size
    assert faster_copy(local.path) == copy and not list(copy.parent.glob("*.partial*"))
    monkeypatch.setenv("RAG_CACHE_DIR", "/proc/no-such-place")  # not writable: the original file is used
    assert faster_copy(local.path) == local.path


def test_max_tokens_bounds_the_answer(local):
    pieces = list(local.stream(_request(max_tokens=5)))
    assert 1 <= len(pieces) <= 5  # one piece per generated token (some are merged, none split)
    assert local.count_tokens("".join(pieces)) <= 6


def test_a_stop_sequence_ends_the_answer_before_it(local):
    full = local.generate(_request(max_tokens=32))
    words = full.split()
    assert len(words) >= 4, full
    stop = words[3]  # a word in the middle of the greedy answer
    cut = local.generate(_request(max_tokens=32, stop=[stop]))
    assert stop not in cut
    assert full.startswith(cut.rstrip()) and len(cut) < len(full)


@pytest.mark.parametrize("question", ["파리는 어느 나라의 수도입니까? 한 문장으로 답하세요.",
                                      "巴黎是哪个国家的首都？请用一句话回答。"])
def test_korean_and_chinese_prompts_stream_without_error(local, question):
    text = local.generate(_request([{"role": "user", "content": question}], max_tokens=16))
    assert isinstance(text, str) and text.strip()
    assert local.count_tokens(question) > 5


def test_two_threads_asking_at_once_each_get_the_whole_answer(local):
    alone = local.generate(_request(max_tokens=16))
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        results[i] = local.generate(_request(max_tokens=16))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    # Generation is serialized on the one llama.cpp context: no interleaved tokens.
    assert results == {0: alone, 1: alone}


def test_closing_the_stream_stops_generation_and_frees_the_model(local):
    stream = local.stream(_request(max_tokens=200))
    first = [next(stream), next(stream)]
    assert all(first)
    started = time.perf_counter()
    stream.close()  # what the UI's Stop button does
    closed_s = time.perf_counter() - started
    assert closed_s < 1.0
    # The lock is free at once: the next question starts instead of waiting for 200 tokens.
    assert local._lock.acquire(timeout=1.0)
    local._lock.release()


def test_excerpts_fit_the_models_token_budget(local, corpus_txt_index):
    sources = rag.retrieve("정밀도와 재현율의 차이는?", corpus_txt_index.path, k=5)
    for source in sources:
        shown = fitted_excerpt(source, local, local.context_chars)
        assert local.count_tokens(shown) <= local.context_tokens * 1.15
        assert shown in source.text
    tokens, chars = local.context_first  # the best source gets the largest share
    best = fitted_excerpt(sources[0], local, chars, tokens)
    assert local.count_tokens(best) <= tokens * 1.15 and len(best) > len(fitted_excerpt(sources[0], local, 600))


def test_the_system_prompt_is_read_once_then_reused_from_the_kv_cache(local, corpus_txt_index):
    # The packaged system prompt is the same for every question: llama.cpp keeps the evaluated
    # prefix, so a later question (another language, other sources) reads only its own part.
    import llama_cpp

    from rag.prompts import Prompts

    system = Prompts().render("system.jinja", language="English", refusal="-")
    evaluated = []
    for question in ("What is the precision of the model?", "정밀도와 재현율의 차이는?"):
        llama_cpp.llama_perf_context_reset(local.llm.ctx)
        rag.ask(question, corpus_txt_index.path, generator="local", k=5, temperature=0, max_tokens=1)
        evaluated.append(llama_cpp.llama_perf_context(local.llm.ctx).n_p_eval)
    prompt = local.llm.tokenize(local.llm.detokenize(local.llm._input_ids.tolist()), add_bos=False, special=True)
    assert evaluated[1] <= len(prompt) - local.count_tokens(system) + 8


def test_ask_end_to_end_over_a_small_index(local, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mission.txt").write_text(
        "The Orion-7 survey mission launched in March 2031 from Kourou.\n\n"
        "The payload lead is Dr. Ada Moreno. The spacecraft carries a 40 cm infrared telescope "
        "that maps cold dust clouds in the outer galaxy.\n", encoding="utf-8")
    (docs / "kitchen.txt").write_text(
        "Sourdough bread needs a starter fed with flour and water every day. Bake it at 240 degrees "
        "for forty minutes with steam during the first fifteen.\n", encoding="utf-8")
    index = tmp_path / "index"
    rag.ingest(str(docs), index=str(index), progress=False)

    answer = rag.ask("What does the Orion-7 telescope map?", str(index), generator="local", k=2,
                     temperature=0, max_tokens=40)
    assert answer.generator == "local" and not answer.refused
    assert answer.text.strip() and answer.sources
    assert answer.sources[0].source == "mission.txt"
    assert answer.timings["generation"] > 0

    stream = rag.ask("When did the Orion-7 mission launch?", str(index), generator="local", k=2,
                     temperature=0, max_tokens=24, stream=True)
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces).strip()
    # The finished answer is the streamed text after the citation check (markers moved or added).
    assert stream.answer.generator == "local" and stream.answer.text and not stream.answer.refused

    # Stop: leaving the loop early ends the generation and frees the model at once.
    stream = rag.ask("Who is the payload lead of Orion-7?", str(index), generator="local", k=2,
                     temperature=0, max_tokens=300, stream=True)
    for n, piece in enumerate(stream):
        if n == 1:
            break
    assert local._lock.acquire(timeout=1.0)
    local._lock.release()


def test_a_model_that_is_not_gguf_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelLoadError, match="--generator hf"):
        LocalGenerator("Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ModelLoadError, match="no such GGUF file"):
        LocalGenerator(str(tmp_path / "missing.gguf"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    with pytest.raises(ModelLoadError, match="complete GGUF"):
        LocalGenerator(str(broken))


def test_hf_hands_a_gguf_file_to_llama_cpp(local):
    gen = get_generator("hf", str(local.path))
    assert isinstance(gen, LocalGenerator) and gen.name == "local"


# AMX tile and AVX-512 instructions, as objdump names them: a llama.cpp built natively on a CPU
# that has them carries them, and segfaults or stops with an illegal instruction elsewhere
# (README, "Why GGML_NATIVE=OFF"). Measured on this project's 2-core AVX-512 build machine: a
# native build's libggml-cpu.so holds 15,649 zmm instructions, the README's portable build none.
# (A GGML_CPU_ALL_VARIANTS build, one library per CPU picked at run time, is not what the README
# installs: its Sapphire Rapids variant would hold AMX code on purpose.)
_NOT_PORTABLE = ("%zmm", "%k1", "tileloadd", "tdpb", "ldtilecfg", "tilestored")


def test_the_installed_llama_cpp_is_the_portable_build():
    import shutil
    import subprocess
    from pathlib import Path

    import llama_cpp

    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    libs = sorted(Path(llama_cpp.__file__).parent.glob("lib/libggml-cpu*.so"))
    assert libs, "llama_cpp ships no libggml-cpu library"
    for lib in libs:
        code = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(lib)], capture_output=True,
                              text=True, check=True).stdout
        found = {name for name in _NOT_PORTABLE if name in code}
        assert not found, (f"{lib.name} holds {sorted(found)}: llama-cpp-python was built natively; reinstall it "
                           'with CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir --force-reinstall llama-cpp-python')
    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX_INT8 = 1" not in info and "AVX512 = 1" not in info, info
