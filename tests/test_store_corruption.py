"""A damaged index gives one line naming the damaged file and the fix, never a traceback.

`rag ask` exits 3. `rag ingest` either repairs what it can rebuild from what is
stored (the FAISS and BM25 files are derived from the vectors and chunks) or refuses
with exit 3 when the stored data itself is gone (manifest, chunks, vectors): never
"unchanged" with exit 0 over an index that cannot answer. `--rebuild` always works.

The indexes here use the ``hash`` embedder: the question is whether files are read
and checked, not what the text means."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.errors import IndexCorruptError
from rag.store import load_index, read_current, read_manifest

QUESTION = "What is LoRA?"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ask(index: Path):
    # hash vectors carry no meaning: no refusal threshold, the extractive answer quotes the best chunk
    return run("ask", QUESTION, "-g", "extractive", "--min-score", "-1", "--index", index)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """docs/ and index/ of a small, healthy index: copied by each test before damaging it."""
    root = tmp_path_factory.mktemp("healthy")
    docs = root / "docs"
    docs.mkdir()
    (docs / "lora.txt").write_text("LoRA is a low-rank adaptation method for fine-tuning large models.\n"
                                   "It trains two small matrices per layer.", encoding="utf-8")
    (docs / "faiss.md").write_text("# FAISS\nFAISS searches vectors by inner product.", encoding="utf-8")
    result = run("ingest", docs, "--index", root / "index", "--embed-model", "hash", "--quiet")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def library(healthy, tmp_path) -> tuple[Path, Path]:
    """(docs, index): a private copy of the healthy index (chunk paths point at the shared docs)."""
    shutil.copytree(healthy / "index", tmp_path / "index")
    return healthy / "docs", tmp_path / "index"


def live(index: Path) -> Path:
    return index / read_current(index)


def garbage_manifest(index):
    (live(index) / "manifest.json").write_bytes(b"\xff\xfe\x00garbage\x93")
    return "manifest.json"


def list_manifest(index):
    (live(index) / "manifest.json").write_text("[1, 2, 3]", encoding="utf-8")
    return "manifest.json"


def manifest_without_embedder(index):
    path = live(index) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["embedder"]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return "manifest.json"


def unknown_format_version(index):
    path = live(index) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return "format version 99"


def truncated_vectors(index):
    path = live(index) / "vectors.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "vectors.npy"


def missing_chunks(index):
    (live(index) / "chunks.jsonl").unlink()
    return "chunks.jsonl"


def bad_chunk_line(index):
    path = live(index) / "chunks.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(["{\"id\": \"half a chunk"] + lines[1:]) + "\n", encoding="utf-8")
    return "chunks.jsonl line 1"


def missing_window_owner(index):
    (live(index) / "window_owner.npy").unlink()
    return "window_owner.npy"


def garbage_current(index):
    (index / "CURRENT").write_bytes(b"\x00\xffnot a version\n")
    return "CURRENT"


def current_outside_the_index(index):
    (index / "CURRENT").write_text("../../etc", encoding="utf-8")
    return "CURRENT"


def deleted_dense(index):
    (live(index) / "dense.faiss").unlink()
    return "dense.faiss"


def garbage_windows_faiss(index):
    (live(index) / "windows.faiss").write_bytes(b"not a faiss index")
    return "windows.faiss"


def truncated_dense(index):
    path = live(index) / "dense.faiss"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "dense.faiss"


def deleted_bm25(index):
    shutil.rmtree(live(index) / "bm25")
    return "bm25"


def garbage_term_vocabulary(index):
    (live(index) / "terms" / "vocab.json").write_text("{not json", encoding="utf-8")
    return "terms"


# The stored data: ingest cannot know what it held, so it refuses (--rebuild re-embeds).
LOST = [garbage_manifest, list_manifest, manifest_without_embedder, unknown_format_version, truncated_vectors,
        missing_chunks, bad_chunk_line, missing_window_owner, garbage_current, current_outside_the_index]
# Derived from the stored data: ingest rebuilds them.
DERIVED = [deleted_dense, truncated_dense, garbage_windows_faiss, deleted_bm25, garbage_term_vocabulary]


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("damage", LOST + DERIVED, ids=lambda f: f.__name__)
def test_ask_over_a_damaged_index_exits_3_with_one_line_naming_the_file(library, damage):
    docs, index = library
    named = damage(index)
    result = ask(index)
    assert result.exit_code == 3, result.output
    line = one_line(result.output)
    assert line.startswith(f"error: index at {index} is unreadable") and named in line
    assert "rag ingest" in line  # the fix
    assert "faiss::" not in line and ".cpp" not in line  # what went wrong, not where in FAISS's source


@pytest.mark.parametrize("damage", LOST, ids=lambda f: f.__name__)
def test_ingest_refuses_an_index_whose_stored_data_is_lost(library, damage):
    docs, index = library
    named = damage(index)
    result = run("ingest", docs, "--index", index, "--embed-model", "hash", "--quiet")
    assert result.exit_code == 3, result.output
    line = one_line(result.output)
    assert named in line and "--rebuild" in line


@pytest.mark.parametrize("damage", DERIVED, ids=lambda f: f.__name__)
def test_ingest_repairs_files_it_can_rebuild_from_the_stored_vectors(library, damage):
    docs, index = library
    before = load_index_chunks(index)
    named = damage(index)
    result = run("ingest", docs, "--index", index, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"{named}" in result.output and "repaired" in result.output  # said, not silent
    assert load_index_chunks(index) == before
    answer = ask(index)
    assert answer.exit_code == 0 and "low-rank adaptation" in answer.output


def load_index_chunks(index: Path) -> list[str]:
    return [chunk.text for chunk in load_index(index).chunks]


@pytest.mark.parametrize("damage", LOST + DERIVED, ids=lambda f: f.__name__)
def test_rebuild_always_recovers(library, damage):
    docs, index = library
    damage(index)
    result = run("ingest", docs, "--index", index, "--embed-model", "hash", "--rebuild", "--quiet")
    assert result.exit_code == 0, result.output
    answer = ask(index)
    assert answer.exit_code == 0 and "low-rank adaptation" in answer.output


def test_read_manifest_names_the_problem(library):
    _, index = library
    list_manifest(index)
    with pytest.raises(IndexCorruptError, match=r"manifest.json is not a JSON object \(found a list\)"):
        read_manifest(index)


def test_vectors_of_another_width_than_the_embedder_are_caught(library):
    docs, index = library
    chunks = len(load_index(index).chunks)
    np.save(live(index) / "vectors.npy", np.zeros((chunks, 3), dtype=np.float32))
    with pytest.raises(IndexCorruptError, match=r"vectors\.npy has 3-dim vectors, the embedder in manifest\.json 256"):
        load_index(index)
    result = run("ingest", docs, "--index", index, "--quiet")  # refused: new vectors would not fit
    assert result.exit_code == 3 and "vectors.npy has 3-dim vectors" in one_line(result.output)
