"""Cross-lingual term expansion: corpus terms, their neighbours across languages
through the real multilingual embedder, and the expanded BM25 ranking."""

from __future__ import annotations

import numpy as np
import pytest

from rag.terms import EXPANSION_MIN_SIMILARITY, TermIndex, extract_terms


def test_chinese_is_segmented_into_words_not_bigrams():
    assert extract_terms("检索增强生成特别适用于哪些场景") == ["检索", "增强", "生成", "特别", "适用", "哪些", "场景"]


def test_words_are_lowercased_without_stopwords_numbers_or_single_letters():
    assert extract_terms("What is the Recall at 0.4, 16 times, x?") == ["recall", "times"]
    assert extract_terms("정확도를 높이는 방법") == ["정확도를", "높이는", "방법"]


def test_identifiers_are_kept_whole_and_in_parts():
    terms = extract_terms("per_device_train_batch_size=16")
    assert terms[0] == "per_device_train_batch_size"
    assert {"device", "train", "batch", "size"} <= set(terms)


@pytest.fixture(scope="module")
def reports(embedder):
    """Three one-line 'chunks' in three languages, indexed as ingest does."""
    texts = [
        "营销/服务环节进展最快,跨行业通用性强是重要原因。",  # marketing/service is fastest
        "불균형한 데이터에서는 정확도만으로 모델을 평가하면 안 된다.",  # accuracy on imbalanced data
        "The deployment uses Azure Kubernetes Service with key authentication.",
    ]
    chunk_terms = [extract_terms(t) for t in texts]
    vocab = sorted({t for terms in chunk_terms for t in terms})
    vectors = dict(zip(vocab, embedder.embed_passages(vocab)))
    return TermIndex.build(chunk_terms, vectors, embedder.dim), embedder


@pytest.mark.parametrize("text, words", [
    ("la temperatura dell'API", ["temperatura", "api"]),
    ("la temperatura dell’API", ["temperatura", "api"]),           # typographic apostrophe
    ("l'addestramento c'è", ["addestramento"]),
    ("le taux d'apprentissage de l'optimiseur", ["taux", "apprentissage", "optimiseur"]),
    ("DistilBERT's hidden state", ["distilbert", "hidden", "state"]),
])
def test_elided_articles_and_possessives_leave_the_word_itself(text, words):
    from rag.lexical import tokenize

    assert [w for w in extract_terms(text) if w not in ("la", "le", "de")] == words
    assert set(words) <= set(tokenize(text)) and not any("'" in t for t in tokenize(text))


def test_a_quoted_korean_word_is_the_word_without_its_particle():
    # '불가능한 삼각형'은 ("the 'impossible triangle'" + topic particle): Korean writes no
    # apostrophe inside a word, so the quote closes the quotation.
    assert extract_terms("범용 모델의 '불가능한 삼각형'은") == ["범용", "모델의", "불가능한", "삼각형"]


def test_what_time_and_how_many_with_their_counters_are_question_words():
    from rag.citations import content_terms
    from rag.terms import question_terms

    def terms(question):
        return content_terms(question_terms(question))

    # "몇 개인가요" (how many is it) is no 개인 (individual); "몇 시에" (at what time) no topic
    assert terms("AKS 클러스터는 노드가 몇 개인가요?") == ["aks", "클러스터", "노드"]
    assert terms("빵집은 몇 시에 문을 여나요?") == ["빵집", "문을"]
    assert terms("모델에는 몇 시나리오가 있나요?") == ["모델", "시나리오"]  # a word that starts like a counter stays
    assert terms("面包店几点开门?") == ["面包店", "开门"]
    assert terms("RAG에는 몇 시나리오가 있나요?") == ["rag", "시나리오"]  # the particle split off is no word
    # "what time" asks when; its "time" is no topic ("36 hours" is no answer to it)
    assert terms("What time does the bakery open?") == ["bakery"]
    assert terms("A che ora apre il panificio?") == ["apre", "panificio"]
    assert terms("How much time did training take?") == ["time", "training"]  # a duration's "time" stays
    assert terms("What time series models does the notebook compare?")[:2] == ["time", "series"]


def test_a_korean_question_word_is_its_noun_without_particle_ending_or_verb_suffix():
    # "사전학습됐나요" (was pretrained?) asks about 사전학습; "추천한" (recommended) about 추천.
    from rag.citations import content_terms

    assert content_terms(["t5는", "사전학습됐나요", "추천한", "사용하는", "정확도는"]) == [
        "t5", "사전학습", "추천", "사용", "정확도"]
    # a short stem is a word of its own: 역할 (role), 권한 (permission), 이하 (below)
    assert content_terms(["역할", "권한", "이하"]) == ["역할", "권한", "이하"]


def test_an_english_word_reaches_its_chinese_and_korean_translations(reports):
    terms, embedder = reports
    (marketing, accuracy) = terms.expansions(embedder.embed_queries(["marketing", "accuracy"]))
    assert "营销" in [terms.vocab[i - 1] for i, _ in marketing]
    assert "정확도만으로" in [terms.vocab[i - 1] for i, _ in accuracy] or \
        any(terms.vocab[i - 1].startswith("정확도") for i, _ in accuracy)
    assert all(s >= EXPANSION_MIN_SIMILARITY for _, s in marketing + accuracy)


def test_expanded_bm25_ranks_the_chunk_in_another_language_first(reports):
    terms, embedder = reports
    english = terms.scores("Which part of the business is fastest: marketing or service?", embedder.embed_queries)
    assert int(np.argmax(english)) == 0 and english[0] > 0
    italian = terms.scores("Come si usa l'autenticazione con chiave?", embedder.embed_queries)
    assert int(np.argmax(italian)) == 2


def test_a_question_with_no_term_scores_nothing(reports):
    terms, embedder = reports
    assert not terms.scores("? 1 2 3", embedder.embed_queries).any()


def test_term_index_round_trips_through_disk(reports, tmp_path):
    terms, embedder = reports
    terms.save(tmp_path / "terms")
    loaded = TermIndex.load(tmp_path / "terms")
    assert loaded.vocab == terms.vocab
    question = "marketing e servizio"
    assert np.allclose(loaded.scores(question, embedder.embed_queries), terms.scores(question, embedder.embed_queries))
