"""``--index-type`` on Milvus follows the collection's size as it does on FAISS: exact (FLAT)
up to rag.vectors.HNSW_AUTO_THRESHOLD vectors, HNSW above, chosen again at each ingest that
changes the index (the engine's vector index is dropped and built again when the type
changes). The threshold is lowered here so that a few small documents cross it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import milvus_store, vectors
from rag.ingest.pipeline import ingest
from rag.retrieval import search
from rag.settings import RetrievalSettings
from rag.store import open_index, read_manifest
from test_store_contract import DOCS, QUESTIONS, milvus_only, write_docs

pytestmark = milvus_only


def engine_index_types(uri: str) -> dict[str, str]:
    c = milvus_store.client(milvus_store.parse(uri))
    return {part: c.describe_index(name, "vector")["index_type"]
            for part, name in milvus_store.names(milvus_store.parse(uri)).items() if part != "meta"}


def test_auto_index_type_follows_the_collection_size_like_faiss(tmp_path, monkeypatch):
    docs = write_docs(tmp_path / "docs", DOCS)
    uri, folder = f"milvus://{tmp_path}/index.db", tmp_path / "faiss"
    try:
        ingest([docs], uri, embed_model="hash", progress=False)
        assert read_manifest(uri)["index_type"] == "milvus-flat"
        assert set(engine_index_types(uri).values()) == {"FLAT"}

        # The collection grows past the threshold: the next ingest builds HNSW, as FAISS does.
        monkeypatch.setattr(vectors, "HNSW_AUTO_THRESHOLD", 4)
        (docs / "spain.txt").write_text("Madrid is the capital of Spain. The Prado holds Velazquez.",
                                        encoding="utf-8")
        grown = ingest([docs], uri, embed_model="hash", progress=False)
        ingest([docs], folder, embed_model="hash", progress=False)
        assert grown.index_type == "milvus-hnsw" and read_manifest(folder)["index_type"] == "hnsw"
        types = engine_index_types(uri)
        assert types["chunks"] == "HNSW" and types["terms"] == "HNSW"  # 5 chunks, dozens of terms
        assert types["windows"] == "FLAT"  # these short files have no sentence windows: 0 rows
        settings = RetrievalSettings(k=3)
        faiss_index, milvus_index = open_index(folder), open_index(uri)
        for question in QUESTIONS + ["What is the capital of Spain?"]:
            a, b = search(faiss_index, question, settings), search(milvus_index, question, settings)
            assert [s.chunk_id for s in a.sources] == [s.chunk_id for s in b.sources], question

        # Below the threshold again (files deleted): back to exact search.
        for name in ("spain.txt", "china.txt", "italy.txt"):
            (docs / name).unlink()
        shrunk = ingest([docs], uri, embed_model="hash", progress=False)
        assert shrunk.index_type == "milvus-flat" and engine_index_types(uri)["chunks"] == "FLAT"
        assert [Path(c.path).name for c in open_index(uri).chunks] == ["france.txt", "training.md"]

        # An explicit type wins over the size, on a later ingest too.
        (docs / "italy.txt").write_text("Rome is the capital of Italy.", encoding="utf-8")
        forced = ingest([docs], uri, embed_model="hash", progress=False, index_type="hnsw")
        assert forced.index_type == "milvus-hnsw" and engine_index_types(uri)["chunks"] == "HNSW"
    finally:
        milvus_store.release(uri)
