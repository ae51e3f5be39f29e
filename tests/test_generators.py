"""Generator lookup and the backends that need no model server: the registry,
the default choice, OpenAI configuration errors, and the extractive generator
with the real embedder over real corpus chunks.

The OpenAI backend against a real server is in test_openai_server.py, the
Hugging Face backend in test_hf_generator.py."""

from __future__ import annotations

import re
import socket

import pytest

from rag.settings import GenerationSettings
from rag import generators
from rag.config import generator_name
from rag.errors import BackendNotFoundError, ConfigurationError, ServerUnavailableError
from rag.generators import GenerationRequest, Generator, get_generator
from rag.generators.extractive import MAX_PASSAGES, ExtractiveGenerator, split_passages, split_sentences
from rag.retrieval import RetrievalSettings, search


@pytest.fixture
def no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_GENERATOR", "RAG_MODEL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


# ---------------------------------------------------------------- the registry


def test_unknown_generator_lists_the_known_ones():
    with pytest.raises(BackendNotFoundError) as caught:
        get_generator("gpt5-turbo")
    message = str(caught.value)
    assert message.startswith("unknown generator 'gpt5-turbo': choose one of extractive, hf, local, openai")
    assert caught.value.known == generators.generator_names()
    assert isinstance(caught.value, KeyError)  # still a KeyError for callers that catch those


def test_generators_are_loaded_once_per_process():
    assert get_generator("extractive") is get_generator("extractive")
    assert get_generator("extractive").is_llm is False


def test_default_generator_depends_on_the_environment(no_openai_env, monkeypatch):
    assert generator_name() == "extractive"  # offline default (README, "Generators")
    assert generator_name("extractive") == "extractive"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert generator_name() == "openai"
    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    assert generator_name() == "extractive"


def test_generate_joins_the_streamed_pieces():
    class Pieces(Generator):
        name = model = "pieces"

        def stream(self, request):
            yield from ["a", "b", "c"]

    assert Pieces().generate(GenerationRequest(messages=[])) == "abc"


# ---------------------------------------------------------------- OpenAI configuration


def test_openai_without_key_or_base_url_says_what_to_set(no_openai_env):
    with pytest.raises(ConfigurationError) as caught:
        get_generator("openai")
    message = str(caught.value)
    assert "OPENAI_API_KEY" in message and "OPENAI_BASE_URL" in message and "extractive" in message


