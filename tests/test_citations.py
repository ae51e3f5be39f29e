"""The citation check (rag/citations.py): every answer sentence against the sources it
cites, with the real embedder over the real corpus. Wrong citations are moved to the
source that supports the sentence or removed; unsupported sentences are marked; a
Korean sentence finds its supporting quote in a Chinese report."""

from __future__ import annotations

import pytest

from rag.citations import CitationChecker, answer_sentences, locate, rewrite_markers
from rag.qa import QA
from rag.retrieval import RetrievalSettings, search

CHATBOTS = "Besides ChatGPT, which platforms are mentioned for building chatbots without complex programming?"
TITANIC = "Which Titanic columns get dropped as useless features before training?"


@pytest.fixture(scope="module")
def checker(corpus_txt_index, embedder):
    return CitationChecker(corpus_txt_index.load(), embedder)


def top(index, question, k=1):
    return search(index, question, RetrievalSettings(k=k)).sources


# ---------------------------------------------------------------- pure text handling


def test_answer_sentences_keep_a_trailing_marker_with_its_sentence():
    text = "XLNet is autoregressive. [2] 营销环节进展最快。[1]其次是服务。Dr. Ada Moreno leads it [3]."
    assert [p.text for p in answer_sentences(text)] == [
        "XLNet is autoregressive. [2]", "营销环节进展最快。[1]", "其次是服务。", "Dr. Ada Moreno leads it [3]."]


def test_markers_are_rewritten_in_place_or_added_before_the_final_stop():
    assert rewrite_markers("Rasa is one [3].", [1]) == "Rasa is one [1]."
    assert rewrite_markers("Rasa is one [3][4].", []) == "Rasa is one."
    assert rewrite_markers("Rasa is one.", [2, 4]) == "Rasa is one [2, 4]."


def test_quotes_are_located_across_reflowed_whitespace():
    text = "임곗값: 0.4\n오차 행렬\n재현율: 0.8197"
    start, end = locate("오차 행렬 재현율: 0.8197", text)
    assert text[start:end] == "오차 행렬\n재현율: 0.8197"


def test_a_quote_without_the_markdown_bold_of_its_source_is_located():
    text = "Here's a comparison of **XLNet**, **T5**, and other models."
    start, end = locate("a comparison of XLNet, T5, and other models.", text)
    assert text[start:end] == "a comparison of **XLNet**, **T5**, and other models."


def test_a_quote_of_several_sentences_keeps_its_one_marker_at_the_end():
    from rag.types import Source

    record = "임곗값: 0.4\n오차 행렬\n[[97 21]\n[11 50]]\n정확도: 0.8212. 정밀도: 0.7042. 재현율: 0.8197\n임곗값: 0.45"
    sources = [Source(text="XLNet is autoregressive.", source="a.txt", path="a.txt", page=None, score=1.0),
               Source(text=record, source="b.txt", path="b.txt", page=None, score=0.9)]
    answer = "임곗값: 0.4 오차 행렬 [[97 21] [11 50]] 정확도: 0.8212. 정밀도: 0.7042. 재현율: 0.8197 [2]"
    result = CitationChecker().check(answer, sources)
    assert result.text == answer  # no "[2]" pushed into the middle of the quote
    assert [c.sources for c in result.citations] == [[2], [2], [2]]
    assert all(c.supported and c.support == 1.0 for c in result.citations)
    assert result.citations[1].quote == "정밀도: 0.7042."


# ---------------------------------------------------------------- the check, real embedder


def test_a_wrong_citation_is_moved_to_the_source_that_supports_the_sentence(checker, corpus_txt_index):
    index = corpus_txt_index.load()
    sources = top(index, CHATBOTS) + top(index, TITANIC)  # [1] chatbots, [2] Titanic preprocessing
    assert "Dialogflow" in sources[0].text and "Dialogflow" not in sources[1].text
    answer = "Platforms such as Dialogflow and Rasa let you build chatbots without complex programming [2]."
    result = checker.check(answer, sources)
    (citation,) = result.citations
    assert citation.cited == [2] and citation.sources == [1] and citation.supported
    assert result.text == "Platforms such as Dialogflow and Rasa let you build chatbots without complex programming [1]."
    quote = sources[0].text[citation.quote_start:citation.quote_end]
    assert citation.quote_source == 1 and quote == citation.quote and quote


def test_a_sentence_no_source_supports_is_marked_and_loses_its_citation(checker, corpus_txt_index):
    sources = top(corpus_txt_index.load(), CHATBOTS, k=3)
    answer = ("There are also other platforms like Dialogflow or Rasa [1]. "
              "The boiling point of water on Mars is 46 degrees Celsius [1].")
    result = checker.check(answer, sources)
    first, second = result.citations
    assert first.supported and first.sources == [1] and first.support > 0.9
    assert not second.supported and second.sources == [] and second.cited == [1]
    assert result.text.endswith("The boiling point of water on Mars is 46 degrees Celsius.")


def test_korean_sentence_gets_its_supporting_quote_from_the_chinese_report(checker, corpus_txt_index):
    question = "보고서에 따르면 산업 체인의 어느 부분에서 대형 모델 도입이 가장 빠른가요?"
    sources = top(corpus_txt_index.load(), question, k=5)
    assert all(s.source.startswith("003") for s in sources[:2])  # the Chinese report
    result = checker.check("마케팅과 서비스 단계에서 대형 모델 도입이 가장 빠릅니다 [1].", sources)
    (citation,) = result.citations
    assert citation.supported and citation.quote_source in citation.sources
    source = sources[citation.quote_source - 1]
    assert source.text[citation.quote_start:citation.quote_end] == citation.quote
    assert "营销" in citation.quote or "最快" in citation.quote


def test_ask_fills_checked_citations_for_streamed_and_plain_answers(corpus_txt_index):
    qa = QA(corpus_txt_index.path, generator="extractive")
    answer = qa.ask(CHATBOTS)
    assert answer.citations and all(c.supported for c in answer.citations)
    for citation in answer.citations:
        source = answer.sources[citation.quote_source - 1]
        assert source.text[citation.quote_start:citation.quote_end] == citation.quote
    stream = qa.stream(CHATBOTS)
    assert "".join(stream) == answer.text and stream.answer.citations == answer.citations
    assert answer.to_dict()["citations"][0]["quote"] == answer.citations[0].quote
