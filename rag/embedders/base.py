"""The embedder interface: one abstract method, ``embed_batch``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np

Kind = Literal["query", "passage"]


class Embedder(ABC):
    """Turns texts into L2-normalized float32 vectors.

    Subclasses set ``name`` (the id stored in index manifests), ``dim``, and the
    query/passage prefixes their model was trained with (e5: ``query: ``/``passage: ``).
    """

    name: str = ""
    dim: int = 0
    query_prefix: str = ""
    passage_prefix: str = ""
    batch_size: int = 64
    max_tokens: int | None = None  # longest input the model reads; None: no limit

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts`` (prefixes already applied), shape (len(texts), dim), normalized."""

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed([self.passage_prefix + t for t in texts])

    def release_memory(self) -> None:
        """Free (now or soon) what is kept between calls only for speed (scratch arrays);
        the next call allocates again. An ingest calls it when its embedding is done."""

    def embed_passages_with_windows(self, texts: list[str],
                                    windows: list[list[str]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of passages and of each passage's windows (pieces of its text):
        (vectors (len(texts), dim), [(len(windows[i]), dim) arrays]). One call, so an
        embedder that can reuse a passage's computation for its windows may (USE does)."""
        flat = list(texts) + [w for ws in windows for w in ws]
        vectors = self.embed_passages(flat)
        out, offset = [], len(texts)
        for ws in windows:
            out.append(vectors[offset:offset + len(ws)])
            offset += len(ws)
        return vectors[:len(texts)], out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed([self.query_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.ascontiguousarray(self.embed_batch(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the model's tokens; used to size chunks."""
        return max(1, len(text) // 4)

    def describe(self) -> dict[str, Any]:
        """What an index manifest records to recognize this embedder later."""
        return {
            "name": self.name,
            "dim": self.dim,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
        }
