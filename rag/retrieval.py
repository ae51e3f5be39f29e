"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused by reciprocal
rank fusion, with optional MMR diversification and an optional cross-encoder.

Dense search carries questions across languages (multilingual embeddings);
BM25 nails exact terms, numbers and identifiers the embedding blurs. RRF needs no
score calibration between the two, which is why it is the fusion used.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import config
from .errors import InputError
from .store import Index, open_index
from .types import Source

RRF_K = 60
MAX_QUESTION_CHARS = 4000


@dataclass
class RetrievalSettings:
    k: int = 5
    candidates: int = 50  # per ranker, before fusion
    dense_weight: float = 1.0
    # BM25 votes at a third of the dense ranking's weight: it rescues exact terms
    # and numbers, but most questions are cross-lingual, where it only adds noise
    # (weights 0 / 0.3 / 0.6 / 1.0 compared with bench/retrieval.py).
    lexical_weight: float = 0.3
    mmr: bool = False
    mmr_lambda: float = 0.7
    reranker: str | None = None  # cross-encoder model id or path


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


def search(index: Index, question: str, settings: RetrievalSettings | None = None) -> Retrieval:
    """Retrieve from an opened index (the hot path: no file I/O)."""
    from .embedders import get_embedder

    settings = settings or RetrievalSettings()
    if settings.k < 1:
        raise InputError(f"k={settings.k}: retrieve at least 1 chunk")
    question = check_question(question)
    timings: dict[str, float] = {}
    if len(index) == 0:
        return Retrieval([], 0.0, timings)
    embedder = get_embedder(index.embed_model)

    t0 = time.perf_counter()
    qvec = embedder.embed_query(question)
    t1 = time.perf_counter()
    n = min(max(settings.candidates, settings.k), len(index))  # k above `candidates` still gets k
    dense_ids, _ = index.search_dense(qvec, n)
    t2 = time.perf_counter()
    lexical_ids, lexical_scores = index.lexical.search(question, n)
    t3 = time.perf_counter()
    fused = rrf([(dense_ids, settings.dense_weight), (lexical_ids, settings.lexical_weight)])
    rows = sorted(fused, key=fused.get, reverse=True)
    dense_by_row = index.dense_scores(qvec, np.asarray(rows, dtype=np.int64))
    cosines = dense_by_row
    lexical_by_row = dict(zip(map(int, lexical_ids), map(float, lexical_scores)))

    k = min(settings.k, len(rows))
    if settings.reranker:
        model = _cross_encoder(settings.reranker)
        pool = rows[: max(k * 4, 20)]
        scores = model.predict([(question, index.chunks[r].text) for r in pool])
        order = np.argsort(-np.asarray(scores))
        rows = [pool[i] for i in order]
        for i, r in enumerate(pool):
            fused[r] = float(scores[i])
        cosines = index.dense_scores(qvec, np.asarray(rows, dtype=np.int64))
    if settings.mmr:
        pool = rows[: max(k * 4, 20)]
        relevance = np.array([fused[r] for r in pool])
        relevance = relevance / (relevance.max() or 1.0)
        rows = mmr_order(pool, relevance, np.asarray(index.vectors[pool], dtype=np.float32), k, settings.mmr_lambda)
        cosines = index.dense_scores(qvec, np.asarray(rows, dtype=np.int64))
    t4 = time.perf_counter()

    from ingest.chunking import sentence_windows

    window_chars = int(index.manifest.get("chunker", {}).get("window_chars", 0) or 0)
    sources = []
    for row, cosine in zip(rows[:k], cosines[:k]):
        chunk = index.chunks[row]
        focus = None
        best = index.best_window(qvec, row)
        if best is not None:
            windows = sentence_windows(chunk.text, window_chars)
            focus = windows[best] if best < len(windows) else None
        sources.append(Source(
            text=chunk.text, source=chunk.source, path=chunk.path, page=chunk.page,
            score=round(float(fused[row]), 6), chunk_id=chunk.id, section=chunk.section, lang=chunk.lang,
            dense_score=round(float(cosine), 4), lexical_score=lexical_by_row.get(row), focus=focus,
        ))
    best_dense = float(np.max(dense_by_row)) if len(rows) else 0.0
    timings.update(embed=t1 - t0, dense=t2 - t1, lexical=t3 - t2, fusion=t4 - t3, total=t4 - t0)
    return Retrieval(sources, best_dense, timings)


FOCUS_CHARS = 200


def add_focus(sources: list[Source], question: str, embedder) -> None:
    """Fill ``Source.focus`` (the passage of each chunk closest to the question) where the
    index stored no sentence windows: embed the chunk's windows now, a few dozen short texts."""
    from ingest.chunking import sentence_windows

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


def retrieve(question: str, index: str | os.PathLike | None = None, k: int = 5, *,
             embed_model: str | None = None, **options) -> list[Source]:
    """The ``k`` chunks that best answer ``question``, best first.

    ``options`` are :class:`RetrievalSettings` fields (candidates, mmr, reranker, ...).
    """
    opened = open_index(config.index_dir(index), embed_model)
    return search(opened, question, RetrievalSettings(k=k, **options)).sources
