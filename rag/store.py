"""The index directory: FAISS vectors, BM25, chunk metadata and a manifest.

Layout::

    INDEX/
      CURRENT               name of the live version folder (replaced atomically)
      v-<time>-<rand>/      one complete, immutable version
        manifest.json       format version, embedding model, chunker settings, files, counts
        chunks.jsonl        one Chunk per line, in vector order
        vectors.npy         float32 chunk embeddings (reused by incremental ingest)
        dense.faiss         exact inner-product (flat) or HNSW index over the vectors
        windows.npy         float32 embeddings of sentence windows, grouped by chunk
        window_owner.npy    int32 chunk row of each window
        windows.faiss       dense index over the windows
        bm25/               lexical index
        terms/              corpus terms and their vectors, for cross-lingual
                            term expansion (rag/terms.py)
      .lock                 held while an ingest writes

A new version is written beside the live one and only then named in CURRENT
(``os.replace`` is atomic), so an interrupted ingest (Ctrl-C, kill -9, full disk)
leaves the previous version in place and usable.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EmbedderMismatchError, IndexCorruptError, IndexNotFoundError
from .types import Chunk

FORMAT_VERSION = 1
# The FAISS helpers live in rag.vectors (shared with rag.terms); the names stay
# importable from here for older callers (bench/scaling.py, tests that pause a build).
from .vectors import (  # noqa: E402
    HNSW_AUTO_THRESHOLD,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    build_faiss,
    choose_index_type,
    search_one,
)


@dataclass
class Index:
    """A loaded, read-only index version."""

    path: Path
    version: str
    manifest: dict[str, Any]
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: Any  # faiss index
    lexical: Any  # rag.lexical.LexicalIndex
    window_vectors: np.ndarray | None = None
    window_owner: np.ndarray | None = None
    window_dense: Any = None
    terms: Any = None  # rag.terms.TermIndex, None for indexes built before it existed
    _window_start: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        if self.window_owner is not None:
            # Windows are stored grouped by chunk: chunk r owns rows start[r]:start[r+1].
            counts = np.bincount(self.window_owner, minlength=len(self.chunks))
            self._window_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def embed_model(self) -> str:
        return self.manifest["embedder"]["name"]

    def __len__(self) -> int:
        return len(self.chunks)

    def search_dense(self, query_vector: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` chunk rows whose own vectors are closest to the query, best first."""
        return self._search(self.dense, query_vector, k)

    def search_windows(self, query_vector: np.ndarray, k: int) -> np.ndarray:
        """Chunk rows owning the ``k`` sentence windows closest to the query (no windows: none)."""
        if self.window_dense is None or not self.window_dense.ntotal:
            return np.zeros(0, dtype=np.int64)
        ids = self._search(self.window_dense, query_vector, k)
        return np.unique(self.window_owner[ids]).astype(np.int64)

    @staticmethod
    def _search(index, query_vector: np.ndarray, k: int) -> np.ndarray:
        return search_one(index, query_vector, k)

    def best_window(self, query_vector: np.ndarray, row: int) -> int | None:
        """Position of chunk ``row``'s sentence window closest to the query (None: no windows)."""
        if self._window_start is None:
            return None
        start, end = int(self._window_start[row]), int(self._window_start[row + 1])
        if end <= start:
            return None
        sims = np.asarray(self.window_vectors[start:end], dtype=np.float32) @ query_vector
        return int(np.argmax(sims))

    def dense_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine between the query and the vectors of chunk ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        return np.asarray(self.vectors[rows], dtype=np.float32) @ query_vector

    def window_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of each chunk's best sentence window (a chunk without windows: its own)."""
        rows = np.asarray(rows, dtype=np.int64)
        best = self.dense_scores(query_vector, rows)
        if self._window_start is None or not len(rows):
            return best
        starts, ends = self._window_start[rows], self._window_start[rows + 1]
        has = ends > starts
        if has.any():
            spans = [np.arange(a, b) for a, b in zip(starts[has], ends[has])]
            sims = np.asarray(self.window_vectors[np.concatenate(spans)], dtype=np.float32) @ query_vector
            offsets = np.concatenate([[0], np.cumsum([len(x) for x in spans])[:-1]])
            best[has] = np.maximum.reduceat(sims, offsets)
        return best


