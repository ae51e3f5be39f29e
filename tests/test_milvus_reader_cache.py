"""The Milvus reader cache (rag/milvus_store.py, "reader cache"): a reader's second open
reads the built snapshot (chunks, BM25 over words and over terms) from local disk instead
of fetching every chunk and rebuilding; the cache is keyed by the version read from the
engine at each open, so a reader never uses it after another writer changed the collection.

The engine is a Milvus Lite server in a subprocess (as several hosts share a cluster), the
other writer a `rag ingest` in its own process. Documents are small, the embedder ``hash``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rag import milvus_store
from rag.ingest.pipeline import ingest
from rag.retrieval import search
from rag.settings import RetrievalSettings
from test_store_contract import DOCS, QUESTIONS, milvus_only, milvus_server, write_docs  # noqa: F401

pytestmark = milvus_only


@pytest.fixture
def engine_reads(monkeypatch):
    """The filters of every chunk fetch this process makes (a warm open makes none)."""
    seen: list[str] = []
    query_all = milvus_store._query_all

    def recording(uri, collection, filter, fields):
        if collection.endswith("_chunks") and "chunk" in fields:
            seen.append(filter)
        return query_all(uri, collection, filter, fields)

    monkeypatch.setattr(milvus_store, "_query_all", recording)
    return seen


def same_retrieval(a, b) -> None:
    settings = RetrievalSettings(k=4)
    for question in QUESTIONS:
        x, y = search(a, question, settings), search(b, question, settings)
        assert [(s.chunk_id, round(s.score, 5)) for s in x.sources] == \
               [(s.chunk_id, round(s.score, 5)) for s in y.sources], question


def test_second_open_reads_the_cache_and_a_switch_by_another_process_is_never_missed(
        milvus_server, tmp_path, monkeypatch, engine_reads):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    uri = milvus_store.parse(f"milvus://{milvus_server}#reader_cache")
    docs = write_docs(tmp_path / "docs", DOCS)
    ingest([docs], uri, embed_model="hash", progress=False)

    cold = milvus_store.load_index(uri)
    assert len(engine_reads) == 1  # every live chunk fetched, BM25 built, the snapshot cached
    entry = milvus_store._cache_entry(uri, cold.version)
    assert entry.is_dir() and entry.parent == tmp_path / "cache" / "milvus" / milvus_server.replace(":", "_") \
        / "reader_cache"

    warm = milvus_store.load_index(uri)
    assert len(engine_reads) == 1  # no chunk fetched again
    assert warm.version == cold.version and warm.chunks == cold.chunks and list(warm.ids) == list(cold.ids)
    assert warm.lexical.vocab == cold.lexical.vocab and warm.terms.token_of == cold.terms.token_of
    same_retrieval(cold, warm)

    # Another process changes one file and deletes another (a writer on another host).
    (docs / "italy.txt").write_text("Rome is the capital of Italy. Trastevere is a district by the river.",
                                    encoding="utf-8")
    (docs / "china.txt").unlink()
    writer = subprocess.run([sys.executable, "-c", "from rag.cli import main; main()", "ingest", str(docs),
                             "--index", str(uri), "--embed-model", "hash"], capture_output=True, text=True,
                            timeout=300)
    assert writer.returncode == 0, writer.stderr

    # This reader's next open sees the new version: it fetches only the switched file's
    # generation (the rows of the cached snapshot are reused) and never the old snapshot.
    reloaded = milvus_store.load_index(uri, previous=warm)
    assert reloaded.version != warm.version
    texts = " ".join(c.text for c in reloaded.chunks)
    assert "Trastevere" in texts and "Colosseum" not in texts and "故宫" not in texts
    assert len(engine_reads) == 2 and engine_reads[-1].count(",") == 0  # one gen: italy.txt's new one
    top = search(reloaded, "Which district lies by the river?", RetrievalSettings(k=1)).sources[0]
    assert "Trastevere" in top.text
    assert reloaded.lexical.scores("colosseum").max() == 0 and reloaded.lexical.scores("trastevere").max() > 0

    # The new version is cached too, and a fresh reader built from scratch agrees with it.
    again = milvus_store.load_index(uri)
    assert len(engine_reads) == 2 and again.chunks == reloaded.chunks
    milvus_store._cache_entry(uri, again.version).rename(tmp_path / "moved-away")
    scratch = milvus_store.load_index(uri)
    assert len(engine_reads) == 3
    same_retrieval(scratch, again)
    milvus_store.release(uri)


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, engine_reads):
    docs = write_docs(tmp_path / "docs", DOCS)
    uri = milvus_store.parse(f"milvus://{tmp_path}/index.db")
    try:
        ingest([docs], uri, embed_model="hash", progress=False)
        cold = milvus_store.load_index(uri)
        entry = milvus_store._cache_entry(uri, cold.version)
        assert entry.parent == tmp_path / "index.db.rag-cache" / "default"  # beside the Milvus Lite file
        rows = entry / "rows.npz"
        rows.write_bytes(rows.read_bytes()[:100])  # a disk that filled up mid-write, say

        rebuilt = milvus_store.load_index(uri)
        assert len(engine_reads) == 2 and rebuilt.chunks == cold.chunks
        same_retrieval(cold, rebuilt)
        assert np.load(rows).files  # replaced by a whole entry
        assert milvus_store.load_index(uri).chunks == cold.chunks and len(engine_reads) == 2
    finally:
        milvus_store.release(uri)
