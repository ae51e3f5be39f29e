"""The index on Milvus: a second implementation of the store (rag/store.py is FAISS).

Where the index lives is one parameter: ``--index`` / ``RAG_INDEX_DIR`` / ``index=``
take a folder (FAISS) or a Milvus URI:

* ``milvus:///abs/path/file.db``  Milvus Lite, in this process (one process at a time);
* ``milvus://HOST:PORT``          a Milvus server or cluster (token: ``RAG_MILVUS_TOKEN``);
* either with ``#name`` for the collection set (default ``default``).

One index is four collections, ``<name>_meta``, ``<name>_chunks``, ``<name>_windows``
and ``<name>_terms``:

* meta: one row with the settings (embedder, dimension, chunker, format) and one row
  per file (hash, chunk count, pages, and ``gen``, the generation its chunks carry).
  This is the manifest, in the engine, shared by every writer and reader.
* chunks: one row per chunk (Chunk JSON, its corpus terms, its vector, its file's gen);
* windows: one row per sentence window (vector, owning chunk id, gen);
* terms: one row per distinct corpus term (its vector), for term expansion.

Which ranker runs where (README, "Scale out"): the two dense rankers (chunk vectors,
sentence windows) and the term-neighbour lookup of the expansion are nearest-neighbour
searches in the engine. The two BM25 rankers (words + CJK bigrams, and the expanded
corpus terms) are scored in the client over the chunk text the engine holds: the
z-score fusion needs every candidate's score from every ranker (a candidate one
ranker did not propose still gets that ranker's score), and the expansion scores a
chunk by the *best* neighbour of each question term, which the engine's BM25 (a sum
over query tokens, with its own tokenizers: Milvus Lite offers only ``standard`` and
``jieba``) cannot express. This keeps hit@5/MRR@5 equal to FAISS.

Visibility (many writers, many readers): a writer stores a file's new chunks under a
fresh ``gen``, then switches the file's meta row to that gen (one upsert), then deletes
the rows of the old gen. Readers only ever search and fetch ``gen in [live gens]``, so
a file is wholly old or wholly new to them, and the rows of an ingest killed before
its switch are invisible (and removed by a later ingest once they are an hour old).

Opening: a reader builds its snapshot (chunk text, client-side BM25) once per index
version and keeps it on local disk under that version ("reader cache" below); the next
reader of the same version reads it instead of fetching every chunk again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import EmbedderMismatchError, IndexCorruptError, IndexNotFoundError, InputError, StoreUnavailableError
from .types import Chunk

FORMAT = "rag-milvus-1"
SETTINGS_KEY = "settings"
FILE_PREFIX = "file:"
MAX_TEXT = 65535  # VARCHAR limit (bytes)
INSERT_BATCH = 512
QUERY_PAGE = 8192
# Rows of an ingest that died before its switch: removed by a later ingest once they
# are this old (a younger orphan may be a concurrent ingest still writing).
ORPHAN_AGE_S = 3600
# Chunk and window vectors fetched for candidate scoring, kept per reader.
VECTOR_CACHE = 20_000
# Expansion neighbours asked of the engine per question term: more than the
# EXPANSION_NEIGHBORS kept, because terms of deleted chunks stay in the terms
# collection (harmless: they are not in a reader's vocabulary, so they are skipped).
TERM_OVERFETCH = 3



# --------------------------------------------------------------------------- location


# parsed in rag.locations (config and store read locations without importing this module)
from .locations import _HOST_PORT, _NAME, DEFAULT_COLLECTION, SCHEME, MilvusURI, is_milvus, parse  # noqa: E402,F401


# --------------------------------------------------------------------------- connection

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _token() -> str:
    from . import config

    return config.milvus_token() or ""


def client(uri: MilvusURI):
    """One MilvusClient per engine and token in this process (Milvus Lite allows one
    process per file, and a server connection is worth reusing)."""
    token = "" if uri.is_lite else _token()
    key = (uri.client_uri, token)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = _connect(uri, token)
        return found


def _connect(uri: MilvusURI, token: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise StoreUnavailableError(str(uri), "pymilvus is not installed: pip install 'rag-docs[milvus]'") from None
    import logging

    # pymilvus logs every failed call and some harmless fallbacks at WARNING; the
    # failures reach the user as one line each (StoreUnavailableError)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # it logs a traceback for a locked file
    if uri.is_lite:
        import importlib.util

        if importlib.util.find_spec("milvus_lite") is None:
            raise StoreUnavailableError(str(uri), "a milvus:///file.db index needs Milvus Lite: "
                                                  "pip install 'rag-docs[milvus]' (or point at a Milvus server)")
        Path(uri.target).parent.mkdir(parents=True, exist_ok=True)
    try:
        found = MilvusClient(uri=uri.client_uri, token=token, timeout=10)
        found.list_collections()  # a wrong token fails here on a server with auth
        return found
    except Exception as exc:
        raise _unavailable(uri, exc) from None


def _lite_locked(uri: MilvusURI) -> bool:
    """Another process holds the Milvus Lite file (its LOCK is an advisory flock)."""
    import fcntl

    try:
        with open(Path(uri.target) / "LOCK", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


# How a Milvus server says no, as pymilvus hands it on (not reproducible with Milvus Lite,
# which has no users: tests/test_milvus_errors.py checks this mapping on the exceptions
# themselves). A wrong or missing token: gRPC UNAUTHENTICATED ("auth check failure, please
# check username and password are correct", "missing authorization in header"), which
# pymilvus wraps at connect time in MilvusException(code=2, "Fail connecting to server on
# ..., illegal connection params or server unavailable") raised *from* it, so the cause
# decides, not the message. A valid user whose role lacks a privilege: PERMISSION_DENIED
# ("PrivilegeInsert: permission deny to rag_reader in the `default` database").
_AUTH_WORDS = ("auth check failure", "missing authorization", "hasn't authenticated", "unauthenticated",
               "credential", "password", "token")
_PRIVILEGE_WORDS = ("permission deny", "permission denied", "permission_denied")
_AUTH_CODES = {1800}  # merr ErrNeedAuthenticate: "user hasn't authenticated"


def _rpc_status(exc: BaseException) -> tuple[str, str]:
    """(gRPC status name, details) of the first gRPC error in ``exc``'s cause chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code, details = getattr(current, "code", None), getattr(current, "details", None)
        if callable(code) and callable(details):  # grpc.RpcError (a grpc.Call)
            try:
                return str(getattr(code(), "name", code())), str(details() or "")
            except Exception:
                return "", ""
        current = current.__cause__ or current.__context__
    return "", ""


