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
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from .errors import EmbedderMismatchError, IndexCorruptError, IndexNotFoundError
from .types import Chunk
from .versions import PreviousVersion  # noqa: F401  (returned by read_previous; importable from here)

FORMAT_VERSION = 1
_VERSION_NAME = re.compile(r"v-[0-9A-Za-z_.-]+")  # what write_version names a version folder
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


class IndexReader(Protocol):
    """What rag.retrieval.search reads from an opened index: :class:`Index` (FAISS folder)
    and :class:`rag.milvus_store.MilvusIndex` (Milvus) both provide it. Rows are
    positions in ``chunks``; ``vectors[rows]`` gives their float32 vectors."""

    version: str
    manifest: dict[str, Any]
    chunks: Sequence[Chunk]
    vectors: Any
    lexical: Any  # rag.lexical.LexicalIndex: search_all(question, n) -> (top rows, every row's score)
    terms: Any  # rag.terms.TermIndex or None: scores(question, embed_queries) -> every row's score

    @property
    def embed_model(self) -> str: ...

    def __len__(self) -> int: ...

    def search_dense(self, query_vector: np.ndarray, k: int) -> np.ndarray: ...

    def search_windows(self, query_vector: np.ndarray, k: int) -> np.ndarray: ...

    def dense_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

    def window_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

    def best_window(self, query_vector: np.ndarray, row: int) -> int | None: ...


def _milvus(path) -> bool:
    """The index lives in Milvus (rag/milvus_store.py), not in a folder."""
    from .locations import is_milvus

    return is_milvus(path)


def read_current(path: Path) -> str | None:
    if _milvus(path):
        from . import milvus_store

        return milvus_store.read_current(path)
    if path.exists() and not path.is_dir():
        raise IndexCorruptError(str(path), "it is a file, not an index folder",
                                fix="give --index (or RAG_INDEX_DIR) the index folder; `rag ingest` creates a new one")
    try:
        raw = (path / "CURRENT").read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(str(path), f"CURRENT cannot be read ({exc.strerror or exc})") from None
    name = raw.decode("utf-8", errors="replace").strip()
    if name and not _VERSION_NAME.fullmatch(name):
        # never a path: CURRENT must not lead the reader out of the index folder
        raise IndexCorruptError(str(path), f"CURRENT does not name a version folder (it holds {name[:40]!r})")
    return name or None