def test_openai_with_a_base_url_needs_no_key(no_openai_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    gen = get_generator("openai", "some-model")
    assert gen.model == "some-model" and gen.base_url == "http://127.0.0.1:9/v1"
    assert str(gen.client.base_url).startswith("http://127.0.0.1:9/v1")
    # a new endpoint gets a new client
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:10/v1")
    assert get_generator("openai", "some-model") is not gen


def test_openai_model_defaults(no_openai_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert get_generator("openai").model == "gpt-4o-mini"
    monkeypatch.setenv("RAG_MODEL", "my-model")
    from rag.generators.openai_backend import OpenAIGenerator

    assert OpenAIGenerator().model == "my-model"


def test_openai_server_that_is_not_there(no_openai_env, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    from rag.generators.openai_backend import OpenAIGenerator

    gen = OpenAIGenerator("any", base_url=url, max_retries=0, timeout=5)
    with pytest.raises(ServerUnavailableError) as caught:
        gen.generate(GenerationRequest(messages=[{"role": "user", "content": "hi"}], settings=GenerationSettings(max_tokens=4)))
    assert url in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)


# ---------------------------------------------------------------- extractive


def test_split_sentences_handles_latin_and_cjk_punctuation():
    text = "XLNet is autoregressive. It uses permutations! Short.\n大模型发展很快。企业需要考虑成本。\n- bullet item here"
    assert split_sentences(text) == [
        "XLNet is autoregressive.", "It uses permutations!", "大模型发展很快。", "企业需要考虑成本。", "bullet item here",
    ]


def _request(index, question, embedder, k=5):
    sources = search(index, question, RetrievalSettings(k=k)).sources
    return GenerationRequest(messages=[], question=question, sources=sources, embedder=embedder)


def test_extractive_answer_quotes_the_documents_with_valid_citations(corpus_txt_index, embedder):
    index = corpus_txt_index.load()
    question = "Besides ChatGPT, which platforms are mentioned for building chatbots without complex programming?"
    request = _request(index, question, embedder)
    text = ExtractiveGenerator().generate(request)
    lines = text.split("\n")
    assert 1 <= len(lines) <= MAX_PASSAGES
    for line in lines:
        cited = re.fullmatch(r"(.+) \[(\d+)\]", line)
        assert cited, line
        number = int(cited.group(2))
        assert 1 <= number <= len(request.sources)
        quoted = "".join(cited.group(1).split())
        # taken from the cited source, word for word (its Markdown bold aside)
        assert quoted in "".join(request.sources[number - 1].text.replace("**", "").split())
    assert "Dialogflow" in text and "Rasa" in text


def test_extractive_works_without_an_embedder_and_with_no_sources(corpus_txt_index):
    index = corpus_txt_index.load()
    request = _request(index, "What per-device training batch size was used?", None)
    assert re.search(r"\[\d\]$", ExtractiveGenerator().generate(request))
    assert list(ExtractiveGenerator().stream(GenerationRequest(messages=[], question="q"))) == []


def test_extractive_streams_one_cited_passage_per_piece(corpus_txt_index, embedder):
    request = _request(corpus_txt_index.load(), "What pretraining objective does RoBERTa use?", embedder)
    pieces = list(ExtractiveGenerator().stream(request))
    assert 1 <= len(pieces) <= MAX_PASSAGES
    assert not pieces[0].startswith("\n") and all(p.startswith("\n") for p in pieces[1:])
    assert all(re.search(r" \[\d\]$", p) for p in pieces)
    assert "".join(pieces) == ExtractiveGenerator().generate(request)


def test_extractive_looks_past_the_first_sentences_of_a_long_chunk():
    from rag.types import Source

    filler = " ".join(f"Filler sentence number {i} talks about something else." for i in range(30))
    text = filler + " The local scoring service was hosted at http://localhost:6789/score today."
    source = Source(text=text, source="notes.txt", path="/docs/notes.txt", page=None, score=1.0)
    request = GenerationRequest(messages=[], question="At which URL was the local scoring service hosted?",
                                sources=[source])
    first = next(iter(ExtractiveGenerator().stream(request)))
    assert "The local scoring service was hosted at http://localhost:6789/score today." in first
    assert first.endswith(" [1]")


# ---------------------------------------------------------------- extractive answers that answer


def test_split_passages_keeps_a_label_with_its_value_and_a_heading_with_its_text():
    text = "임곗값: 0.4\n오차 행렬\n재현율: 0.8197\n\nRoBERTa:\nPretraining objective is MLM, similar to BERT."
    passages = split_passages(text)
    assert any("임곗값: 0.4" in p and "재현율: 0.8197" in p for p in passages)
    assert "RoBERTa: Pretraining objective is MLM, similar to BERT." in passages


def test_a_numbered_heading_is_not_a_passage_of_its_own():
    # "## 1. Autoregressive Pretraining:" splits after "1."; the bare number used to join
    # the heading above it ("Key Features of XLNet: 1.") and read as a number in answers.
    text = ("# **Key Features of XLNet:**\n\n## 1. Autoregressive Pretraining:\n\n"
            "XLNet uses a permutation-based autoregressive pretraining objective.\n\n"
            "## 2. Two-Stream Attention:\n\nIt keeps content and query streams apart.")
    passages = split_passages(text)
    assert not any(p.rstrip().endswith(("1.", "2.")) for p in passages), passages
    assert ("Key Features of XLNet: Autoregressive Pretraining: "
            "XLNet uses a permutation-based autoregressive pretraining objective.") in passages
    assert "In 2020." in split_sentences("It was released. In 2020.")  # a year still ends a sentence


def test_a_heading_alone_is_no_answer_and_a_line_ending_mid_sentence_goes_on():
    from rag.types import Source

    # A PDF's wrapped lines: "like" cannot end a sentence, so the next line belongs to it.
    text = ("#### Exercise 3.2: Fine-tuning a CLIP Model (harder)\nUse a (small) CLIP model like \n"
            "[`openai/clip-vit-base-patch16`](https://huggingface.co/openai/clip-vit-base-\n"
            "patch16) and evaluate its zero-shot performance.\n\n## Deploy to Azure Container Instance\n\n"
            "The service answers at http://aci.example.io/score once it is healthy.")
    passages = split_passages(text)
    assert not any(p.startswith(("Exercise 3.2", "Deploy to Azure")) for p in passages), passages
    assert passages[0].startswith("Use a (small) CLIP model like [`openai/clip-vit-base-patch16`]")
    source = Source(text=text, source="lab.pdf", path="/docs/lab.pdf", page=3, score=1.0)
    answer = ExtractiveGenerator().generate(GenerationRequest(
        messages=[], question="Which small CLIP model does Exercise 3.2 suggest?", sources=[source]))
    assert "openai/clip-vit-base-patch16" in answer.split("\n")[0]
    # A numbered heading ("# 7." splits off) and a titled line with nothing under it are no answers either.
    assert split_passages("# 7. Deploy to Azure Container Instance\n\nIn [56]:\nconfig = InferenceConfig()\n\n"
                          "GPT (GPT-3):") == ["In [56]: config = InferenceConfig()"]
    # A text of headings only still has passages.
    assert split_passages("# Quarterly report\n## Sales by region") == ["Quarterly report", "Sales by region"]


def test_abbreviations_do_not_cut_the_answer():
    from rag.types import Source

    text = "The mission has four crew members. The payload lead is Dr. Ada Moreno. Launch is planned for May."
    source = Source(text=text, source="mission.txt", path="/docs/mission.txt", page=None, score=1.0)
    request = GenerationRequest(messages=[], question="Who is the payload lead?", sources=[source])
    answer = ExtractiveGenerator().generate(request)
    assert answer.startswith("The payload lead is Dr. Ada Moreno. [1]")


@pytest.mark.parametrize("question, expected", [
    ("What per-device training batch size was used to fine-tune DistilBERT?", "16"),
    ("At which URL was the local scoring service hosted?", "localhost:6789/score"),
    ("Besides ChatGPT, which platforms are mentioned for building chatbots without complex programming?", "Rasa"),
    ("检索增强生成特别适用于哪些场景?", "客服"),
])
def test_extractive_answer_is_one_or_two_passages_that_hold_the_answer(corpus_pdf_index, question, expected):
    import rag
    from rag.evaluation.metrics import split_sentences as answer_sentences

    answer = rag.ask(question, corpus_pdf_index.path, generator="extractive")
    assert not answer.refused and expected in answer.text
    assert 1 <= len(answer.text.split("\n")) <= MAX_PASSAGES
    assert len(answer_sentences(answer.text)) <= 4  # a sentence or two (a label line may add one)


def test_a_label_number_is_not_the_number_a_question_asks_for():
    # "Exercise 2" or "图2" names a part of the document; the accuracy asked for is a value.
    from rag.answer_types import answer_type_match

    question = "What test accuracy did the LoRA model reach?"
    assert answer_type_match(question, "In Exercise 2 we fine-tuned the entire model.") == 0.0
    assert answer_type_match(question, "'eval_accuracy': 0.8311444652908068") == 1.0
    assert answer_type_match("准确率是多少?", "见图2和表3") == 0.0
    assert answer_type_match("How many rows are there?", "7. Deploy to AKS") == 0.0
    assert answer_type_match("How many rows are there?", "In [12]: num_rows: 8530") == 1.0
    assert answer_type_match("What pretraining objective does RoBERTa use?", "Exercise 2") == 0.5
    # A metric's name alone asks for its value when the reader picks a passage, but the refusal
    # signal waits for a real quantity question: "can accuracy be the metric?" wants no number.
    yes_no = "불균형한 레이블 데이터 세트에서 정확도를 평가 지표로 사용해도 되나요?"
    assert answer_type_match(yes_no, "정확도만으로 평가하면 안 된다") == 0.0
    assert answer_type_match(yes_no, "정확도만으로 평가하면 안 된다", metrics=False) == 0.5
    assert answer_type_match("测试集的准确率是多少?", "准确率很高", metrics=False) == 0.0


def test_a_word_every_candidate_holds_counts_less_than_one_few_hold():
    # "retrieval-augmented generation" is the topic of every retrieved passage; "scenarios"
    # is in one: the passage that holds it is the one that answers.
    import numpy as np

    from rag.generators.extractive import focus_weights

    matched = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.9, 0.8]])  # topic, focus
    topic, focus = focus_weights(matched, np.array([4.0, 4.0]))
    assert focus > 2 * topic
    assert list(focus_weights(matched, np.array([4.0, 0.0]))) == [topic, 0.0]  # rarity still counts