def _unavailable(uri: MilvusURI, exc: BaseException) -> StoreUnavailableError:
    message = str(getattr(exc, "message", "") or exc)
    status, details = _rpc_status(exc)
    lowered = f"{message}\n{details}".lower()
    if uri.is_lite and ("open local milvus failed" in lowered or "lock" in lowered) and _lite_locked(uri):
        return StoreUnavailableError(str(uri), "the Milvus Lite file is open in another process (Milvus Lite "
                                               "serves one process): stop it, or run a Milvus server and use "
                                               "milvus://host:port")
    if status == "PERMISSION_DENIED" or any(word in lowered for word in _PRIVILEGE_WORDS):
        what = (details or message).splitlines()[0][:200]
        return StoreUnavailableError(str(uri), f"the engine refused this to the user of RAG_MILVUS_TOKEN ({what}): "
                                               f"grant its role read-write on the collections to ingest (read-only "
                                               f"is enough to ask or serve)")
    if status == "UNAUTHENTICATED" or getattr(exc, "code", None) in _AUTH_CODES \
            or any(word in lowered for word in _AUTH_WORDS):
        return StoreUnavailableError(str(uri), "the engine refused the token: set RAG_MILVUS_TOKEN to "
                                               "user:password or an API key valid on that server")
    if any(word in lowered for word in ("fail connecting", "unavailable", "connect", "deadline", "timeout")):
        return StoreUnavailableError(str(uri), f"cannot reach the Milvus engine at {uri.target}: start it or "
                                               f"check host and port")
    return StoreUnavailableError(str(uri), message.splitlines()[0][:200] if message else type(exc).__name__)


def _call(uri: MilvusURI, fn, *args, **kwargs):
    """An engine call whose failure becomes one line (StoreUnavailableError, exit 3)."""
    try:
        return fn(*args, **kwargs)
    except (InputError, IndexNotFoundError, EmbedderMismatchError, StoreUnavailableError):
        raise
    except Exception as exc:
        raise _unavailable(uri, exc) from None


def names(uri: MilvusURI) -> dict[str, str]:
    return {part: f"{uri.collection}_{part}" for part in ("meta", "chunks", "windows", "terms")}


# --------------------------------------------------------------------------- schemas

def _create_collections(uri: MilvusURI, dim: int, index_type: str) -> None:
    from pymilvus import DataType

    c = client(uri)
    n = names(uri)

    def make(name, fields, vector_dim, extra_index=()):
        if _call(uri, c.has_collection, name):
            return
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        for field_name, dtype, kw in fields:
            schema.add_field(field_name, dtype, **kw)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vector_dim)
        params = c.prepare_index_params()
        params.add_index("vector", **_vector_index(index_type))
        for scalar in extra_index:
            params.add_index(scalar, index_type="INVERTED")
        _call(uri, c.create_collection, name, schema=schema, index_params=params, consistency_level="Strong")

    make(n["meta"], [("key", DataType.VARCHAR, dict(is_primary=True, max_length=MAX_TEXT)),
                     ("gen", DataType.INT64, {}),
                     ("value", DataType.VARCHAR, dict(max_length=MAX_TEXT))], 2)
    make(n["chunks"], [("id", DataType.INT64, dict(is_primary=True)),
                       ("gen", DataType.INT64, {}),
                       ("ord", DataType.INT64, {}),
                       ("chunk", DataType.VARCHAR, dict(max_length=MAX_TEXT)),
                       ("terms", DataType.VARCHAR, dict(max_length=MAX_TEXT))], dim, ("gen",))
    make(n["windows"], [("id", DataType.INT64, dict(is_primary=True)),
                        ("gen", DataType.INT64, {}),
                        ("owner", DataType.INT64, {}),
                        ("ord", DataType.INT64, {})], dim, ("gen", "owner"))
    make(n["terms"], [("term", DataType.VARCHAR, dict(is_primary=True, max_length=1024))], dim)


