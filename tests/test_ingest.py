"""Ingest: ``ingest(paths, index)`` turns folders of documents into a versioned index,
re-embeds only what changed, reports every file it could not use, and never leaves
a broken index behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers_pdf import make_encrypted_pdf, make_image_only_pdf, make_pdf, make_truncated_pdf
from helpers_process import wait_until
from pypdf import PdfReader

from rag.ingest.chunking import sha256
from rag.ingest.cleaning import clean_text
from rag.ingest.loaders import load_document
from rag.ingest.pipeline import IngestSummary, ingest
from rag.retrieval import search
from rag.terms import extract_terms
from rag.errors import EmbedderMismatchError
from rag.store import load_index, open_index, read_current

REPO_ROOT = Path(__file__).resolve().parents[1]
KOREAN = "불균형한 레이블 데이터 세트에서 정확도를 성능 평가 수치로 사용하면 안된다. 정밀도와 재현율을 함께 봐야 한다."
CHINESE = "对企业而言,大模型应用需要综合考虑专业性、数据安全、持续迭代和综合成本等多种因素。"


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def versions(index: Path) -> list[str]:
    return sorted(p.name for p in Path(index).iterdir() if p.name.startswith("v-"))


def leftovers(index: Path) -> list[str]:
    """What an interrupted ingest leaves: a half-written version or pointer."""
    return sorted(p.name for p in Path(index).iterdir() if p.name.startswith((".staging-", ".CURRENT.")))


def report_of(summary: IngestSummary, name: str):
    [report] = [r for r in summary.reports if Path(r.path).name == name]
    return report


def document_text(path: str) -> str:
    """The cleaned text that chunk offsets point into: pages joined by a blank line."""
    return "\n\n".join(record.text for record in load_document(path))


# --- the corpus PDFs: pages, metadata, ids ---------------------------------------------------------


def test_every_corpus_pdf_goes_in_with_all_its_pages(corpus_pdf_index):
    summary = corpus_pdf_index.summary
    pdfs = sorted(corpus_pdf_index.docs.glob("*.pdf"))
    assert (summary.added, summary.failed, summary.files) == (len(pdfs), 0, len(pdfs))
    assert summary.pages == sum(len(PdfReader(p).pages) for p in pdfs)
    assert summary.chunks == len(corpus_pdf_index.load()) == summary.chunks_embedded


def test_chunks_carry_the_page_they_were_found_on(corpus_pdf_index):
    """A piece of every chunk is in the text pypdf extracts from exactly that page."""
    pages: dict[tuple[str, int], str] = {}
    for chunk in corpus_pdf_index.chunks():
        key = (chunk.path, chunk.page)
        if key not in pages:
            raw = PdfReader(chunk.path).pages[chunk.page - 1].extract_text()
            pages[key] = squash(clean_text(raw, from_pdf=True))
        text = squash(chunk.text)
        middle = len(text) // 2
        piece = text[max(0, middle - 15):middle + 15]
        assert piece in pages[key], f"{chunk.source} p. {chunk.page}: {piece!r} is not on that page"


def test_pages_run_from_one_to_the_last_page_of_each_pdf(corpus_pdf_index):
    for pdf in sorted(corpus_pdf_index.docs.glob("*.pdf")):
        pages = {c.page for c in corpus_pdf_index.chunks(pdf.name)}
        assert pages == set(range(1, len(PdfReader(pdf).pages) + 1)), pdf.name


def test_chunk_metadata_says_where_the_chunk_comes_from(corpus_pdf_index):
    texts: dict[str, str] = {}
    for chunk in corpus_pdf_index.chunks():
        path = Path(chunk.path)
        assert path.is_absolute() and path.parent == corpus_pdf_index.docs.resolve()
        assert chunk.source == path.name
        assert chunk.file_hash == sha256(path.read_bytes())
        assert chunk.content_hash == sha256(chunk.text)[:16]
        if chunk.path not in texts:
            texts[chunk.path] = document_text(chunk.path)
        # start/end are offsets in the document's cleaned text
        assert texts[chunk.path][chunk.start:chunk.end] == chunk.text, (chunk.source, chunk.page, chunk.start)


def test_chunk_ids_are_unique(corpus_pdf_index, corpus_txt_index):
    for corpus in (corpus_pdf_index, corpus_txt_index):
        ids = Counter(c.id for c in corpus.chunks())
        assert [i for i, n in ids.items() if n > 1] == []


@pytest.mark.parametrize("prefix, lang, share", [("000", "ko", 0.8), ("003", "zh", 0.9), ("004", "en", 0.9)])
def test_chunks_know_their_language(corpus_pdf_index, prefix, lang, share):
    langs = [c.lang for c in corpus_pdf_index.chunks(prefix)]
    assert langs.count(lang) / len(langs) >= share, Counter(langs)


def test_text_files_have_no_pages_and_offsets_into_the_whole_file(corpus_txt_index):
    chunks = corpus_txt_index.chunks()
    assert corpus_txt_index.summary.files == 5 and corpus_txt_index.summary.pages == 0
    assert {c.page for c in chunks} == {None}
    texts = {path: document_text(path) for path in {c.path for c in chunks}}
    for chunk in chunks:
        assert texts[chunk.path][chunk.start:chunk.end] == chunk.text


def test_chunk_ids_are_stable_across_a_rebuild(corpus_pdf_index, index_copy):
    chinese_pdf = corpus_pdf_index.docs / "003_53679c8f7bc64ce6.pdf"
    before = [(c.id, c.page, c.start, c.text) for c in corpus_pdf_index.chunks("003")]
    old = corpus_pdf_index.load()
    old_vectors = np.array([old.vectors[i] for i, c in enumerate(old.chunks) if c.source.startswith("003")])

    index = index_copy(corpus_pdf_index)
    summary = ingest([chinese_pdf], index, rebuild=True, progress=False)

    assert (summary.added, summary.files, summary.chunks_embedded) == (1, 1, len(before))
    rebuilt = load_index(index)
    assert [(c.id, c.page, c.start, c.text) for c in rebuilt.chunks] == before
    assert np.allclose(np.asarray(rebuilt.vectors), old_vectors, atol=1e-5)


# --- incremental ingest ------------------------------------------------------------------------------

SMALL_CORPUS = ["000_bf1f6216752f7de1.txt", "003_53679c8f7bc64ce6.txt", "004_7fdd1fabdabed2dd.txt"]


def copy_excerpt(source: Path, target: Path, chars: int = 4000) -> Path:
    """The first paragraphs (about ``chars`` characters) of a corpus file: quick to embed."""
    text = source.read_text(encoding="utf-8")
    cut = text.find("\n\n", chars)
    target.write_text(text if cut < 0 else text[:cut] + "\n", encoding="utf-8")
    return target


@dataclass
class Library:
    docs: Path  # a folder of documents (excerpts of three corpus text files)
    index: Path  # an index of exactly those documents


@pytest.fixture(scope="module")
def _small_corpus(corpus_dir, embedder, tmp_path_factory):
    """Excerpts of three corpus text files (ko, zh, en) in a temporary folder, ingested
    once for this module."""
    root = tmp_path_factory.mktemp("small_corpus").resolve()
    pristine = root / "pristine"
    pristine.mkdir()
    for name in SMALL_CORPUS:
        copy_excerpt(corpus_dir / "txt" / name, pristine / name)
    docs = root / "docs"
    shutil.copytree(pristine, docs)
    summary = ingest([docs], root / "index", progress=False)
    assert summary.added == 3 and summary.ok
    return pristine, docs, root / "index"


@pytest.fixture
def library(_small_corpus, tmp_path) -> Library:
    """A fresh, writable Library for one test, without embedding anything again:
    the documents are restored in place (same paths, same bytes) and the index copied."""
    pristine, docs, index = _small_corpus
    shutil.rmtree(docs)
    shutil.copytree(pristine, docs)
    copy = tmp_path / "index"
    shutil.copytree(index, copy, ignore=shutil.ignore_patterns(".lock"))
    return Library(docs, copy)


def test_unchanged_folder_is_not_embedded_again(library):
    live = read_current(library.index)

    summary = ingest([library.docs], library.index, progress=False)

    assert (summary.unchanged, summary.added, summary.changed, summary.removed) == (3, 0, 0, 0)
    assert summary.chunks_embedded == 0
    assert {r.status for r in summary.reports} == {"unchanged"}
    assert summary.version == live
    assert read_current(library.index) == live and versions(library.index) == [live]  # no new version


def test_editing_one_file_embeds_only_that_file(library):
    old = load_index(library.index)
    old_vectors = {c.id: np.array(old.vectors[i]) for i, c in enumerate(old.chunks)}
    edited = library.docs / "004_7fdd1fabdabed2dd.txt"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\nAddendum: we also compared Mistral 7B.\n",
                      encoding="utf-8")

    summary = ingest([library.docs], library.index, progress=False)

    # Only the addendum's new words are embedded as terms; the others keep their vectors.
    old_terms, new_terms = old.terms.known_vectors(), load_index(library.index).terms.known_vectors()
    added = set(extract_terms("Addendum: we also compared Mistral 7B.")) - set(old_terms)
    assert "mistral" in added and summary.terms_embedded == len(added)
    assert set(new_terms) == set(old_terms) | added
    assert all(np.array_equal(new_terms[t], old_terms[t]) for t in old_terms)

    assert (summary.changed, summary.unchanged, summary.added, summary.removed) == (1, 2, 0, 0)
    report = report_of(summary, edited.name)
    assert report.status == "changed"
    new = load_index(library.index)
    edited_chunks = [c for c in new.chunks if c.path == str(edited)]
    assert summary.chunks_embedded == report.chunks == len(edited_chunks)
    assert any("Mistral 7B" in c.text for c in edited_chunks)
    # The other two files keep their chunks and vectors as they were.
    for i, chunk in enumerate(new.chunks):
        if chunk.path != str(edited):
            assert np.array_equal(new.vectors[i], old_vectors[chunk.id])
    assert len(new) == len(old) - sum(1 for c in old.chunks if c.path == str(edited)) + len(edited_chunks)
    assert summary.version != old.version
    assert versions(library.index) == [summary.version] == [read_current(library.index)]


def test_deleting_a_file_removes_its_chunks(library):
    deleted = library.docs / "003_53679c8f7bc64ce6.txt"
    assert "企业" in load_index(library.index).terms.vocab
    deleted.unlink()

    summary = ingest([library.docs], library.index, progress=False)

    assert (summary.removed, summary.unchanged, summary.files, summary.chunks_embedded) == (1, 2, 2, 0)
    assert summary.terms_embedded == 0
    assert report_of(summary, deleted.name).status == "removed"
    index = load_index(library.index)
    assert not [c for c in index.chunks if c.path == str(deleted)]
    # the Chinese report's words left with it
    assert "企业" not in index.terms.vocab and index.terms.lexical.num_docs == len(index)


def test_an_index_written_before_term_expansion_still_answers_and_gains_terms(library):
    live = library.index / read_current(library.index)
    shutil.rmtree(live / "terms")  # as written by a version of the tool without term expansion
    old = load_index(library.index)
    assert old.terms is None
    sources = search(old, "Which platforms are mentioned for building chatbots?").sources
    assert sources and all(s.dense_score is not None for s in sources)

    edited = library.docs / "004_7fdd1fabdabed2dd.txt"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\nAddendum.\n", encoding="utf-8")
    summary = ingest([library.docs], library.index, progress=False)

    new = load_index(library.index)
    assert summary.ok and summary.changed == 1 and new.terms is not None
    # the unchanged files' words were embedded too, not only the edited file's
    assert "企业" in new.terms.vocab and new.terms.lexical.num_docs == len(new)


def test_prune_missing_false_keeps_the_chunks_of_deleted_files(library):
    before = len(load_index(library.index))
    deleted = library.docs / "003_53679c8f7bc64ce6.txt"
    deleted.unlink()

    summary = ingest([library.docs], library.index, prune_missing=False, progress=False)

    assert (summary.removed, summary.files, summary.chunks) == (0, 3, before)
    assert [c for c in load_index(library.index).chunks if c.path == str(deleted)]


# --- an ingest killed half-way ---------------------------------------------------------------------

# `python -c INGEST_SCRIPT DOCS INDEX`: a plain ingest, except that it stops for two
# minutes inside rag.store.write_version, once the new version's chunks and vectors
# are in its .staging-* folder and before it goes live, so that the test can kill it
# at the most delicate moment (the pause only holds the window open; nothing is faked).
INGEST_SCRIPT = """
import sys, time
import rag.store
from rag.ingest.pipeline import ingest

