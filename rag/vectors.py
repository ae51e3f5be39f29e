"""FAISS helpers shared by the index store (chunk and window vectors) and the term
index (corpus-term vectors): which index type, how to build it, how to query it.

A module of its own so that ``rag.store`` and ``rag.terms`` both build on it without
importing each other.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import InputError

INDEX_TYPES = ("auto", "flat", "hnsw")
# Above this many vectors the dense index is HNSW instead of exact search. From
# `python bench/scaling.py` (bench/results/scaling.json; 512-dim vectors, one query
# at a time on one OpenMP thread, 2-core AMD EPYC shared with other jobs):
# exact search costs ~1.6 ms + ~87 ms per million vectors (0.6 ms at 10k, 12 ms
# at 100k, 88 ms at 1M), so it crosses the 20 ms budget at ~210k vectors.
# HNSW: M=32 with efConstruction=40 (80 doubled the build time with no better
# recall at 100k; the 1M build took ~1350 s wall on that busy machine).
# efSearch=256 is the largest setting with p50 under 5 ms at 1M: 2.0 ms and
# recall@10 0.97 at 100k, 2.9 ms and recall@10 0.85 at 1M (top-1 found for 98% of
# queries); at 1M efSearch=512 gives 0.92 at 5-10 ms, 1024 gives 0.97 at ~15 ms.
HNSW_AUTO_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 256


def choose_index_type(n_vectors: int, requested: str = "auto") -> str:
    """``flat`` or ``hnsw`` for ``n_vectors`` vectors (``auto``: by HNSW_AUTO_THRESHOLD)."""
    if requested not in INDEX_TYPES:
        raise InputError(f"unknown index type '{requested}': choose auto, flat or hnsw")
    if requested != "auto":
        return requested
    return "hnsw" if n_vectors > HNSW_AUTO_THRESHOLD else "flat"


def build_faiss(vectors: np.ndarray, index_type: str):
    """An inner-product FAISS index of type ``flat`` or ``hnsw`` over ``vectors``."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is bulk work: use every core

    dim = vectors.shape[1]
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search_one(index, query_vector: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` vectors of ``index`` closest to one query, best first."""
    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    _, ids = search_few(index, np.asarray(query_vector, dtype=np.float32).reshape(1, -1), k)
    return ids[0][ids[0] >= 0].astype(np.int64)


def search_few(index, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` for the few vectors of one question (itself, its words) on one
    OpenMP thread: that little work is not worth splitting, and a second thread waiting
    for a busy core made exact search 5-30x slower (bench/scaling.py); the question's
    5 words against 3,747 corpus terms took 8.2 ms on 2 threads, 1.1 ms on one, with
    other work on the machine. The setting is the calling thread's own (OpenMP keeps it
    per thread), so an ingest's index building elsewhere keeps its threads."""
    import faiss

    faiss.omp_set_num_threads(1)
    return index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)


def read_faiss(path) -> object:
    import faiss

    return faiss.read_index(str(path))


def write_faiss(index, path) -> None:
    import faiss

    faiss.write_index(index, str(path))


__all__ = ["choose_index_type", "build_faiss", "search_one", "search_few", "read_faiss", "write_faiss", "INDEX_TYPES",
           "HNSW_AUTO_THRESHOLD", "HNSW_M", "HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH"]