def _vector_index(index_type: str) -> dict:
    """FLAT (exact) up to rag.vectors.HNSW_AUTO_THRESHOLD chunks, the same HNSW settings as
    FAISS above: the engine's recall/latency then matches what bench/scaling.py measured."""
    from .vectors import HNSW_EF_CONSTRUCTION, HNSW_M

    if index_type == "hnsw":
        return dict(index_type="HNSW", metric_type="IP", params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
    return dict(index_type="FLAT", metric_type="IP")


def _search_params() -> dict:
    from .vectors import HNSW_EF_SEARCH

    return {"metric_type": "IP", "params": {"ef": HNSW_EF_SEARCH}}


# --------------------------------------------------------------------------- reading meta


def _query_all(uri: MilvusURI, collection: str, filter: str, fields: list[str]) -> list[dict]:
    """Every row matching ``filter`` (paged: the engine caps one query's result)."""
    c = client(uri)
    out: list[dict] = []
    try:
        iterator = c.query_iterator(collection, batch_size=QUERY_PAGE, filter=filter, output_fields=fields)
    except Exception as exc:
        raise _unavailable(uri, exc) from None
    try:
        while True:
            page = _call(uri, iterator.next)
            if not page:
                break
            out.extend(page)
    finally:
        try:
            iterator.close()
        except Exception:
            pass
    return out


_loaded: set[tuple[str, str]] = set()


def _ensure_loaded(uri: MilvusURI) -> None:
    """Collections are searchable once loaded into the engine's memory; a process that
    opens an existing index (Milvus Lite restarted, or a server after a release) loads them."""
    c = client(uri)
    for name in names(uri).values():
        key = (uri.client_uri, name)
        if key in _loaded:
            continue
        if _call(uri, c.has_collection, name):
            state = str(_call(uri, c.get_load_state, name).get("state", ""))
            if "Loaded" not in state:
                _call(uri, c.load_collection, name)
            _loaded.add(key)


def read_meta(uri: MilvusURI) -> tuple[dict | None, dict[str, tuple[int, dict]]]:
    """(settings row or None, {file path: (gen, file meta)})."""
    c = client(uri)
    meta = names(uri)["meta"]
    if not _call(uri, c.has_collection, meta):
        return None, {}
    _ensure_loaded(uri)
    rows = _query_all(uri, meta, 'key != ""', ["key", "gen", "value"])
    settings, files = None, {}
    for row in rows:
        value = json.loads(row["value"])
        if row["key"] == SETTINGS_KEY:
            settings = value
        elif row["key"].startswith(FILE_PREFIX):
            files[row["key"][len(FILE_PREFIX):]] = (int(row["gen"]), value)
    return settings, files


def _version(settings: dict | None, files: dict[str, tuple[int, dict]]) -> str | None:
    if settings is None:
        return None
    digest = hashlib.sha256(json.dumps([settings.get("embedder"), settings.get("chunker"),
                                        sorted((p, g) for p, (g, _) in files.items())]).encode())
    return "m-" + digest.hexdigest()[:16]


def _manifest(settings: dict, files: dict[str, tuple[int, dict]]) -> dict[str, Any]:
    return {
        "format_version": settings.get("format"),
        "embedder": settings["embedder"],
        "chunker": settings["chunker"],
        "created_at": settings.get("created_at"),
        "updated_at": settings.get("updated_at"),
        "index_type": "milvus-" + settings.get("index_type", "flat"),
        "store": "milvus",
        "n_chunks": sum(int(meta.get("chunks", 0)) for _, meta in files.values()),
        "files": {path: meta for path, (_, meta) in sorted(files.items())},
    }


def read_current(uri) -> str | None:
    uri = parse(uri)
    settings, files = read_meta(uri)
    return _version(settings, files)


def read_manifest(uri) -> dict[str, Any]:
    uri = parse(uri)
    settings, files = read_meta(uri)
    if settings is None:
        raise IndexNotFoundError(str(uri))
    return _manifest(settings, files)


# --------------------------------------------------------------------------- the reader


class _Vectors:
    """``index.vectors[rows]`` fetched from the engine (for MMR)."""

    def __init__(self, index: "MilvusIndex"):
        self.index = index

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):  # index.vectors[row:row + 1], as on a numpy array
            rows = np.arange(*rows.indices(len(self.index)))
        return self.index._chunk_vectors(np.atleast_1d(np.asarray(rows, dtype=np.int64)))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.index), self.index.dim)


