"""Shared fixtures. Tests use the real components: the real embedder, real FAISS,
real PDFs. Loading the embedder takes ~8 s and embedding the corpus ~20 s, so the
expensive things are built once per test session and shared.

Corpus fixtures (session scope; they skip the test when ``../shared`` is absent):

``shared_dir``
    ``../shared`` beside the repository (``Path(__file__).resolve().parents[1].parent / "shared"``).
``corpus_dir``
    ``../shared/corpus``, with ``pdf/`` and ``txt/`` holding the same five documents
    (000 Korean, 001 English+Italian, 002 English code, 003 Chinese, 004 English).
``corpus_pdf_index``
    A :class:`CorpusIndex` of ``../shared/corpus/pdf`` ingested with the default
    embedder (use-multilingual) into a temporary folder::

        def test_something(corpus_pdf_index):
            index = corpus_pdf_index.load()            # rag.store.Index, loaded once
            chinese = corpus_pdf_index.chunks("003")  # chunks whose file name starts with 003
            answer = ask(question, index=corpus_pdf_index.path)
            load_index(corpus_pdf_index)              # it is os.PathLike too

    ``.summary`` is the IngestSummary of that ingest, ``.docs`` the folder ingested.
``corpus_txt_index``
    The same for ``../shared/corpus/txt``.

Both corpus indexes are shared by every test of the session: treat them as
read-only. To ingest into one, take a copy first with ``index_copy``.

Other fixtures:

``embedder``
    The real default embedder, loaded once (``rag.embedders.get_embedder`` caches it,
    so ingest and retrieval in the same process reuse it).
``index_copy``
    ``index_copy(corpus_pdf_index)`` -> Path of a writable copy of an index in
    ``tmp_path`` (chunk paths still point at the original documents).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

SHARED_DIR = REPO_ROOT.parent / "shared"
DEFAULT_EMBED_MODEL = "use-multilingual"


@dataclass
class CorpusIndex:
    """An index built by a session fixture: where it is, what went in, and how it went."""

    path: Path
    docs: Path
    summary: object  # ingest.pipeline.IngestSummary
    _index: object = field(default=None, repr=False)

    def __fspath__(self) -> str:
        return str(self.path)

    def load(self):
        """The loaded ``rag.store.Index`` (loaded once, shared: do not modify it)."""
        if self._index is None:
            from rag.store import load_index

            self._index = load_index(self.path)
        return self._index

    def chunks(self, source_prefix: str = "") -> list:
        """Chunks, in index order, of the documents whose file name starts with ``source_prefix``."""
        return [c for c in self.load().chunks if c.source.startswith(source_prefix)]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared material not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture(scope="session")
def corpus_dir(shared_dir: Path) -> Path:
    corpus = shared_dir / "corpus"
    if not (corpus / "pdf").is_dir() or not (corpus / "txt").is_dir():
        pytest.skip(f"shared corpus not found at {corpus}")
    return corpus


@pytest.fixture(scope="session")
def embedder():
    from rag.embedders import get_embedder

    return get_embedder(DEFAULT_EMBED_MODEL)


def _ingest_corpus(docs: Path, index_dir: Path) -> CorpusIndex:
    from rag.ingest.pipeline import ingest

    summary = ingest([docs], index_dir, embed_model=DEFAULT_EMBED_MODEL, progress=False)
    assert summary.ok, [r.line() for r in summary.reports if r.status == "failed"]
    return CorpusIndex(path=index_dir, docs=docs, summary=summary)


@pytest.fixture(scope="session")
def corpus_pdf_index(corpus_dir: Path, embedder, tmp_path_factory) -> CorpusIndex:
    """The shared corpus PDFs, ingested once per session (read-only: copy it with index_copy to change it)."""
    return _ingest_corpus(corpus_dir / "pdf", tmp_path_factory.mktemp("corpus_pdf_index") / "index")


@pytest.fixture(scope="session")
def corpus_txt_index(corpus_dir: Path, embedder, tmp_path_factory) -> CorpusIndex:
    """The shared corpus text files, ingested once per session (read-only: copy it with index_copy to change it)."""
    return _ingest_corpus(corpus_dir / "txt", tmp_path_factory.mktemp("corpus_txt_index") / "index")


@pytest.fixture
def index_copy(tmp_path: Path):
    """Factory: a writable copy of an index folder (or CorpusIndex) under tmp_path."""
    counter = iter(range(1_000_000))

    def copy(index: os.PathLike | str) -> Path:
        target = tmp_path / f"index-copy-{next(counter)}"
        shutil.copytree(os.fspath(index), target, ignore=shutil.ignore_patterns(".lock"))
        return target

    return copy
