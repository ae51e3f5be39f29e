"""Abbreviations the documents define count as their long forms (rag/aliases.py): the
definitions read from text, then the reader and the term evidence on the real corpus."""

from __future__ import annotations

import pytest

import rag
from rag.aliases import Aliases, aliases_of, contains, definitions, long_form_matches
from rag.citations import term_evidence
from rag.embedders import get_embedder
from rag.store import load_index


def test_an_english_long_form_before_its_abbreviation():
    text = "Unlike BERT's masked language modeling (MLM) approach, XLNet permutes."
    assert definitions(text) == [("MLM", "masked language modeling")]


def test_a_long_form_inside_the_bracket_after_the_abbreviation():
    (forms,) = definitions("精调(FT,Fine-Tuning)是指……")
    assert forms[:2] == ("FT", "Fine-Tuning")


def test_a_chinese_long_form_is_the_words_that_translate_the_english_one():
    translations = {"检索": "retrieval", "增强": "augmented", "生成": "generation"}

    def similar(word, targets):
        return 0.9 if translations.get(word) in targets else 0.1

    (forms,) = definitions("本文讨论外挂检索增强生成(RAG,Retrieval-Augmented Generation)的作用。", similar)
    assert forms == ("RAG", "Retrieval-Augmented Generation", "检索增强生成")


def test_without_word_similarity_no_chinese_long_form_is_guessed():
    (forms,) = definitions("检索增强生成(RAG,Retrieval-Augmented Generation)", None)
    assert forms == ("RAG", "Retrieval-Augmented Generation")


def test_a_korean_glossary_entry_pairs_the_term_with_its_english_name():
    assert definitions("분류 지표: 정확도(Accuracy), 재현율(Recall)") == [("정확도", "Accuracy"), ("재현율", "Recall")]


@pytest.mark.parametrize("text", [
    "The model (GPT) is large.",  # letters not in the words before
    "두 값 (TPR)이 변할 때",  # a sentence going on into a bracket, not a term
    "We report accuracy (Test) here.",  # one capital: a word, not an abbreviation
])
def test_brackets_that_define_nothing(text):
    assert definitions(text) == []


def test_schwartz_hearst_letters_in_order_first_at_a_word_start():
    assert long_form_matches("LoRA", "Low-Rank Adaptation")
    assert long_form_matches("MaaS", "Model as a Service")
    assert not long_form_matches("RAG", "Graph Retrieval")
    assert not long_form_matches("AI", "Sustainability")  # "a" must start a word


def test_forms_defined_twice_join_one_group_and_are_found_as_whole_words():
    aliases = Aliases.from_texts(["Large Language Models (LLMs) are big.", "Some LLMs (Large Language Models)."])
    assert len(aliases) == 1
    assert aliases.present("How do large language models work?") == {"large language models": frozenset({"llms"})}
    assert aliases.present("Tell me about callms") == {}
    assert contains("LLMs like GPT", "llms") and contains("Large-Language Models", "large language models")


# ---------------------------------------------------------------- on the real corpus


@pytest.fixture(scope="module")
def pdf(corpus_pdf_index):
    index = load_index(corpus_pdf_index.path)
    return index, get_embedder(index.embed_model)


def test_the_corpus_definitions_are_read_with_their_chinese_terms(pdf):
    index, _ = pdf
    groups = aliases_of(index).groups
    assert frozenset({"rag", "retrieval augmented generation", "检索增强生成"}) in groups
    assert any({"mlm", "masked language modeling"} <= g for g in groups)
    assert frozenset({"정확도", "accuracy"}) in groups


def test_a_passage_that_only_says_rag_holds_the_question_words_of_the_long_form(pdf):
    index, embedder = pdf
    evidence = term_evidence("Which scenarios is retrieval-augmented generation suited for?", index, embedder)
    passage = "RAG能有效帮助企业快速利用大模型处理私有数据,特别适用于需要准确引用特定领域知识的场景。"
    held = dict(zip(evidence.terms, evidence.matches(passage)))
    assert held["generation"] == 1.0 and held["retrieval-augmented"] == 1.0
    assert {"retrieval", "augmented", "generation"} <= evidence.alias_tokens(passage)
    assert not evidence.alias_tokens("XLNet excels in tasks that benefit from bidirectional context.")


@pytest.mark.parametrize("question", [
    "Which scenarios is retrieval-augmented generation suited for?",  # the README's demo question
    "검색 증강 생성은 어떤 시나리오에 적합한가요?",
    "Per quali scenari è adatta la RAG?",
])
def test_the_scenarios_of_rag_are_found_whatever_the_question_calls_it(corpus_pdf_index, question):
    answer = rag.ask(question, corpus_pdf_index.path, generator="extractive")
    assert "客服问答" in answer.text.split("\n")[0], answer.text


@pytest.mark.parametrize("question,long_form", [
    ("What does MLM stand for?", "Masked Language Model"),  # used in many passages, defined in a few
    ("MLM은 무엇의 약자야?", "Masked Language Model"),
    ("Cosa significa RLHF?", "Reinforcement Learning from Human Feedback"),
])
def test_asked_what_an_abbreviation_stands_for_the_reader_quotes_its_definition(corpus_pdf_index, question,
                                                                                 long_form):
    answer = rag.ask(question, corpus_pdf_index.path, generator="extractive")
    assert long_form.lower() in answer.text.split("\n")[0].lower(), answer.text


@pytest.mark.parametrize("text", [
    "가" * 3000 + "·(AB)",  # a long run of syllables before a bracket, no term in it
    "가 " * 3000 + "·(AB)",
    "가" * 3000 + "(Accuracy)",
    "(" * 3000 + "RAG" + ")" * 3000,
])
def test_reading_definitions_takes_linear_time_on_hostile_text(text):
    # Documents are untrusted: a pattern that backtracks exponentially would hang the ingest
    # of such a file (24 syllables took 2.8 s before the fix).
    import threading

    found = []
    worker = threading.Thread(target=lambda: found.append(definitions(text)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert found, "definitions() did not finish"
    assert found[0] == []  # no twenty-syllable "term", no definition