def _milvus(path) -> bool:
    """The index lives in Milvus (rag/milvus_store.py), not in a folder."""
    from .milvus_store import is_milvus

    return is_milvus(path)


def read_current(path: Path) -> str | None:
    if _milvus(path):
        from . import milvus_store

        return milvus_store.read_current(path)
    try:
        return (path / "CURRENT").read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def read_manifest(path: Path) -> dict[str, Any]:
    if _milvus(path):
        from . import milvus_store

        return milvus_store.read_manifest(path)
    path = Path(path)
    version = read_current(path)
    if version is None:
        raise IndexNotFoundError(str(path))
    try:
        return json.loads((path / version / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(str(path), f"manifest.json: {exc}") from None


def load_index(path: str | os.PathLike, embed_model: str | None = None) -> Index:
    """Open the live version at ``path``; with ``embed_model``, refuse an index built with another one."""
    if _milvus(path):
        from . import milvus_store

        return milvus_store.load_index(path, embed_model)
    import faiss

    from .lexical import LexicalIndex
    from .terms import TermIndex

    path = Path(path)
    manifest = read_manifest(path)
    built_with = manifest.get("embedder", {}).get("name", "?")
    if embed_model and embed_model != built_with:
        raise EmbedderMismatchError(str(path), built_with, embed_model)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(str(path), f"format version {manifest.get('format_version')}, expected {FORMAT_VERSION}")
    version = read_current(path)
    folder = path / version
    try:
        chunks = _read_chunks(folder)
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        dense = faiss.read_index(str(folder / "dense.faiss"))
        lexical = LexicalIndex.load(folder / "bm25")
        windows = owner = window_dense = None
        if (folder / "windows.npy").exists():
            windows = np.load(folder / "windows.npy", mmap_mode="r")
            owner = np.load(folder / "window_owner.npy")
            window_dense = faiss.read_index(str(folder / "windows.faiss"))
        terms = TermIndex.load(folder / "terms") if (folder / "terms").exists() else None
    except Exception as exc:
        raise IndexCorruptError(str(path), f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not (len(chunks) == vectors.shape[0] == dense.ntotal):
        raise IndexCorruptError(str(path), f"{len(chunks)} chunks but {dense.ntotal} vectors")
    if windows is not None and not (len(owner) == windows.shape[0] == window_dense.ntotal):
        raise IndexCorruptError(str(path), f"{len(owner)} window owners but {window_dense.ntotal} window vectors")
    if terms is not None and terms.lexical.num_docs != len(chunks):
        raise IndexCorruptError(str(path), f"{len(chunks)} chunks but term BM25 over {terms.lexical.num_docs}")
    return Index(path, version, manifest, chunks, vectors, dense, lexical, windows, owner, window_dense, terms)


_cache: dict[str, Index] = {}
_cache_lock = threading.Lock()


def open_index(path: str | os.PathLike, embed_model: str | None = None) -> Index:
    """Like :func:`load_index`, cached per process until an ingest publishes a new version."""
    if _milvus(path):
        from . import milvus_store

        return milvus_store.open_index(path, embed_model)
    path = Path(path)
    key = str(path.resolve())
    version = read_current(path)
    if version is None:
        raise IndexNotFoundError(str(path))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None or cached.version != version:
            cached = _cache[key] = load_index(path, None)
    if embed_model and embed_model != cached.embed_model:
        raise EmbedderMismatchError(str(path), cached.embed_model, embed_model)
    return cached


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


def read_previous(path: str | os.PathLike) -> PreviousVersion | None:
    """The live version at ``path`` for an incremental ingest to build on; None when
    there is no index yet."""
    if _milvus(path):
        from . import milvus_store

        return milvus_store.read_previous(path)
    from .terms import TermIndex

    path = Path(path)
    version = read_current(path)
    if version is None:
        return None
    manifest = read_manifest(path)
    folder = path / version
    try:
        chunks = _read_chunks(folder)
        vectors = np.load(folder / "vectors.npy")
        if (folder / "windows.npy").exists():
            windows = np.load(folder / "windows.npy")
            owner = np.load(folder / "window_owner.npy")
            counts = np.bincount(owner, minlength=len(vectors))
            start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        else:  # written before sentence windows (or with window_chars=0)
            windows = np.zeros((0, vectors.shape[1]), dtype=np.float32)
            start = np.zeros(len(vectors) + 1, dtype=np.int64)
        # written before term expansion: no term vectors to reuse
        term_vectors = TermIndex.load(folder / "terms").known_vectors() if (folder / "terms").exists() else {}
    except Exception as exc:
        raise IndexCorruptError(str(path), f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if len(chunks) != len(vectors):
        raise IndexCorruptError(str(path), f"{len(chunks)} chunks but {len(vectors)} vectors")
    return PreviousVersion(version, manifest, chunks, vectors, windows, start, term_vectors)


def _read_chunks(folder: Path) -> list[Chunk]:
    return [Chunk(**json.loads(line)) for line in
            (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]


def write_version(path: Path, chunks: list[Chunk], vectors: np.ndarray, manifest: dict[str, Any],
                  index_type: str = "auto", window_vectors: np.ndarray | None = None,
                  window_owner: np.ndarray | None = None, terms=None) -> str:
    """Write a complete new version and make it live. Returns its folder name."""
    from .lexical import LexicalIndex

    import faiss

    path.mkdir(parents=True, exist_ok=True)
    version = time.strftime("v-%Y%m%dT%H%M%S-") + secrets.token_hex(3)
    staging = path / f".staging-{version}"
    staging.mkdir()
    chosen = choose_index_type(len(chunks), index_type)
    manifest = dict(manifest, format_version=FORMAT_VERSION, index_type=chosen, n_chunks=len(chunks),
                    updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    with open(staging / "chunks.jsonl", "w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
    np.save(staging / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(build_faiss(vectors, chosen), str(staging / "dense.faiss"))
    if window_vectors is not None:
        order = np.argsort(window_owner, kind="stable")  # grouped by chunk, see Index
        window_vectors = np.ascontiguousarray(window_vectors[order], dtype=np.float32)
        np.save(staging / "windows.npy", window_vectors)
        np.save(staging / "window_owner.npy", np.asarray(window_owner, dtype=np.int32)[order])
        window_type = choose_index_type(len(window_vectors), index_type)
        faiss.write_index(build_faiss(window_vectors, window_type), str(staging / "windows.faiss"))
    LexicalIndex.build([c.embedding_text() for c in chunks]).save(staging / "bm25")
    if terms is not None:
        terms.save(staging / "terms")
    (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    _fsync_tree(staging)
    os.rename(staging, path / version)
    pointer = path / f".CURRENT.{version}"
    pointer.write_text(version, encoding="utf-8")
    _fsync(pointer)
    os.replace(pointer, path / "CURRENT")  # the commit point
    _remove_stale_versions(path, keep=version)
    return version


def _fsync(file: Path) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for item in folder.rglob("*"):
        if item.is_file():
            _fsync(item)


def _remove_stale_versions(path: Path, keep: str) -> None:
    """Drop older versions and leftovers of interrupted ingests (never the live one)."""
    for item in path.iterdir():
        stale = (item.name.startswith("v-") and item.name != keep) or item.name.startswith((".staging-", ".CURRENT."))
        if stale:
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