class MilvusIndex:
    """A snapshot of the live files of a Milvus index, with the read interface of
    :class:`rag.store.Index` (what rag.retrieval.search uses).

    Rows are positions in ``chunks`` (files sorted by path, chunks in file order). The
    chunk text and terms are held here for the client-side BM25 rankers; vectors stay
    in the engine and are fetched for the candidates of each question.
    """

    def __init__(self, uri: MilvusURI, version: str, settings: dict, files: dict[str, tuple[int, dict]],
                 chunks: list[Chunk], ids: np.ndarray, chunk_terms: list[list[str]],
                 chunk_tokens: list[list[str]] | None = None, *, lexical=None, term_lexical=None):
        from .lexical import LexicalIndex, tokenize

        self.uri = uri
        self.path = uri
        self.version = version
        self.settings = settings
        self.manifest = _manifest(settings, files)
        self.chunks = chunks
        self.ids = ids
        self.row_of = {int(i): r for r, i in enumerate(ids)}
        self.gens = sorted({gen for gen, _ in files.values()})
        self.dim = int(settings["dim"])
        self._token_ids: list[list[int]] | None = None  # kept until the snapshot is cached on disk
        if lexical is None and chunks:
            if chunk_tokens is None:
                chunk_tokens = [tokenize(c.embedding_text()) for c in chunks]
            # the same vocabulary and ids as LexicalIndex.build (what FAISS writes at ingest)
            vocab: dict[str, int] = {"": 0}
            self._token_ids = [[vocab.setdefault(tok, len(vocab)) for tok in tokens] for tokens in chunk_tokens]
            lexical = LexicalIndex.from_token_ids(self._token_ids, vocab)
        self.lexical = lexical
        self._chunk_terms = chunk_terms  # for the reader cache (None when read from it)
        if term_lexical is not None:
            self.terms = _terms_class().from_lexical(self, term_lexical)
        else:
            self.terms = _terms_class().build_for(self, chunk_terms) if chunks else None
        self.vectors = _Vectors(self)
        self._has_windows = bool(int(settings["chunker"].get("window_chars") or 0))
        self._vec_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._win_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        # the engine rows per gen, for the next reload (a snapshot from the reader cache makes
        # them on first use: most readers never reload)
        self._rows: dict[int, list[dict]] | None = None
        self._rows_source = None

    @property
    def _rows_by_gen(self) -> dict[int, list[dict]]:
        if self._rows is None:
            self._rows = self._rows_source() if self._rows_source is not None else {}
            self._rows_source = None
        return self._rows

    @_rows_by_gen.setter
    def _rows_by_gen(self, rows: dict[int, list[dict]]) -> None:
        self._rows, self._rows_source = rows, None

    @property
    def embed_model(self) -> str:
        return self.manifest["embedder"]["name"]

    def __len__(self) -> int:
        return len(self.chunks)

    def _filter(self) -> str:
        return f"gen in {self.gens}"

    def _ann(self, part: str, query_vector: np.ndarray, k: int, fields: list[str]) -> list[dict]:
        if k <= 0 or not self.gens:
            return []
        hits = _call(self.uri, client(self.uri).search, names(self.uri)[part],
                     data=[np.asarray(query_vector, dtype=np.float32).tolist()], anns_field="vector",
                     limit=int(k), filter=self._filter(), output_fields=fields, search_params=_search_params())
        return list(hits[0]) if hits else []

    def search_dense(self, query_vector: np.ndarray, k: int) -> np.ndarray:
        rows = [self.row_of.get(int(hit["id"])) for hit in self._ann("chunks", query_vector, min(k, len(self)), [])]
        return np.asarray([r for r in rows if r is not None], dtype=np.int64)

    def search_windows(self, query_vector: np.ndarray, k: int) -> np.ndarray:
        if not self._has_windows:
            return np.zeros(0, dtype=np.int64)
        hits = self._ann("windows", query_vector, k, ["owner"])
        rows = {self.row_of.get(int(hit["entity"]["owner"])) for hit in hits}
        return np.asarray(sorted(r for r in rows if r is not None), dtype=np.int64)

    def _chunk_vectors(self, rows: np.ndarray) -> np.ndarray:
        ids = [int(self.ids[r]) for r in rows]
        with self._cache_lock:
            missing = [i for i in dict.fromkeys(ids) if i not in self._vec_cache]
        if missing:
            found = _call(self.uri, client(self.uri).query, names(self.uri)["chunks"],
                          filter=f"id in {missing}", output_fields=["id", "vector"])
            with self._cache_lock:
                for row in found:
                    self._remember(self._vec_cache, int(row["id"]), np.asarray(row["vector"], dtype=np.float32))
        with self._cache_lock:
            # a chunk deleted by a concurrent switch after this snapshot was taken: scores 0
            return np.stack([self._vec_cache.get(i, np.zeros(self.dim, np.float32)) for i in ids]) if ids \
                else np.zeros((0, self.dim), np.float32)

    def _windows_of(self, rows: np.ndarray) -> list[np.ndarray]:
        ids = [int(self.ids[r]) for r in rows]
        with self._cache_lock:
            missing = [i for i in dict.fromkeys(ids) if i not in self._win_cache]
        if missing:
            found = _call(self.uri, client(self.uri).query, names(self.uri)["windows"],
                          filter=f"owner in {missing}", output_fields=["owner", "ord", "vector"])
            grouped: dict[int, list] = {i: [] for i in missing}
            for row in found:
                grouped.setdefault(int(row["owner"]), []).append((int(row["ord"]), row["vector"]))
            with self._cache_lock:
                for owner, items in grouped.items():
                    items.sort(key=lambda item: item[0])
                    block = (np.asarray([v for _, v in items], dtype=np.float32) if items
                             else np.zeros((0, self.dim), np.float32))
                    self._remember(self._win_cache, owner, block)
        with self._cache_lock:
            return [self._win_cache.get(i, np.zeros((0, self.dim), np.float32)) for i in ids]

    @staticmethod
    def _remember(cache: OrderedDict, key: int, value: np.ndarray) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > VECTOR_CACHE:
            cache.popitem(last=False)

    def dense_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return self._chunk_vectors(rows) @ np.asarray(query_vector, dtype=np.float32)

    def window_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        best = self.dense_scores(query_vector, rows)
        if not self._has_windows or not len(rows):
            return best
        for i, block in enumerate(self._windows_of(rows)):
            if len(block):
                best[i] = float(np.max(block @ query_vector))
        return best

    def best_window(self, query_vector: np.ndarray, row: int) -> int | None:
        if not self._has_windows:
            return None
        block = self._windows_of(np.asarray([row]))[0]
        return int(np.argmax(block @ query_vector)) if len(block) else None


@__import__("functools").lru_cache(maxsize=1)
def _terms_class():
    from .terms import EXPANSION_MIN_SIMILARITY, EXPANSION_NEIGHBORS, TermIndex

    class MilvusTermIndex(TermIndex):
        """Term expansion with the term neighbours found by the engine; the BM25 over
        each chunk's terms is the client's (see the module docstring)."""

        @classmethod
        def build_for(cls, index: MilvusIndex, chunk_terms: list[list[str]]) -> "MilvusTermIndex":
            from .lexical import LexicalIndex

            vocab = sorted({t for terms in chunk_terms for t in terms})
            ids = {term: i + 1 for i, term in enumerate(vocab)}  # 0 is the empty token (as TermIndex.build)
            lexical = LexicalIndex.from_token_ids([[ids[t] for t in terms] for terms in chunk_terms],
                                                  {"": 0, **ids})
            return cls.from_lexical(index, lexical)

        @classmethod
        def from_lexical(cls, index: MilvusIndex, lexical) -> "MilvusTermIndex":
            """Around a BM25 over chunk terms built before (or loaded from the reader cache)."""
            ids = {term: i for term, i in lexical.vocab.items() if term}
            found = cls(sorted(ids, key=ids.__getitem__), np.zeros((len(ids), 0), np.float32), lexical)
            found.owner = index
            found.token_of = ids
            return found

        def expansions(self, vectors: np.ndarray) -> list[list[tuple[int, float]]]:
            if not len(self.vocab) or not len(vectors):
                return [[] for _ in range(len(vectors))]
            uri = self.owner.uri
            hits = _call(uri, client(uri).search, names(uri)["terms"],
                         data=[np.asarray(v, dtype=np.float32).tolist() for v in vectors], anns_field="vector",
                         limit=min(EXPANSION_NEIGHBORS * TERM_OVERFETCH, 16384), output_fields=["term"],
                         search_params=_search_params())
            out = []
            for row in hits:
                found = [(hit["entity"]["term"], float(hit["distance"])) for hit in row]
                kept = [(self.token_of[term], sim) for term, sim in found if term in self.token_of]
                kept = kept[:EXPANSION_NEIGHBORS]
                out.append([(token, sim) for token, sim in kept if sim >= EXPANSION_MIN_SIMILARITY])
            return out

    return MilvusTermIndex


