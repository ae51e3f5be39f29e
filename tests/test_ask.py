"""ask(): retrieval, refusal, citations, streaming, follow-ups and every bad input,
on the real shared corpus with the real embedder and index.

The extractive generator needs no model, so it carries the end-to-end tests here;
the LLM backends are exercised end to end in test_openai_server.py and
test_hf_generator.py. A scripted generator (registered under a test name) checks
the glue that only an LLM path reaches: refusal detection in the model's reply,
whitespace in streamed pieces, and the LLM question rewriting."""

from __future__ import annotations

import re
import socket

import pytest
import yaml

import rag
from rag.prompts import PROMPTS_DIR
from rag import generators
from rag.errors import (
    BackendNotFoundError,
    ConfigurationError,
    EmbedderMismatchError,
    IndexCorruptError,
    IndexNotFoundError,
    InputError,
    ServerUnavailableError,
)
from rag.generators import Generator
from rag.qa import AnswerStream, heuristic_standalone
from rag.types import Answer

REFUSAL = yaml.safe_load((PROMPTS_DIR / "messages.yaml").read_text(encoding="utf-8"))["refusal"]
CHATBOTS = "Besides ChatGPT, which platforms are mentioned for building chatbots without complex programming?"


@pytest.fixture
def idx(corpus_txt_index):
    return corpus_txt_index.path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_GENERATOR", "RAG_MODEL", "RAG_MIN_SCORE",
                 "RAG_PROMPTS_DIR", "RAG_INDEX_DIR", "RAG_EMBED_MODEL"):
        monkeypatch.delenv(name, raising=False)