build_faiss = rag.store.build_faiss
def paused_build_faiss(*args, **kwargs):
    time.sleep(120)
    return build_faiss(*args, **kwargs)
rag.store.build_faiss = paused_build_faiss

ingest([sys.argv[1]], sys.argv[2], progress=False, on_file=lambda r: print(r.line(), flush=True))
"""


def test_killed_ingest_leaves_the_previous_index_usable(library, corpus_dir, tmp_path):
    before = load_index(library.index)
    more = library.docs / "more"  # a new document to embed
    more.mkdir()
    copy_excerpt(corpus_dir / "txt" / "001_98bb240bcb89f4f6.txt", more / "001_98bb240bcb89f4f6.txt")
    log = tmp_path / "ingest.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, str(library.docs), str(library.index)],
                                cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: any((p / "vectors.npy").exists() for p in library.index.glob(".staging-*")), proc, log,
                   "the ingest wrote its staged vectors")
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 while the new version is half written
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert leftovers(library.index), "the kill should have left a half-written version behind"

    after = load_index(library.index)
    assert (after.version, len(after)) == (before.version, len(before))
    assert [c.id for c in after.chunks] == [c.id for c in before.chunks]

    summary = ingest([library.docs], library.index, progress=False)

    assert summary.ok and (summary.added, summary.unchanged) == (1, 3)
    assert leftovers(library.index) == []
    assert versions(library.index) == [summary.version] == [read_current(library.index)]
    assert len(load_index(library.index)) == summary.chunks > len(before)


# --- another embedding model --------------------------------------------------------------------------


def test_opening_an_index_with_another_embedding_model_is_refused(library):
    with pytest.raises(EmbedderMismatchError) as caught:
        load_index(library.index, embed_model="minilm")
    assert (caught.value.index_model, caught.value.requested_model) == ("use-multilingual", "minilm")
    assert "--rebuild" in str(caught.value)  # the message says how to fix it
    with pytest.raises(EmbedderMismatchError):
        open_index(library.index, embed_model="minilm")
    assert len(load_index(library.index, embed_model="use-multilingual")) > 0


def test_ingesting_with_another_embedding_model_is_refused_and_changes_nothing(library):
    before = load_index(library.index)
    (library.docs / "new.txt").write_text("A new note that must not go in with another model.", encoding="utf-8")

    with pytest.raises(EmbedderMismatchError):
        ingest([library.docs], library.index, embed_model="minilm", progress=False)

    after = load_index(library.index)
    assert (after.version, len(after), after.embed_model) == (before.version, len(before), "use-multilingual")
    assert versions(library.index) == [before.version] and leftovers(library.index) == []
    # The lock was released: the same index takes an ingest with its own model.
    assert ingest([library.docs], library.index, progress=False).added == 1


# --- bad input: reported file by file, never fatal, never destructive ----------------------------------

MANUAL_MD = """# Intro
This manual explains the retrieval tool.