def load_index(uri, embed_model: str | None = None, attempts: int = 5,
               previous: MilvusIndex | None = None) -> MilvusIndex:
    """A consistent snapshot of the live files: every chunk of every live gen, checked
    against the meta's chunk counts (a switch between reading the meta and the chunks
    shows as a short count: read again). With ``previous`` (an older snapshot of the same
    index), only the generations it does not hold are fetched: a reader reloading after
    one file switched reads that file, not the corpus."""
    uri = parse(uri)
    known: dict[int, list[dict]] = previous._rows_by_gen if previous is not None else {}
    for _ in range(attempts):
        settings, files = read_meta(uri)
        if settings is None:
            raise IndexNotFoundError(str(uri))
        if settings.get("format") != FORMAT:
            raise IndexCorruptError(str(uri), f"format {settings.get('format')}, expected {FORMAT}")
        built_with = settings["embedder"]["name"]
        if embed_model and embed_model != built_with:
            raise EmbedderMismatchError(str(uri), built_with, embed_model)
        cached = _cache_read(uri, _version(settings, files), settings, files)
        if cached is not None:
            return cached
        gens = sorted({gen for gen, _ in files.values()})
        fetch = [g for g in gens if g not in known]
        rows = _query_all(uri, names(uri)["chunks"], f"gen in {fetch}", ["id", "gen", "ord", "chunk", "terms"]) \
            if fetch else []
        by_gen: dict[int, list[dict]] = {g: known[g] for g in gens if g in known}
        for row in rows:
            by_gen.setdefault(int(row["gen"]), []).append(row)
        expected = {gen: int(meta["chunks"]) for gen, meta in files.values() if int(meta["chunks"])}
        if {g: len(r) for g, r in by_gen.items()} == expected:
            break
        time.sleep(0.2)
    else:
        raise IndexCorruptError(str(uri), "the chunk rows do not match the file table after several reads "
                                          "(a writer crashed mid-switch?)")
    ordered: list[dict] = []
    for path, (gen, _) in sorted(files.items()):
        block = by_gen.get(gen, [])
        block.sort(key=lambda row: int(row["ord"]))
        ordered.extend(block)
    from .lexical import tokenize

    for row in ordered:
        if "_chunk" not in row:  # parsed and tokenized once per process, kept for later reloads
            row["_chunk"] = Chunk(**json.loads(row.pop("chunk")))
            row["_terms"] = json.loads(row.pop("terms"))
            row["_tokens"] = tokenize(row["_chunk"].embedding_text())
    chunks = [row["_chunk"] for row in ordered]
    ids = np.asarray([int(row["id"]) for row in ordered], dtype=np.int64)
    index = MilvusIndex(uri, _version(settings, files), settings, files, chunks, ids,
                        [row["_terms"] for row in ordered], [row["_tokens"] for row in ordered])
    index._rows_by_gen = by_gen
    _cache_write(index, ordered)
    return index


# --------------------------------------------------------------------------- reader cache
#
# A reader's open is the snapshot fetch (every live chunk's text and terms) plus the
# client-side BM25 builds: ~7 s at 10k chunks (bench/scaling.py, "reader open"). What it
# builds depends only on the version: the hash of the embedder, the chunker and every live
# file's generation, and a generation's rows never change after its switch (a new write
# takes a new generation). So the built snapshot is cached on local disk under that
# version, read from the engine at each open: a cache entry can only ever be used for
# exactly the rows it was built from; any writer's switch, delete or rebuild changes the
# version, and the next open builds (and caches) the new one. JSON and .npy files, no
# pickle: a cache file cannot run code. A damaged entry is a miss (and removed).

CACHE_FORMAT = 1
CACHE_KEEP = 2  # versions kept per index (an older reader may still be writing its own)


def cache_folder(uri: MilvusURI) -> Path:
    """Beside a Milvus Lite file (``index.db.rag-cache/<collection>``: it goes with the file);
    for a server, under the user's cache (``$RAG_CACHE_DIR/milvus/<host_port>/<collection>``)."""
    if uri.is_lite:
        return Path(uri.target + ".rag-cache") / uri.collection
    from . import config

    return config.cache_dir() / "milvus" / re.sub(r"[^A-Za-z0-9_.-]", "_", uri.target) / uri.collection


def _cache_entry(uri: MilvusURI, version: str) -> Path:
    return cache_folder(uri) / f"{version}.v{CACHE_FORMAT}"


_CHUNK_FIELDS = [name for name in Chunk.__dataclass_fields__ if name != "text"]