def citations(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


# ---------------------------------------------------------------- answers


def test_extractive_answer_cites_sources_it_returns(idx):
    answer = rag.ask(CHATBOTS, idx, generator="extractive")
    assert isinstance(answer, Answer)
    assert not answer.refused and answer.generator == "extractive" and answer.lang == "en"
    assert "Dialogflow" in answer.text and "Rasa" in answer.text
    cited = citations(answer.text)
    assert cited and all(1 <= n <= len(answer.sources) for n in cited)
    assert answer.sources[0].source.startswith("004")
    assert 0 < answer.score <= 1 and answer.standalone_question == CHATBOTS
    assert {"retrieval", "generation", "total"} <= set(answer.timings)
    assert answer.to_dict()["sources"][0]["source"] == answer.sources[0].source


@pytest.mark.parametrize("question,doc,expected", [
    ("At which URL was the local scoring service hosted?", "002", "localhost:6789/score"),
    ("What learning rate was used for LoRA training?", "001", "learning_rate=5e-4"),
])
def test_extractive_answers_quote_the_evidence(idx, question, doc, expected):
    answer = rag.ask(question, idx, generator="extractive", k=5)
    assert expected in answer.text
    assert doc in {s.source[:3] for s in answer.sources}


def test_cross_lingual_question_is_answered_from_the_other_language(idx):
    answer = rag.ask("检索增强生成特别适用于哪些场景?", idx, generator="extractive")
    assert not answer.refused and answer.lang == "zh"
    assert any(s.source.startswith("003") for s in answer.sources)
    assert all(1 <= n <= len(answer.sources) for n in citations(answer.text))


@pytest.mark.parametrize("question,lang", [
    ("What is the boiling point of water on Mars?", "en"),
    ("오늘 서울의 날씨는 어떤가요?", "ko"),
])
def test_unanswerable_question_is_refused_in_its_language(idx, question, lang):
    answer = rag.ask(question, idx, generator="extractive")
    assert answer.refused
    assert answer.lang == lang and answer.text == REFUSAL[lang]
    assert answer.sources == []


def test_min_score_sets_the_refusal_threshold(idx):
    # the answerability score is in 0..1: above 1 everything is refused, at or below 0 nothing
    assert rag.ask(CHATBOTS, idx, generator="extractive", min_score=1.01).refused
    assert not rag.ask("What is the boiling point of water on Mars?", idx, generator="extractive",
                       min_score=-1.0).refused


# ---------------------------------------------------------------- streaming


def test_stream_pieces_join_to_the_answer(idx):
    streamed = rag.ask(CHATBOTS, idx, generator="extractive", stream=True)
    assert isinstance(streamed, AnswerStream)
    assert streamed.sources and streamed.sources[0].source.startswith("004")  # before the first piece
    pieces = list(streamed)
    assert len(pieces) >= 1  # the extractive answer streams one piece per passage (one or two)
    assert "".join(pieces) == streamed.answer.text
    assert streamed.answer.text == rag.ask(CHATBOTS, idx, generator="extractive").text
    assert "generation" in streamed.answer.timings


def test_stream_of_a_refusal_is_one_piece(idx):
    streamed = rag.ask("오늘 서울의 날씨는 어떤가요?", idx, generator="extractive", stream=True)
    assert list(streamed) == [REFUSAL["ko"]]
    assert streamed.refused and streamed.answer.sources == [] and streamed.sources == []


# ---------------------------------------------------------------- follow-ups


def test_follow_up_borrows_the_previous_question_for_retrieval(idx):
    first = "What pretraining objective does RoBERTa use?"
    previous = rag.ask(first, idx, generator="extractive")
    follow = rag.ask("And XLNet?", idx, generator="extractive", history=[(first, previous.text)])
    assert follow.question == "And XLNet?"
    assert follow.standalone_question == f"{first} And XLNet?"
    assert any(s.source.startswith("004") for s in follow.sources)


def test_standalone_question_without_a_reference_is_left_alone(idx):
    history = [("What pretraining objective does RoBERTa use?", "MLM [1]")]
    question = "At which URL was the local scoring service hosted in the Azure notebook?"
    answer = rag.ask(question, idx, generator="extractive", history=history)
    assert answer.standalone_question == question
    assert rag.ask(question, idx, generator="extractive").standalone_question == question


@pytest.mark.parametrize("question,rewritten", [
    ("What about its recall?", True),
    ("그것의 재현율은?", True),
    ("它呢?", True),
    ("Which Azure service hosts the AKS deployment of the recommender model?", False),
])
def test_heuristic_rewriting(question, rewritten):
    history = [("What precision did the Titanic model reach?", "0.82 [1]")]
    out = heuristic_standalone(question, history)
    assert out == (f"What precision did the Titanic model reach? {question}" if rewritten else question)
    assert heuristic_standalone(question, []) == question


# ---------------------------------------------------------------- the glue an LLM reaches (scripted)


class Scripted(Generator):
    """Replies with fixed pieces; records the requests it got."""

    name = model = "scripted"

    def __init__(self, pieces):
        self.pieces, self.requests = pieces, []

    def stream(self, request):
        self.requests.append(request)
        yield from self.pieces


@pytest.fixture
def scripted(monkeypatch):
    def install(pieces):
        gen = Scripted(pieces)
        generators.register_generator("scripted", lambda model: gen, "replays fixed pieces", replace=True)
        return gen

    yield install
    generators.unregister_generator("scripted")


def test_llm_reply_with_whitespace_streams_to_the_stripped_answer(idx, scripted):
    gen = scripted(["\n", " Dialogflow", " and", " Rasa", " [1]", ".", "\n\n", " More.", " \n"])
    streamed = rag.ask(CHATBOTS, idx, generator="scripted", stream=True, temperature=0.7, top_p=0.5,
                       max_tokens=64, stop=["###"])
    pieces = list(streamed)
    assert "".join(pieces) == streamed.answer.text == "Dialogflow and Rasa [1].\n\n More."
    request = gen.requests[0]
    assert (request.temperature, request.top_p, request.max_tokens, request.stop) == (0.7, 0.5, 64, ["###"])
    assert request.messages[0]["role"] == "system" and REFUSAL["en"] in request.messages[-1]["content"]
    assert "[1]" in request.messages[-1]["content"] and CHATBOTS in request.messages[-1]["content"]


def test_llm_that_answers_with_the_refusal_sentence_is_a_refusal(idx, scripted):
    scripted([" 문서에 이 질문에 대한 답이 없습니다.", "\n"])
    answer = rag.ask("XLNet의 학습 비용은 얼마였나요?", idx, generator="scripted", min_score=-1)
    assert answer.refused and answer.text == REFUSAL["ko"] and answer.sources == []


def test_llm_rewrites_the_follow_up_question(idx, scripted):
    gen = scripted(["What pretraining objective does XLNet use?\nextra line"])
    gen.condense_with_llm = True  # a generator whose rewrite measured better than the heuristic
    history = [("What pretraining objective does RoBERTa use?", "MLM [1]")]
    answer = rag.ask("And XLNet?", idx, generator="scripted", history=history)
    assert answer.standalone_question == "What pretraining objective does XLNet use?"
    condense, final = gen.requests
    assert "Last question: And XLNet?" in condense.messages[0]["content"] and condense.temperature == 0.0
    assert [m["content"] for m in final.messages[1:3]] == list(history[0])


def test_follow_ups_use_the_instant_heuristic_unless_the_llm_measured_better(idx, scripted, monkeypatch):
    gen = scripted(["XLNet uses permutation language modeling [1]."])
    history = [("What pretraining objective does RoBERTa use?", "MLM [1]")]
    answer = rag.ask("And XLNet?", idx, generator="scripted", history=history)
    assert answer.standalone_question == "What pretraining objective does RoBERTa use? And XLNet?"
    assert len(gen.requests) == 1  # no rewrite call: the model only answered
    monkeypatch.setenv("RAG_CONDENSE", "llm")  # forced on
    rag.ask("And XLNet?", idx, generator="scripted", history=history)
    assert len(gen.requests) == 3


def test_prompt_folder_reaches_the_model(idx, scripted, tmp_path, monkeypatch):
    (tmp_path / "system.jinja").write_text("Reply in {{ language }} or say: {{ refusal }}", encoding="utf-8")
    gen = scripted(["ok [1]"])
    rag.ask(CHATBOTS, idx, generator="scripted", prompts_dir=str(tmp_path))
    assert gen.requests[-1].messages[0]["content"] == f"Reply in English or say: {REFUSAL['en']}"
    monkeypatch.setenv("RAG_PROMPTS_DIR", str(tmp_path))
    rag.ask("오늘 XLNet은 무엇인가요?", idx, generator="scripted", min_score=-1)
    assert gen.requests[-1].messages[0]["content"].startswith("Reply in Korean")
    monkeypatch.delenv("RAG_PROMPTS_DIR")
    rag.ask(CHATBOTS, idx, generator="scripted")
    assert gen.requests[-1].messages[0]["content"].startswith("You are a careful assistant")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("question", ["", "   ", "\n\t "])
def test_empty_question(idx, question):
    with pytest.raises(InputError, match="question is empty"):
        rag.ask(question, idx, generator="extractive")


def test_overlong_question(idx):
    with pytest.raises(InputError, match="more than 4000"):
        rag.ask("why " * 1500, idx, generator="extractive")


@pytest.mark.parametrize("option,value,match", [
    ("temperature", -0.1, "temperature=-0.1"),
    ("temperature", 2.5, "temperature=2.5"),
    ("temperature", float("nan"), "temperature=nan"),
    ("top_p", 0.0, "top_p=0.0"),
    ("top_p", 1.5, "top_p=1.5"),
    ("max_tokens", 0, "max_tokens=0"),
    ("k", 0, "k=0"),
    ("k", 101, "k=101"),
])
def test_settings_out_of_range(idx, option, value, match):
    with pytest.raises(InputError, match=re.escape(match)):
        rag.ask("What is LoRA?", idx, generator="extractive", **{option: value})


def test_no_index_yet(tmp_path):
    with pytest.raises(IndexNotFoundError) as caught:
        rag.ask("What is LoRA?", tmp_path / "index", generator="extractive")
    assert "rag ingest" in str(caught.value) and str(tmp_path / "index") in str(caught.value)


def test_corrupt_index(corpus_txt_index, index_copy):
    copy = index_copy(corpus_txt_index)
    version = (copy / "CURRENT").read_text().strip()
    (copy / version / "dense.faiss").unlink()
    with pytest.raises(IndexCorruptError) as caught:
        rag.ask("What is LoRA?", copy, generator="extractive")
    assert "--rebuild" in str(caught.value)


def test_index_built_with_another_embedder(idx):
    with pytest.raises(EmbedderMismatchError) as caught:
        rag.ask("What is LoRA?", idx, generator="extractive", embed_model="minilm")
    message = str(caught.value)
    assert "'use-multilingual'" in message and "'minilm'" in message and "--embed-model" in message


def test_unknown_generator(idx):
    with pytest.raises(BackendNotFoundError) as caught:
        rag.ask("What is LoRA?", idx, generator="gpt-9")
    assert "unknown generator 'gpt-9'" in str(caught.value)
    for name in ("openai", "hf", "extractive"):
        assert name in str(caught.value)


def test_openai_without_key_or_base_url(idx):
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        rag.ask("What is LoRA?", idx, generator="openai")


def test_openai_server_not_running(idx, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ServerUnavailableError) as caught:
        rag.ask(CHATBOTS, idx, generator="openai", model="any")
    assert url in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)
