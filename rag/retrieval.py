"""Hybrid retrieval: four rankings of the chunks fused by their standardized scores,
with optional MMR diversification and an optional cross-encoder.

- dense: the chunk's own vector (topic, across languages);
- windows: the chunk's best sentence window (a sentence-sized question matched to
  the sentence that answers it, which a 400-token vector blurs);
- lexical: BM25 over words and CJK bigrams (exact terms, numbers, identifiers);
- expansion: BM25 over corpus terms reached from the question's terms through the
  embedder's bilingual lexicon (rag/terms.py), the lexical signal across languages.

Each ranker proposes its best ``candidates`` chunks; every candidate is scored by
all four, each score standardized (z-score) over the candidates, and the four
summed. Unlike reciprocal rank fusion this keeps a ranker's confidence: a BM25
top hit that stands far above the rest outweighs a dense ranking where the first
twenty chunks are within 0.02 of each other, and a ranker with no signal (no
shared term across languages) adds nothing instead of noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import InputError
from .settings import RetrievalSettings
from .store import Index
from .terms import question_terms
from .text import sentence_windows
from .types import Source

RRF_K = 60
MAX_QUESTION_CHARS = 4000


@dataclass
class Retrieval:
    """Retrieved sources plus what refusal and benchmarks need."""

    sources: list[Source]
    best_dense: float  # highest cosine between the question and any chunk
    timings: dict[str, float] = field(default_factory=dict)


def check_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty: type a question about your documents")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            f"the question is {len(question)} characters long, more than {MAX_QUESTION_CHARS}: shorten it"
        )
    return question


def rrf(rankings: list[tuple[np.ndarray, float]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of (ranked ids, weight) lists."""
    fused: dict[int, float] = {}
    for ids, weight in rankings:
        for rank, row in enumerate(ids):
            fused[int(row)] = fused.get(int(row), 0.0) + weight / (k + rank + 1)
    return fused