def _ragged(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of ints as one flat array and offsets (row r: flat[offsets[r]:offsets[r + 1]])."""
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(lengths.sum()))
    return flat, np.concatenate([[0], np.cumsum(lengths)])


def _cache_write(index: MilvusIndex, rows: list[dict]) -> None:
    """Store the built snapshot (best effort: a read-only disk only costs the next open).

    Columnar, so that reading it back is a few bulk decodes: the chunk texts as one string
    with their lengths, the other chunk fields as one JSON list, each chunk's words and
    terms as ids into the two BM25 vocabularies (decoding a JSON list of a million short
    terms alone took 0.3 s at 10k chunks)."""
    import os
    import shutil

    token_ids, index._token_ids = index._token_ids, None
    if token_ids is None or index.lexical is None or index.terms is None:
        return
    entry = _cache_entry(index.uri, index.version)
    if entry.exists():
        return
    staging = entry.parent / f".{entry.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging.mkdir(mode=0o700)
        (staging / "texts.txt").write_text("".join(c.text for c in index.chunks), encoding="utf-8")
        (staging / "chunks.json").write_text(json.dumps(
            [[getattr(c, name) for name in _CHUNK_FIELDS] for c in index.chunks], ensure_ascii=False),
            encoding="utf-8")
        tokens, token_offsets = _ragged(token_ids)
        term_of = index.terms.token_of
        terms, term_offsets = _ragged([[term_of[t] for t in chunk] for chunk in index._chunk_terms])
        np.savez(staging / "rows.npz", ids=index.ids, gens=np.asarray([int(r["gen"]) for r in rows], np.int64),
                 ords=np.asarray([int(r["ord"]) for r in rows], np.int64),
                 text_lengths=np.asarray([len(c.text) for c in index.chunks], np.int64),
                 tokens=tokens, token_offsets=token_offsets, terms=terms, term_offsets=term_offsets)
        _save_lexical(index.lexical, staging / "bm25")
        _save_lexical(index.terms.lexical, staging / "terms")
        (staging / "entry.json").write_text(json.dumps({"format": CACHE_FORMAT, "uri": str(index.uri),
                                                        "version": index.version, "chunks": len(index)}))
        os.rename(staging, entry)  # whole or absent; another reader may have renamed its copy first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return
    entries = sorted((p for p in entry.parent.glob(f"*.v{CACHE_FORMAT}") if p != entry),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[CACHE_KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def _words(lexical) -> list[str]:
    """The vocabulary in id order (its ids are dense: 0 .. len - 1)."""
    words = [""] * len(lexical.vocab)
    for word, i in lexical.vocab.items():
        words[i] = word
    return words


def _save_lexical(lexical, folder: Path) -> None:
    """bm25s's own arrays, and the vocabulary as a list in id order (a JSON list writes
    6x faster than LexicalIndex.save's dict at 150k tokens)."""
    folder.mkdir()
    lexical.retriever.save(str(folder), show_progress=False)
    (folder / "words.json").write_text(json.dumps(_words(lexical), ensure_ascii=False), encoding="utf-8")


def _load_lexical(folder: Path):
    import bm25s

    from .lexical import LexicalIndex

    retriever = bm25s.BM25.load(str(folder), load_vocab=False, show_progress=False)
    words = json.loads((folder / "words.json").read_text(encoding="utf-8"))
    return LexicalIndex(retriever, {word: i for i, word in enumerate(words)})


def _cache_read(uri: MilvusURI, version: str | None, settings: dict,
                files: dict[str, tuple[int, dict]]) -> MilvusIndex | None:
    import shutil

    if version is None:
        return None
    entry = _cache_entry(uri, version)
    if not entry.is_dir():
        return None
    try:
        about = json.loads((entry / "entry.json").read_text())
        expected = sum(int(meta["chunks"]) for _, meta in files.values())
        if (about.get("format"), about.get("uri"), about.get("version"), about.get("chunks")) != \
                (CACHE_FORMAT, str(uri), version, expected):
            raise ValueError("not this snapshot")
        fields = json.loads((entry / "chunks.json").read_text(encoding="utf-8"))
        texts = (entry / "texts.txt").read_text(encoding="utf-8")
        with np.load(entry / "rows.npz", allow_pickle=False) as arrays:
            a = {name: arrays[name] for name in arrays.files}
        live = {gen for gen, meta in files.values() if int(meta["chunks"])}
        if not (len(fields) == len(a["ids"]) == len(a["gens"]) == len(a["ords"]) == len(a["text_lengths"])
                == len(a["token_offsets"]) - 1 == len(a["term_offsets"]) - 1 == expected) \
                or int(a["text_lengths"].sum()) != len(texts) or set(a["gens"].tolist()) != live:
            raise ValueError("row counts differ")
        lexical = _load_lexical(entry / "bm25")
        term_lexical = _load_lexical(entry / "terms")
        if lexical.num_docs != expected or term_lexical.num_docs != expected:
            raise ValueError("BM25 covers other rows")
    except Exception:  # damaged or foreign: build afresh (and replace it)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    ends = np.cumsum(a["text_lengths"]).tolist()
    starts = [0] + ends[:-1]
    chunks = [Chunk(text=texts[b:e], **dict(zip(_CHUNK_FIELDS, values)))
              for b, e, values in zip(starts, ends, fields)]
    index = MilvusIndex(uri, version, settings, files, chunks, a["ids"].astype(np.int64), None,
                        lexical=lexical, term_lexical=term_lexical)

    def rows() -> dict[int, list[dict]]:
        """The engine rows per gen, as load_index keeps them, for a reload after a switch."""
        words, terms = _words(lexical), _words(term_lexical)
        tokens, token_offsets = a["tokens"].tolist(), a["token_offsets"].tolist()
        term_ids, term_offsets = a["terms"].tolist(), a["term_offsets"].tolist()
        out: dict[int, list[dict]] = {}
        for r, (chunk, gen, id_, ord_) in enumerate(zip(chunks, a["gens"].tolist(), a["ids"].tolist(),
                                                         a["ords"].tolist())):
            out.setdefault(gen, []).append(
                {"id": id_, "gen": gen, "ord": ord_, "_chunk": chunk,
                 "_terms": [terms[t] for t in term_ids[term_offsets[r]:term_offsets[r + 1]]],
                 "_tokens": [words[t] for t in tokens[token_offsets[r]:token_offsets[r + 1]]]})
        return out

    index._rows_source = rows
    return index


_cache: dict[str, MilvusIndex] = {}
_cache_lock = threading.Lock()


def open_index(uri, embed_model: str | None = None) -> MilvusIndex:
    """Like :func:`load_index`, cached per process until a writer switches a file."""
    uri = parse(uri)
    version = read_current(uri)
    if version is None:
        raise IndexNotFoundError(str(uri))
    key = str(uri)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is None or cached.version != version:
        cached = load_index(uri, previous=cached)
        with _cache_lock:
            _cache[key] = cached
    if embed_model and embed_model != cached.embed_model:
        raise EmbedderMismatchError(str(uri), cached.embed_model, embed_model)
    return cached


def read_previous(uri):
    """What an incremental ingest builds on: the file table and settings (no chunks or
    vectors: unchanged files stay in the engine as they are), and the known terms (their
    vectors too are in the engine: ``None`` here marks them as not to embed again)."""
    from .versions import PreviousVersion

    uri = parse(uri)
    settings, files = read_meta(uri)
    if settings is None:
        return None
    dim = int(settings["dim"])
    known = _query_all(uri, names(uri)["terms"], 'term != ""', ["term"])
    return PreviousVersion(_version(settings, files), _manifest(settings, files), [],
                           np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32),
                           np.zeros(1, np.int64), {row["term"]: None for row in known})


