"""Ingest into a Milvus index (rag/milvus_store.py): the same run as FAISS, with the
publish step writing file by file instead of a whole new version.

Unchanged files are not read back or rewritten: their chunks stay in the engine. Each
new or changed file is written under a fresh generation and switched in with one meta
upsert, then its old rows are deleted (rag.milvus_store.MilvusWriter.write_file); files
gone from a walked folder have their meta row and rows deleted. Several ingests may
write one collection at once (different folders): there is no index-wide lock, each
file's switch is its own.
"""

from __future__ import annotations

import time

from rag import milvus_store
from rag.terms import extract_terms

from .run import IngestRun, IngestSummary


class MilvusIngestRun(IngestRun):
    def __init__(self, uri, settings, **kwargs):
        super().__init__(milvus_store.parse(uri), settings, **kwargs)
        if self.previous is None and not kwargs.get("rebuild"):
            previous = milvus_store.read_previous(self.index_path)
            if previous is not None:  # another chunking: the base class dropped it (FAISS re-chunks all)
                milvus_store.check_compatible(self.index_path, previous.manifest | {"dim": previous.dim},
                                              self.model_name, previous.dim, settings.describe())
        self.rebuild = bool(kwargs.get("rebuild"))

    def _keep_previous(self, key: str) -> None:
        # the file's rows stay in the engine as they are
        self.files_meta[key] = self.old_files[key]

    def publish(self) -> IngestSummary:
        summary = self.summary
        changed = summary.added + summary.changed + summary.removed
        removed = [key for key in self.old_files if key not in self.files_meta]
        if self.previous is None and not self.kept:
            pass  # a first ingest where every file failed: nothing is created
        elif self.previous is not None and changed == 0:
            summary.version = self.previous.version
            summary.index_type = self.previous.manifest.get("index_type", "")
        else:
            embed_started = time.perf_counter()
            vectors, window_blocks = self._collect_vectors()
            summary.embed_seconds = time.perf_counter() - embed_started
            dim = vectors.shape[1] if len(vectors) else self._dim()
            embedder = self.embedder.describe() if self.embedder else self.previous.manifest["embedder"]
            writer = milvus_store.MilvusWriter(self.index_path, embedder, dim, self.settings.describe(),
                                               self.index_type, rebuild=self.rebuild)
            writer.prepare()  # checks embedder, dimension and chunker before anything is written
            writer.add_terms({t: v for t, v in self.term_vectors.items() if v is not None})
            by_file: dict[str, list[int]] = {}
            for row, (chunk, _) in enumerate(self.kept):
                by_file.setdefault(chunk.path, []).append(row)
            for key, rows in by_file.items():
                chunks = [self.kept[r][0] for r in rows]
                terms = [self.terms_of[r] if r in self.terms_of else extract_terms(c.embedding_text())
                         for r, c in zip(rows, chunks)]
                writer.write_file(key, self.files_meta[key], chunks, vectors[rows],
                                  [window_blocks[r] for r in rows], terms)
            for key in removed:
                writer.remove_file(key)
            writer.collect_garbage()
            writer.touch()
            writer.flush()
            writer.follow_index_type()  # after the flush: an index is built over sealed segments
            summary.version = milvus_store.read_current(self.index_path) or ""
            summary.index_type = milvus_store.read_manifest(self.index_path)["index_type"]

        summary.files = len(self.files_meta)
        summary.pages = sum(m.get("pages", 0) for m in self.files_meta.values())
        summary.chunks = sum(int(m.get("chunks", 0)) for m in self.files_meta.values())
        summary.seconds = time.perf_counter() - self.started
        summary.chunks_per_s = summary.chunks_embedded / summary.seconds if summary.seconds else 0.0
        return summary

    def _dim(self) -> int:
        if self.embedder is not None:
            return self.embedder.dim
        return self.previous.dim if self.previous is not None else 0