def test_the_extractive_answer_comes_from_the_ranking_the_answerability_check_made(corpus_pdf_index):
    # rag.qa ranks the passages once (its best one's answer type is a refusal signal) and hands
    # the ranking to the generator: what the check read is what the reader sees.
    from rag.citations import term_evidence
    from rag.embedders import get_embedder
    from rag.generators.extractive import rank_passages
    from rag.qa import WindowLookup
    from rag.store import load_index

    index = load_index(corpus_pdf_index.path)
    embedder = get_embedder(index.embed_model)
    question = "What port does the local web service listen on?"
    sources = search(index, question, RetrievalSettings()).sources
    ranked = rank_passages(question, sources, embedder, term_evidence(question, index, embedder),
                           WindowLookup(index, embedder))
    assert "6789" in ranked[0][1]
    request = GenerationRequest(messages=[], question=question, sources=sources, ranked=ranked)
    assert ExtractiveGenerator().generate(request).startswith(ranked[0][1][:40])
    # with a ranking that says otherwise, the generator follows it
    other = [ranked[1]] + [r for r in ranked if r is not ranked[1]]
    assert ExtractiveGenerator().generate(GenerationRequest(messages=[], question=question, sources=sources,
                                                            ranked=other)).startswith(ranked[1][1][:40])


