"""What an index version holds for the next ingest, whatever stores it (a FAISS folder,
rag.store; a Milvus collection, rag.milvus_store). A module of its own so that both
stores build on it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .types import Chunk


@dataclass
class PreviousVersion:
    """What an incremental ingest reuses from the live version: its manifest, chunks,
    their vectors and sentence-window vectors (by chunk row), and the corpus terms'
    vectors. Loaded into memory (not memory-mapped): the new version is written
    beside it and may replace the files."""

    version: str
    manifest: dict[str, Any]
    chunks: list[Chunk]
    vectors: np.ndarray
    window_vectors: np.ndarray  # grouped by chunk: chunk r owns window_start[r]:window_start[r+1]
    window_start: np.ndarray
    term_vectors: dict[str, np.ndarray]
    # a derived file (dense.faiss, windows.faiss, bm25/, terms/) that is missing or
    # unreadable: the ingest writes a new version even when no document changed
    damaged: str = ""

    @property
    def embed_model(self) -> str:
        return self.manifest["embedder"]["name"]

    @property
    def chunker(self) -> dict[str, Any] | None:
        """The chunker settings the version was written with (``ChunkerSettings.describe()``)."""
        return self.manifest.get("chunker")

    @property
    def window_chars(self) -> int:
        """Characters per sentence window (0: the version has no windows)."""
        return int((self.chunker or {}).get("window_chars") or 0)

    @property
    def files(self) -> dict[str, dict]:
        """Ingested file path -> its metadata (hash, chunks, pages, source, ingested_at)."""
        return dict(self.manifest.get("files") or {})

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows_by_file(self) -> dict[str, list[int]]:
        """Chunk rows of each file, in index order."""
        rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(self.chunks):
            rows.setdefault(chunk.path, []).append(row)
        return rows

    def stored(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk vector, its window vectors) of chunk ``row``."""
        return self.vectors[row], self.window_vectors[self.window_start[row]:self.window_start[row + 1]]


__all__ = ["PreviousVersion"]