# --------------------------------------------------------------------------- the writer


def new_gen() -> int:
    """A generation: milliseconds since the epoch in the high bits (how old an orphan
    is), 16 random bits below (two writers in the same millisecond)."""
    return (int(time.time() * 1000) << 16) | secrets.randbits(16)


def gen_age_s(gen: int) -> float:
    return time.time() - (gen >> 16) / 1000.0


def _row_id(gen: int, *parts) -> int:
    digest = hashlib.blake2b(f"{gen}:{':'.join(map(str, parts))}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


class MilvusWriter:
    """The writing side used by ingest: one file at a time, each switched atomically."""

    def __init__(self, uri, embedder: dict, dim: int, chunker: dict, index_type: str = "auto",
                 rebuild: bool = False):
        self.uri = parse(uri)
        self.embedder = embedder
        self.dim = int(dim)
        self.chunker = chunker
        self.requested_type = index_type  # auto | flat | hnsw: what follow_index_type() applies
        self.index_type = "hnsw" if index_type == "hnsw" else "flat"  # at creation
        self.rebuild = rebuild

    def prepare(self) -> dict:
        """Create the collections (or drop and create them for a rebuild) and check that an
        existing index was built with this embedder, dimension and chunker. Nothing is
        written before these checks pass."""
        c = client(self.uri)
        if self.rebuild:
            for name in names(self.uri).values():
                if _call(self.uri, c.has_collection, name):
                    _call(self.uri, c.drop_collection, name)
                _loaded.discard((self.uri.client_uri, name))
        settings, _ = read_meta(self.uri)
        if settings is not None:
            check_compatible(self.uri, settings, self.embedder["name"], self.dim, self.chunker)
            return settings
        existing = [n for n in names(self.uri).values() if _call(self.uri, c.has_collection, n)]
        if existing and names(self.uri)["chunks"] in existing:
            described = _call(self.uri, c.describe_collection, names(self.uri)["chunks"])
            for field in described.get("fields", []):
                if field.get("name") == "vector" and int(field["params"]["dim"]) != self.dim:
                    raise EmbedderMismatchError(str(self.uri), f"(a {field['params']['dim']}-dimension embedder)",
                                                f"{self.embedder['name']} ({self.dim} dimensions)")
        _create_collections(self.uri, self.dim, self.index_type)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        settings = {"format": FORMAT, "embedder": self.embedder, "dim": self.dim, "chunker": self.chunker,
                    "index_type": self.index_type, "created_at": now, "updated_at": now}
        self._put_meta(SETTINGS_KEY, 0, settings)
        return settings

    def _put_meta(self, key: str, gen: int, value: dict) -> None:
        text = json.dumps(value, ensure_ascii=False)
        _call(self.uri, client(self.uri).upsert, names(self.uri)["meta"],
              [{"key": key, "gen": int(gen), "value": text, "vector": [0.0, 0.0]}])

    def _insert(self, part: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), INSERT_BATCH):
            _call(self.uri, client(self.uri).insert, names(self.uri)[part], rows[start:start + INSERT_BATCH])

    def add_terms(self, term_vectors: dict[str, np.ndarray]) -> int:
        """Store the vectors of terms the engine does not have yet (idempotent: upsert)."""
        rows = [{"term": t, "vector": np.asarray(v, dtype=np.float32).tolist()}
                for t, v in term_vectors.items() if v is not None and len(t.encode()) <= 1024]
        for start in range(0, len(rows), INSERT_BATCH):
            _call(self.uri, client(self.uri).upsert, names(self.uri)["terms"], rows[start:start + INSERT_BATCH])
        return len(rows)

    def write_file(self, path: str, meta: dict, chunks: list[Chunk], vectors: np.ndarray,
                   window_blocks: list[np.ndarray], chunk_terms: list[list[str]]) -> int:
        """Stage the file's chunks under a new gen, switch its meta row to it, delete the
        old gen's rows. Returns the new gen."""
        gen = new_gen()
        chunk_rows, window_rows = [], []
        for ord_, (chunk, vector, windows, terms) in enumerate(zip(chunks, vectors, window_blocks, chunk_terms)):
            chunk_id = _row_id(gen, ord_)
            text = json.dumps(chunk.to_dict(), ensure_ascii=False)
            terms_text = json.dumps(terms, ensure_ascii=False)
            if len(text.encode()) > MAX_TEXT or len(terms_text.encode()) > MAX_TEXT:
                raise InputError(f"{path}: a chunk of {len(text)} characters is over the engine's "
                                 f"{MAX_TEXT}-byte field: ingest with a smaller --chunk-size")
            chunk_rows.append({"id": chunk_id, "gen": gen, "ord": ord_, "chunk": text, "terms": terms_text,
                               "vector": np.asarray(vector, dtype=np.float32).tolist()})
            for j, window in enumerate(windows):
                window_rows.append({"id": _row_id(gen, ord_, "w", j), "gen": gen, "owner": chunk_id, "ord": j,
                                    "vector": np.asarray(window, dtype=np.float32).tolist()})
        self._insert("chunks", chunk_rows)
        self._insert("windows", window_rows)
        old = self._current_gen(path)
        self._put_meta(FILE_PREFIX + path, gen, dict(meta, chunks=len(chunks)))  # the switch
        if old is not None and old != gen:
            self._delete_gen(old)
        return gen

    def remove_file(self, path: str) -> None:
        old = self._current_gen(path)
        _call(self.uri, client(self.uri).delete, names(self.uri)["meta"],
              filter=f"key == {json.dumps(FILE_PREFIX + path, ensure_ascii=False)}")
        if old is not None:
            self._delete_gen(old)

    def _current_gen(self, path: str) -> int | None:
        found = _call(self.uri, client(self.uri).query, names(self.uri)["meta"],
                      filter=f"key == {json.dumps(FILE_PREFIX + path, ensure_ascii=False)}", output_fields=["gen"])
        return int(found[0]["gen"]) if found else None

    def _delete_gen(self, gen: int) -> None:
        for part in ("windows", "chunks"):
            _call(self.uri, client(self.uri).delete, names(self.uri)[part], filter=f"gen == {int(gen)}")

    def flush(self) -> None:
        """Seal what this ingest wrote into segments: Milvus Lite searches unflushed rows by
        brute force in Python (0.45 s against 0.08 s a query at 2k chunks); a server seals
        on its own, and one flush per ingest is what its documentation allows."""
        for name in names(self.uri).values():
            _call(self.uri, client(self.uri).flush, name)

    def _count(self, part: str, filter: str) -> int:
        found = _call(self.uri, client(self.uri).query, names(self.uri)[part], filter=filter,
                      output_fields=["count(*)"])
        return int(found[0]["count(*)"]) if found else 0

    def follow_index_type(self) -> dict[str, str]:
        """Give each vector collection the index FAISS would build for its live row count
        (``--index-type auto``: exact up to rag.vectors.HNSW_AUTO_THRESHOLD vectors, HNSW
        above; or the type asked for): chunks by live chunks, windows by live windows,
        terms by terms, as rag/store.py chooses per FAISS index. A collection whose type
        changes is released, its vector index dropped and built again, and loaded: searches
        of that collection fail for the few seconds (Milvus Lite) to minutes (a large cluster
        collection) this takes, once, when the index crosses the threshold."""
        from .vectors import choose_index_type

        c = client(self.uri)
        settings, files = read_meta(self.uri)
        if settings is None:
            return {}
        live = sorted({gen for gen, meta in files.values() if int(meta.get("chunks", 0))})
        counts = {"chunks": sum(int(meta.get("chunks", 0)) for _, meta in files.values()),
                  "windows": self._count("windows", f"gen in {live}") if live else 0,
                  "terms": self._count("terms", 'term != ""')}
        chosen = {}
        for part, count in counts.items():
            name = names(self.uri)[part]
            want = choose_index_type(count, self.requested_type)
            have = str(_call(self.uri, c.describe_index, name, "vector").get("index_type", "")).lower()
            if have != want:
                _call(self.uri, c.release_collection, name)
                _call(self.uri, c.drop_index, name, "vector")
                params = c.prepare_index_params()
                params.add_index("vector", **_vector_index(want))
                _call(self.uri, c.create_index, name, params)
                _call(self.uri, c.load_collection, name)
            chosen[part] = want
        if settings.get("index_type") != chosen["chunks"] or settings.get("index_types") != chosen:
            self._put_meta(SETTINGS_KEY, 0, dict(settings, index_type=chosen["chunks"], index_types=chosen))
        return chosen

    def touch(self) -> None:
        settings, _ = read_meta(self.uri)
        if settings is not None:
            settings["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self._put_meta(SETTINGS_KEY, 0, settings)

    def collect_garbage(self, min_age_s: float = ORPHAN_AGE_S) -> int:
        """Delete chunk and window rows of gens no file points to and older than
        ``min_age_s`` (left by an ingest that died before its switch)."""
        _, files = read_meta(self.uri)
        live = {gen for gen, _ in files.values()}
        rows = _query_all(self.uri, names(self.uri)["chunks"], f"gen not in {sorted(live)}" if live else "gen >= 0",
                          ["gen"])
        orphans = sorted({int(r["gen"]) for r in rows if gen_age_s(int(r["gen"])) >= min_age_s})
        for gen in orphans:
            self._delete_gen(gen)
        return len(orphans)


def check_compatible(uri: MilvusURI, settings: dict, embed_model: str, dim: int, chunker: dict) -> None:
    built_with = settings["embedder"]["name"]
    if built_with != embed_model:
        raise EmbedderMismatchError(str(uri), built_with, embed_model)
    if int(settings["dim"]) != int(dim):
        raise EmbedderMismatchError(str(uri), f"{built_with} ({settings['dim']} dimensions)",
                                    f"{embed_model} ({dim} dimensions)")
    if settings["chunker"] != chunker:
        raise InputError(
            f"index at {uri} was chunked with {_describe(settings['chunker'])}, not {_describe(chunker)}: "
            f"ingest with the same --chunk-size/--chunk-overlap/--window-chars, or rebuild it with --rebuild "
            f"(a shared collection keeps one chunking for every writer)")


def _describe(chunker: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(chunker.items()))


def release(uri) -> None:
    """Drop this process's client (and the Milvus Lite server behind it), so that another
    process can open the file."""
    uri = parse(uri)
    token = "" if uri.is_lite else _token()
    with _clients_lock:
        found = _clients.pop((uri.client_uri, token), None)
    with _cache_lock:
        _cache.pop(str(uri), None)
    for name in names(uri).values():
        _loaded.discard((uri.client_uri, name))
    if found is not None:
        try:
            found.close()
        except Exception:
            pass
    if uri.is_lite:
        try:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri.target)
        except Exception:
            pass


def iter_files(uri) -> Iterable[str]:
    _, files = read_meta(parse(uri))
    return sorted(files)