def mmr_order(rows: list[int], relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: trade relevance against similarity to what is already picked."""
    chosen: list[int] = []
    pool = list(range(len(rows)))
    sims = vectors @ vectors.T
    while pool and len(chosen) < k:
        def gain(i):
            redundancy = max((sims[i, j] for j in chosen), default=0.0)
            return lam * relevance[i] - (1 - lam) * redundancy

        best = max(pool, key=gain)
        chosen.append(best)
        pool.remove(best)
    return [rows[i] for i in chosen]


@lru_cache(maxsize=2)
def _cross_encoder(name: str):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(name)


def zscore(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


def fuse(scores: list[tuple[np.ndarray, float]], method: str = "zscore") -> np.ndarray:
    """One fused score per candidate from (scores over the candidates, weight) pairs."""
    if method == "rrf":
        ranks = [(np.argsort(np.argsort(-values, kind="stable")), weight) for values, weight in scores]
        return sum(weight / (RRF_K + rank + 1) for rank, weight in ranks)
    if method != "zscore":
        raise InputError(f"unknown fusion '{method}': choose zscore or rrf")
    # the weighted mean, not the sum: a score reads as "standard deviations above the
    # other candidates", whatever the number of rankers
    return sum(weight * zscore(values) for values, weight in scores) / sum(weight for _, weight in scores)


def search(index: Index, question: str, settings: RetrievalSettings | None = None) -> Retrieval:
    """Retrieve from an opened index (the hot path: no file I/O)."""
    from .embedders import get_embedder

    settings = settings or RetrievalSettings()
    question = check_question(question)
    timings: dict[str, float] = {}
    if len(index) == 0:
        return Retrieval([], 0.0, timings)
    embedder = get_embedder(index.embed_model)

    t0 = time.perf_counter()
    expand = index.terms is not None and bool(settings.expansion_weight)
    terms = question_terms(question) if expand else []
    # the question and its terms in one forward pass (a second call cost ~3 ms of GIL-held numpy)
    vectors = embedder.embed_queries([question, *terms])
    qvec = vectors[0]
    t1 = time.perf_counter()
    n = min(max(settings.candidates, settings.k), len(index))  # k above `candidates` still gets k
    proposals = [index.search_dense(qvec, n), index.search_windows(qvec, n)]
    t2 = time.perf_counter()
    lexical_top, lexical_all = index.lexical.search_all(question, n)
    proposals.append(lexical_top)
    expansion_all = None
    if expand:
        expansion_all = index.terms.scores_of(vectors[1:])
        proposals.append(top_rows(expansion_all, n))
    t3 = time.perf_counter()

    pool = np.unique(np.concatenate(proposals)).astype(np.int64)
    cosines = index.dense_scores(qvec, pool)
    rankers = [(cosines, settings.dense_weight), (index.window_scores(qvec, pool), settings.window_weight),
               (lexical_all[pool], settings.lexical_weight)]
    if expansion_all is not None:
        rankers.append((expansion_all[pool], settings.expansion_weight))
    fused_scores = fuse([(values, weight) for values, weight in rankers if weight], settings.fusion)
    order = np.argsort(-fused_scores, kind="stable")
    rows = [int(r) for r in pool[order]]
    fused = dict(zip(rows, map(float, fused_scores[order])))
    cosine_of = dict(zip(map(int, pool), map(float, cosines)))

    k = min(settings.k, len(rows))
    if settings.reranker:
        model = _cross_encoder(settings.reranker)
        candidates = rows[: max(k * 4, 20)]
        scores = model.predict([(question, index.chunks[r].text) for r in candidates])
        rows = [candidates[i] for i in np.argsort(-np.asarray(scores))]
        fused.update(zip(candidates, map(float, scores)))
    if settings.mmr:
        candidates = rows[: max(k * 4, 20)]
        relevance = np.array([fused[r] for r in candidates])
        relevance = (relevance - relevance.min()) / ((relevance.max() - relevance.min()) or 1.0)
        rows = mmr_order(candidates, relevance, np.asarray(index.vectors[candidates], dtype=np.float32),
                         k, settings.mmr_lambda)
    t4 = time.perf_counter()

    window_chars = int(index.manifest.get("chunker", {}).get("window_chars", 0) or 0)
    sources = []
    for row in rows[:k]:
        chunk = index.chunks[row]
        focus = None
        best = index.best_window(qvec, row)
        if best is not None:
            windows = sentence_windows(chunk.text, window_chars)
            focus = windows[best] if best < len(windows) else None
        lexical = float(lexical_all[row])
        sources.append(Source(
            text=chunk.text, source=chunk.source, path=chunk.path, page=chunk.page,
            score=round(fused[row], 6), chunk_id=chunk.id, section=chunk.section, lang=chunk.lang,
            dense_score=round(cosine_of[row], 4), lexical_score=lexical if lexical > 0 else None, focus=focus,
        ))
    best_dense = float(np.max(cosines)) if len(pool) else 0.0
    timings.update(embed=t1 - t0, dense=t2 - t1, lexical=t3 - t2, fusion=t4 - t3, total=t4 - t0)
    return Retrieval(sources, best_dense, timings)


# Each phrasing of a follow-up is retrieved this deep before the rankings are fused.
FUSION_DEPTH = 20


def search_phrasings(index: Index, questions: list[str], settings: RetrievalSettings | None = None) -> Retrieval:
    """One question asked in several phrasings (a follow-up as typed, and joined to the
    question before it), each retrieved, the rankings fused by reciprocal rank (the
    RAG-Fusion recipe). Neither phrasing alone is right every time: "And is GPT-3
    bidirectional too?" names what it asks about, "그 모델의 단점은?" needs the question
    before it. Over the 20 follow-ups of bench/followups.py fusing both gave MRR@5 0.69,
    against 0.67 as typed and 0.57 joined, at the same hit@5 (README, "Follow-ups").

    A source's ``score`` is then its fused reciprocal-rank score (the sum of 1 / (60 + rank)
    over the phrasings, ~0.01-0.03), so the sources are listed in score order;
    ``dense_score`` and ``lexical_score`` stay the phrasing's own. ``best_dense`` is the
    last phrasing's, which the refusal reads with it (rag/answerability.py)."""
    from dataclasses import replace

    settings = settings or RetrievalSettings()
    phrasings = list(dict.fromkeys(check_question(q) for q in questions))
    if len(phrasings) == 1:
        return search(index, phrasings[0], settings)
    deep = replace(settings, k=max(settings.k, FUSION_DEPTH))
    results = [search(index, q, deep) for q in phrasings]
    fused: dict[str, float] = {}
    first: dict[str, Source] = {}
    for result in results:
        for rank, source in enumerate(result.sources, start=1):
            fused[source.chunk_id] = fused.get(source.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            if source.chunk_id not in first or source.score > first[source.chunk_id].score:
                first[source.chunk_id] = source
    order = sorted(fused, key=lambda c: -fused[c])[:settings.k]
    timings: dict[str, float] = {}
    for result in results:
        for name, seconds in result.timings.items():
            timings[name] = timings.get(name, 0.0) + seconds
    sources = [replace(first[c], score=round(fused[c], 6)) for c in order]
    return Retrieval(sources, results[-1].best_dense, timings)


def top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """Rows of the ``n`` highest positive scores (a ranker proposes nothing it did not match)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, n - 1)[:n]
    return top[scores[top] > 0].astype(np.int64)


FOCUS_CHARS = 200


def add_focus(sources: list[Source], question: str, embedder) -> None:
    """Fill ``Source.focus`` (the passage of each chunk closest to the question) where the
    index stored no sentence windows: embed the chunk's windows now, a few dozen short texts."""
    missing = [(s, sentence_windows(s.text, FOCUS_CHARS)) for s in sources if s.focus is None]
    missing = [(s, w) for s, w in missing if w]
    if not missing:
        return
    texts = [w for _, windows in missing for w in windows]
    sims = embedder.embed_passages(texts) @ embedder.embed_query(question)
    offset = 0
    for source, windows in missing:
        source.focus = windows[int(np.argmax(sims[offset:offset + len(windows)]))]
        offset += len(windows)