## Setup
Install the package with pip and download the models once.

## Usage
Ask a question; the answer cites its sources.

# Reference
Every option of the command line.
"""


@dataclass
class Messy:
    docs: Path
    index: Path
    first: IngestSummary  # two good documents
    before: object  # the index after the first ingest (rag.store.Index)
    second: IngestSummary  # bad files added, one good file corrupted, a missing path given


@pytest.fixture(scope="module")
def messy(embedder, tmp_path_factory) -> Messy:
    """A folder ingested twice: first with two good documents; then with bad files and
    more good ones beside them, the good PDF truncated since, and a path that does not exist."""
    root = tmp_path_factory.mktemp("messy").resolve()
    docs, index = root / "docs", root / "index"
    docs.mkdir()
    make_pdf(docs / "handbook.pdf", [
        "Chapter 1. The retrieval tool indexes PDF and text files and answers questions about them.",
        "Chapter 2. Every answer cites the file and page that support it.",
    ])
    (docs / "faq.txt").write_text("Q: Which formats are supported? A: PDF, text, markdown, HTML, notebooks.\n",
                                  encoding="utf-8")
    first = ingest([docs], index, progress=False)
    before = load_index(index)

    make_encrypted_pdf(docs / "locked.pdf", ["Quarterly figures, confidential."])
    make_truncated_pdf(docs / "cut.pdf")
    make_image_only_pdf(docs / "scan.pdf")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "data.txt").write_bytes(bytes(range(256)) * 16)
    (docs / "slides.pptx").write_bytes(b"PK\x03\x04 not for us")
    os.symlink(docs / "moved-away.txt", docs / "link.txt")  # unreadable: its target is gone
    (docs / "korean_cp949.txt").write_bytes(KOREAN.encode("cp949"))
    (docs / "chinese_gbk.txt").write_bytes(CHINESE.encode("gbk"))
    (docs / "manual.md").write_text(MANUAL_MD, encoding="utf-8")
    handbook = (docs / "handbook.pdf").read_bytes()
    (docs / "handbook.pdf").write_bytes(handbook[: len(handbook) // 2])  # a bad copy of a good file

    second = ingest([docs, root / "not-there.pdf"], index, progress=False)
    return Messy(docs, index, first, before, second)


@pytest.mark.parametrize("name, status, reason", [
    ("locked.pdf", "failed", "encrypted with a password"),
    ("cut.pdf", "failed", "damaged or truncated"),
    ("scan.pdf", "failed", "no text layer"),
    ("empty.txt", "failed", "empty"),
    ("data.txt", "failed", "looks binary"),
    ("link.txt", "failed", "cannot read the file"),
    ("not-there.pdf", "failed", "does not exist"),
    ("slides.pptx", "skipped", "unsupported format '.pptx'"),
])
def test_unusable_file_is_reported_and_left_out(messy, name, status, reason):
    report = report_of(messy.second, name)
    assert report.status == status
    assert reason in report.reason
    assert name in report.line() and reason in report.line()  # what the CLI prints
    assert not [c for c in load_index(messy.index).chunks if Path(c.path).name == name]


def test_good_files_beside_bad_ones_still_go_in(messy):
    summary = messy.second
    assert {r.path.rsplit("/", 1)[-1] for r in summary.reports if r.status == "added"} == {
        "manual.md", "korean_cp949.txt", "chinese_gbk.txt"}
    assert report_of(summary, "faq.txt").status == "unchanged"
    assert (summary.failed, summary.skipped) == (8, 1) and not summary.ok


@pytest.mark.parametrize("name, text", [("korean_cp949.txt", KOREAN), ("chinese_gbk.txt", CHINESE)])
def test_legacy_encoded_text_goes_in_with_a_warning(messy, name, text):
    report = report_of(messy.second, name)
    assert report.status == "added" and "not UTF-8" in report.warning
    chunks = [c for c in load_index(messy.index).chunks if c.source == name]
    assert squash("".join(c.text for c in chunks)).startswith(text[:20])


def test_nothing_already_in_the_index_is_lost(messy):
    now = {c.id: c.text for c in load_index(messy.index).chunks}
    assert all(now.get(c.id) == c.text for c in messy.before.chunks)


def test_a_good_file_that_turns_corrupt_keeps_its_previous_chunks(messy):
    report = report_of(messy.second, "handbook.pdf")
    assert report.status == "failed"
    assert "damaged or truncated" in report.reason and "kept its previous version" in report.reason
    handbook = [(c.id, c.page, c.text) for c in load_index(messy.index).chunks if c.source == "handbook.pdf"]
    assert handbook == [(c.id, c.page, c.text) for c in messy.before.chunks if c.source == "handbook.pdf"]
    assert [page for _, page, _ in handbook] == [1, 2]


# --- markdown ----------------------------------------------------------------------------------------


def test_markdown_headings_become_the_section_of_each_chunk(messy):
    chunks = [c for c in load_index(messy.index).chunks if c.source == "manual.md"]
    sections = {c.section: c.text for c in chunks}
    assert list(sections) == ["Intro", "Intro > Setup", "Intro > Usage", "Reference"]
    assert "download the models once" in sections["Intro > Setup"]
    assert {c.page for c in chunks} == {None}


def test_ingest_puts_the_interpreters_gil_switch_interval_back(library):
    before = sys.getswitchinterval()
    ingest([library.docs], library.index, progress=False)
    assert sys.getswitchinterval() == before
    with pytest.raises(EmbedderMismatchError):
        ingest([library.docs], library.index, embed_model="minilm", progress=False)
    assert sys.getswitchinterval() == before