@pytest.mark.parametrize("passage,title", [
    ("行业大模型应用阶段划分", True),
    ("ROC 곡선과 AUC ROC 곡선", True),
    ("腾讯研究院大模型研究课题组 前言", True),
    ("重资产行业在大模型应用上处于局部探索阶段。", False),  # short, but a sentence
    ("Wall time: 42.9 s", False),  # a label and its value
    ("learning_rate 5e-4 batch 16", False),  # holds values
])
def test_a_title_is_short_with_no_sentence_end_label_or_value(passage, title):
    from rag.generators.extractive import is_title

    assert is_title(passage) is title


def test_a_title_neither_answers_nor_joins_an_answer_when_a_sentence_scores_close():
    from rag.types import Source

    sentence = "阶段三为采纳成长期,以广告与软件行业为代表。"
    source = Source(text=f"行业大模型应用阶段划分\n{sentence}", source="r.pdf", path="r.pdf", page=3, score=1.0)
    ranked = [(1.00, "行业大模型应用阶段划分", 1, 0), (0.95, sentence, 1, 1), (0.90, "前言 目录", 1, 2)]
    request = GenerationRequest(messages=[], question="哪个阶段以广告行业为代表?", sources=[source], ranked=ranked)
    assert ExtractiveGenerator().generate(request) == f"{sentence} [1]"
    # a title far ahead of anything else is still the answer: the reader has nothing better
    alone = [(1.00, "行业大模型应用阶段划分", 1, 0), (0.50, sentence, 1, 1)]
    assert ExtractiveGenerator().generate(GenerationRequest(messages=[], question="q", sources=[source],
                                                            ranked=alone)) == "行业大模型应用阶段划分 [1]"


def test_a_passage_that_leans_on_the_sentence_before_is_quoted_with_it():
    from rag.types import Source

    text = ("T5 uses a denoising objective: spans of the input are masked and the model restores them. "
            "This approach allows T5 to learn robust contextual relationships between words.")
    leaning = "This approach allows T5 to learn robust contextual relationships between words."
    source = Source(text=text, source="llm.pdf", path="llm.pdf", page=6, score=1.0)
    request = GenerationRequest(messages=[], question="How does T5 learn context?", sources=[source],
                                ranked=[(1.0, leaning, 1, 1)])
    assert ExtractiveGenerator().generate(request) == f"{text} [1]"
    # a passage that says what it is about stands alone
    alone = "T5 uses a denoising objective: spans of the input are masked and the model restores them."
    request = GenerationRequest(messages=[], question="q", sources=[source], ranked=[(1.0, alone, 1, 0)])
    assert ExtractiveGenerator().generate(request) == f"{alone} [1]"


def test_a_printed_record_is_one_passage_up_to_where_its_first_label_comes_again():
    from rag.generators.extractive import split_passages

    text = ("분류 결정 임곗값 낮추니,\n\n임곗값: 0.4\n오차 행렬\n[[97 21]\n[11 50]]\n"
            "정확도: 0.8212. 정밀도: 0.7042. 재현율: 0.8197\n임곗값: 0.45\n오차 행렬\n[[105 13]\n[ 13 48]]\n"
            "정확도: 0.8547. 정밀도: 0.7869. 재현율: 0.7869\n")
    passages = split_passages(text)
    assert "임곗값: 0.4 오차 행렬 [[97 21] [11 50]] 정확도: 0.8212. 정밀도: 0.7042. 재현율: 0.8197" in passages
    assert "임곗값: 0.45 오차 행렬 [[105 13] [ 13 48]] 정확도: 0.8547. 정밀도: 0.7869. 재현율: 0.7869" in passages


@pytest.mark.parametrize("passage,shown", [
    ("comparison of **XLNet**, **T5**, and other models", "comparison of XLNet, T5, and other models"),
    ("LoRA (PEFT)** | Solo gli adapter LoRA aggiornati | ~83.1%", "LoRA (PEFT) | Solo gli adapter LoRA aggiornati | ~83.1%"),
    ("loss = (y - p)**2 + w**2", "loss = (y - p)**2 + w**2"),  # code keeps its operator
])
def test_an_extractive_quote_reads_without_markdown_bold(passage, shown):
    from rag.types import Source

    source = Source(text=f"Notes.\n{passage}\n", source="n.md", path="n.md", page=None, score=1.0)
    request = GenerationRequest(messages=[], question="q", sources=[source], ranked=[(1.0, passage, 1, 1)])
    assert ExtractiveGenerator().generate(request) == f"{shown} [1]"