def read_manifest(path: Path) -> dict[str, Any]:
    if _milvus(path):
        from . import milvus_store

        return milvus_store.read_manifest(path)
    path = Path(path)
    version = read_current(path)
    if version is None:
        raise IndexNotFoundError(str(path))
    if not (path / version).is_dir():
        raise IndexCorruptError(str(path), f"CURRENT names {version}, which is missing")
    name = f"{version}/manifest.json"
    try:
        manifest = json.loads((path / version / "manifest.json").read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(str(path), f"{name} is missing") from None
    except OSError as exc:
        raise IndexCorruptError(str(path), f"{name} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON
        raise IndexCorruptError(str(path), f"{name} is not valid JSON ({str(exc)[:80]})") from None
    _check_manifest(path, manifest, name)
    return manifest


def _check_manifest(path: Path, manifest: Any, name: str) -> None:
    """The fields every reader relies on, so that none of them meets a KeyError later."""
    def bad(reason: str):
        raise IndexCorruptError(str(path), f"{name} {reason}")

    if not isinstance(manifest, dict):
        bad(f"is not a JSON object (found a {type(manifest).__name__})")
    if manifest.get("format_version") != FORMAT_VERSION:
        bad(f"has format version {manifest.get('format_version')!r}; this rag reads format {FORMAT_VERSION}")
    embedder = manifest.get("embedder")
    if not isinstance(embedder, dict) or not isinstance(embedder.get("name"), str) or not embedder["name"]:
        bad("has no embedder name")
    for key in ("files", "chunker"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            bad(f"has a '{key}' that is not an object")


def load_index(path: str | os.PathLike, embed_model: str | None = None) -> Index:
    """Open the live version at ``path``; with ``embed_model``, refuse an index built with another one."""
    if _milvus(path):
        from . import milvus_store

        return milvus_store.load_index(path, embed_model)
    path = Path(path)
    manifest = read_manifest(path)
    built_with = manifest["embedder"]["name"]
    if embed_model and embed_model != built_with:
        raise EmbedderMismatchError(str(path), built_with, embed_model)
    version = read_current(path)
    stored = _load_stored(path, version, manifest, mmap=True)
    dense, lexical, window_dense, terms = _load_derived(path, version, stored)
    return Index(path, version, manifest, stored.chunks, stored.vectors, dense, lexical, stored.windows,
                 stored.owner, window_dense, terms)


# --------------------------------------------------------------------------- checking a version
# Stored files (chunks.jsonl, vectors.npy, windows.npy, window_owner.npy) hold what
# was embedded: when one is damaged only a rebuild brings it back. Derived files
# (dense.faiss, windows.faiss, bm25/, terms/) are built from them: an ingest repairs
# them. Every check names the file, so the one line a person sees says where to look.


@dataclass
class _Stored:
    chunks: list[Chunk]
    vectors: np.ndarray
    windows: np.ndarray | None
    owner: np.ndarray | None


class _Damaged(Exception):
    """Raised inside a file's check: the detail follows the file's name in the message."""


def _repair_fix(path: Path) -> str:
    return (f"repair it with `rag ingest DOCS_DIR --index {path}` (it rebuilds the file from the stored "
            f"vectors), or rebuild with --rebuild")


_FAISS_WHERE = re.compile(r"^Error in .*? at \S+:\d+: (Error: )?")


def _part(path: Path, version: str, name: str, load, derived: bool = False):
    """``load(file)`` for file ``name`` of the version, any failure as one IndexCorruptError naming it."""
    fix = _repair_fix(path) if derived else None
    file = path / version / name
    if not file.exists():
        raise IndexCorruptError(str(path), f"{version}/{name} is missing", fix)
    try:
        return load(file)
    except IndexCorruptError:
        raise
    except _Damaged as exc:
        raise IndexCorruptError(str(path), f"{version}/{name} {exc}", fix) from None
    except Exception as exc:
        # FAISS messages span lines and open with the C++ signature and source line ("Error in
        # void faiss::read_xb_vector(...) at index_read.cpp:276: Error: ... read error in F: 137
        # != 320"): one line, what went wrong only.
        detail = " ".join(str(exc).split())
        detail = _FAISS_WHERE.sub("", detail)[:120]
        raise IndexCorruptError(str(path), f"{version}/{name} is unreadable ({type(exc).__name__}: "
                                           f"{detail})", fix) from None


def _load_stored(path: Path, version: str, manifest: dict[str, Any], mmap: bool) -> _Stored:
    mode = "r" if mmap else None

    def matrix(file: Path) -> np.ndarray:
        array = np.load(file, mmap_mode=mode, allow_pickle=False)
        if array.ndim != 2 or array.dtype != np.float32:
            raise _Damaged(f"holds {array.dtype} of shape {array.shape}, not float32 vectors")
        return array

    chunks = _part(path, version, "chunks.jsonl", _read_chunks)
    vectors = _part(path, version, "vectors.npy", matrix)
    if len(vectors) != len(chunks):
        raise IndexCorruptError(str(path), f"{version}/vectors.npy holds {len(vectors)} vectors for "
                                           f"{len(chunks)} chunks in chunks.jsonl")
    dim = manifest["embedder"].get("dim")
    if isinstance(dim, int) and vectors.shape[1] != dim:  # else new vectors would not fit beside them
        raise IndexCorruptError(str(path), f"{version}/vectors.npy has {vectors.shape[1]}-dim vectors, the "
                                           f"embedder in manifest.json {dim}")
    windows = owner = None
    window_chars = int((manifest.get("chunker") or {}).get("window_chars") or 0)
    if window_chars or (path / version / "windows.npy").exists():
        windows = _part(path, version, "windows.npy", matrix)
        owner = _part(path, version, "window_owner.npy", lambda f: np.load(f, allow_pickle=False))
        if owner.ndim != 1 or len(owner) != len(windows) or not np.issubdtype(owner.dtype, np.integer):
            raise IndexCorruptError(str(path), f"{version}/window_owner.npy holds {owner.shape} owners for "
                                               f"{len(windows)} windows in windows.npy")
        if len(owner) and (owner.min() < 0 or owner.max() >= len(chunks) or np.any(np.diff(owner) < 0)):
            raise IndexCorruptError(str(path), f"{version}/window_owner.npy names chunks that do not exist")
        if windows.shape[1] != vectors.shape[1]:
            raise IndexCorruptError(str(path), f"{version}/windows.npy has {windows.shape[1]}-dim vectors, "
                                               f"vectors.npy {vectors.shape[1]}-dim")
    return _Stored(chunks, vectors, windows, owner)


def _faiss_of(n: int, dim: int, mmap: bool = False):
    def load(file: Path):
        import faiss

        index = None
        if mmap:  # the header is enough to check: no need to read a big index twice
            try:
                index = faiss.read_index(str(file), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                index = None
        index = index if index is not None else faiss.read_index(str(file))
        if index.ntotal != n or index.d != dim:
            raise _Damaged(f"holds {index.ntotal} vectors of {index.d} dims, not {n} of {dim}")
        return index
    return load


def _load_derived(path: Path, version: str, stored: _Stored, check_only: bool = False):
    """(dense, lexical, window dense, terms) of the version; IndexCorruptError naming the first bad one."""
    from .lexical import LexicalIndex
    from .terms import TermIndex

    n, dim = len(stored.chunks), stored.vectors.shape[1]
    dense = _part(path, version, "dense.faiss", _faiss_of(n, dim, check_only), derived=True)
    if (path / version / "vectors.npy").exists() and dense.d != dim:
        raise IndexCorruptError(str(path), f"{version}/vectors.npy has {dim}-dim vectors, dense.faiss {dense.d}")

    def lexical_of(folder: Path):
        lexical = LexicalIndex.load(folder, mmap=check_only)
        if lexical.num_docs != n:
            raise _Damaged(f"covers {lexical.num_docs} chunks, not {n}")
        return lexical

    lexical = _part(path, version, "bm25", lexical_of, derived=True)
    window_dense = None
    if stored.windows is not None:
        window_dense = _part(path, version, "windows.faiss", _faiss_of(len(stored.windows), dim, check_only),
                             derived=True)

    def terms_of(folder: Path):
        terms = TermIndex.load(folder)
        if terms.lexical.num_docs != n:
            raise _Damaged(f"covers {terms.lexical.num_docs} chunks, not {n}")
        return terms

    # written before term expansion: no terms/ folder, and the index still answers
    terms = _part(path, version, "terms", terms_of, derived=True) if (path / version / "terms").exists() else None
    return dense, lexical, window_dense, terms


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
    stored = _load_stored(path, version, manifest, mmap=False)
    if stored.windows is not None:
        counts = np.bincount(stored.owner, minlength=len(stored.vectors))
        windows, start = stored.windows, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    else:  # written before sentence windows (or with window_chars=0)
        windows = np.zeros((0, stored.vectors.shape[1]), dtype=np.float32)
        start = np.zeros(len(stored.vectors) + 1, dtype=np.int64)
    damaged, term_vectors = "", {}
    try:
        terms = _load_derived(path, version, stored, check_only=True)[3]
    except IndexCorruptError as exc:  # rebuilt from the stored vectors by the next version
        damaged = exc.reason
        terms = None
        if not exc.reason.startswith(f"{version}/terms"):
            try:
                terms = TermIndex.load(path / version / "terms") if (path / version / "terms").exists() else None
            except Exception:
                terms = None
    if terms is not None:  # written before term expansion: no term vectors to reuse
        term_vectors = terms.known_vectors()
    return PreviousVersion(version, manifest, stored.chunks, np.asarray(stored.vectors), windows, start,
                           term_vectors, damaged)


def _read_chunks(file: Path) -> list[Chunk]:
    chunks = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line:
            continue
        try:
            chunks.append(Chunk(**json.loads(line)))
        except (ValueError, TypeError, RecursionError) as exc:
            raise _Damaged(f"line {number} is not a chunk ({type(exc).__name__}: {str(exc)[:80]})") from None
    return chunks


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


def remove_leftovers(path: Path) -> None:
    """Drop what ingests killed mid-write left (``.staging-*`` folders, ``.CURRENT.*``
    pointers). Call it holding the index's lock: then nobody is writing them."""
    if not Path(path).is_dir():
        return
    for item in Path(path).iterdir():
        if item.name.startswith((".staging-", ".CURRENT.")):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)


def _remove_stale_versions(path: Path, keep: str) -> None:
    """Drop older versions and leftovers of interrupted ingests (never the live one)."""
    for item in path.iterdir():
        stale = (item.name.startswith("v-") and item.name != keep) or item.name.startswith((".staging-", ".CURRENT."))
        if stale:
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
