"""Store, incremental ingest and retrieval with the ``hash`` embedder: the same code
paths as the real-model tests (tests/test_ingest.py, tests/test_retrieval.py), in
milliseconds. The hash embedder has no meaning, only shared character trigrams, so
these tests check bookkeeping (what is reused, re-embedded, removed, written,
loaded), not answer quality.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from rag.errors import EmbedderMismatchError, InputError
from rag.ingest.pipeline import IngestRun, ingest
from rag.qa import QA
from rag.settings import RetrievalSettings
from rag.store import load_index, read_current, read_manifest, read_previous
from rag.vectors import HNSW_AUTO_THRESHOLD, build_faiss, choose_index_type, search_one

DOCS = {
    "lighthouse.txt": "The lighthouse keeper lit the lamp at dusk. Ships passed the rocky cape safely.\n\n"
                      "In winter storms the keeper stayed awake all night to watch the beam. "
                      "Fog horns sounded every thirty seconds when the cape disappeared in mist. "
                      "Supply boats brought oil, bread and letters once a fortnight in calm weather.",
    "bakery.md": "# Sourdough\n\nThe bakery feeds its sourdough starter with rye flour every morning. "
                 "Loaves rest twelve hours before baking at 250 degrees.",
    "orbits.txt": "Kepler's third law relates the orbital period of a planet to its distance from the sun. "
                  "Jupiter takes almost twelve years to orbit once.",
}


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def hash_ingest(docs, index, **options):
    return ingest([docs], index, embed_model="hash", progress=False, **options)


def test_first_ingest_writes_a_complete_version(docs, tmp_path):
    index = tmp_path / "index"
    summary = hash_ingest(docs, index)

    assert (summary.added, summary.files, summary.failed) == (3, 3, 0)
    assert summary.chunks == summary.chunks_embedded >= 3 and summary.version == read_current(index)
    opened = load_index(index)
    assert opened.embed_model == "hash" and len(opened) == summary.chunks
    assert opened.vectors.shape == (summary.chunks, 256)
    assert opened.window_vectors is not None and len(opened.window_owner) == opened.window_vectors.shape[0]
    assert opened.terms is not None and "sourdough" in opened.terms.vocab
    manifest = read_manifest(index)
    assert manifest["index_type"] == "flat" and set(manifest["files"]) == {str(docs / n) for n in DOCS}


def test_a_rerun_reuses_everything_and_writes_nothing(docs, tmp_path):
    index = tmp_path / "index"
    first = hash_ingest(docs, index)
    again = hash_ingest(docs, index)

    assert (again.unchanged, again.chunks_embedded, again.terms_embedded) == (3, 0, 0)
    assert again.version == first.version and again.index_type == "flat"


def test_the_store_hands_the_previous_version_to_the_next_ingest(docs, tmp_path):
    index = tmp_path / "index"
    hash_ingest(docs, index)
    opened = load_index(index)

    previous = read_previous(index)
    assert previous.version == opened.version and previous.embed_model == "hash"
    assert [c.id for c in previous.chunks] == [c.id for c in opened.chunks]
    assert previous.window_chars == 200 and previous.dim == 256
    assert set(previous.rows_by_file()) == {str(docs / n) for n in DOCS}
    row = int(opened.window_owner[0])  # a chunk with sentence windows
    vector, windows = previous.stored(row)
    assert np.array_equal(vector, opened.vectors[row])
    owned = np.asarray(opened.window_vectors)[np.asarray(opened.window_owner) == row]
    assert np.array_equal(windows, owned) and len(windows) >= 1
    assert set(previous.term_vectors) == set(opened.terms.vocab)
    assert read_previous(tmp_path / "nothing-here") is None


def test_a_changed_file_is_re_embedded_and_the_others_are_reused(docs, tmp_path):
    index = tmp_path / "index"
    hash_ingest(docs, index)
    before = load_index(index)
    (docs / "bakery.md").write_text("# Croissants\n\nButter is folded into the dough three times.",
                                    encoding="utf-8")

    summary = hash_ingest(docs, index)

    assert (summary.changed, summary.unchanged) == (1, 2)
    after = load_index(index)
    old = {c.id: before.vectors[i] for i, c in enumerate(before.chunks)}
    for row, chunk in enumerate(after.chunks):
        if chunk.source == "bakery.md":
            assert "Croissants" in chunk.text
        else:  # carried over byte for byte, not embedded again
            assert np.array_equal(after.vectors[row], old[chunk.id])
    assert summary.chunks_embedded == sum(1 for c in after.chunks if c.source == "bakery.md")


def test_a_deleted_file_is_removed_unless_pruning_is_off(docs, tmp_path):
    index = tmp_path / "index"
    hash_ingest(docs, index)
    (docs / "orbits.txt").unlink()

    kept = hash_ingest(docs, index, prune_missing=False)
    assert (kept.removed, kept.files) == (0, 3)
    pruned = hash_ingest(docs, index)
    assert (pruned.removed, pruned.files) == (1, 2)
    assert all(c.source != "orbits.txt" for c in load_index(index).chunks)


def test_a_broken_copy_keeps_the_previous_chunks(docs, tmp_path):
    index = tmp_path / "index"
    hash_ingest(docs, index)
    (docs / "lighthouse.txt").write_text("", encoding="utf-8")  # nothing left to index

    summary = hash_ingest(docs, index)

    assert summary.failed == 1 and "kept its previous version" in summary.reports[-1].reason or any(
        "kept its previous version" in r.reason for r in summary.reports)
    assert any(c.source == "lighthouse.txt" for c in load_index(index).chunks)


def test_other_chunk_sizes_re_embed_the_chunks_but_reuse_the_term_vectors(docs, tmp_path):
    index = tmp_path / "index"
    first = hash_ingest(docs, index)
    summary = hash_ingest(docs, index, chunk_size=16, chunk_overlap=4)

    # chunks of the old size are of no use: every file is chunked and embedded anew
    assert summary.added == 3 and summary.chunks_embedded == summary.chunks > first.chunks
    assert summary.terms_embedded == 0  # the words are the same; their vectors are kept
    assert read_manifest(index)["chunker"]["chunk_size"] == 16


def test_another_embedder_is_refused_before_anything_is_written(docs, tmp_path):
    index = tmp_path / "index"
    first = hash_ingest(docs, index)
    with pytest.raises(EmbedderMismatchError):
        ingest([docs], index, embed_model="use-multilingual", progress=False)
    assert read_current(index) == first.version


def test_an_index_written_before_windows_and_terms_still_loads_and_gains_them(docs, tmp_path):
    index = tmp_path / "index"
    hash_ingest(docs, index)
    folder = index / read_current(index)
    for name in ("windows.npy", "window_owner.npy", "windows.faiss"):
        (folder / name).unlink()
    shutil.rmtree(folder / "terms")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    del manifest["chunker"]["window_chars"]  # the chunker settings of that time
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    old = load_index(index)
    assert old.window_vectors is None and old.terms is None
    previous = read_previous(index)
    assert previous.term_vectors == {} and len(previous.stored(0)[1]) == 0
    assert QA(index, "extractive").retrieve("sourdough starter rye flour")  # still answers

    # other chunker settings (windows now): chunked and embedded anew, with windows and terms
    summary = hash_ingest(docs, index)
    assert summary.added == 3 and summary.terms_embedded > 0
    new = load_index(index)
    assert new.terms is not None and new.window_vectors is not None


def test_a_first_ingest_where_every_file_fails_writes_no_index(tmp_path):
    empty = tmp_path / "docs"
    empty.mkdir()
    (empty / "blank.txt").write_text("   \n", encoding="utf-8")

    summary = hash_ingest(empty, tmp_path / "index")

    assert summary.failed == 1 and not summary.ok and read_current(tmp_path / "index") is None


def test_an_ingest_run_can_be_driven_step_by_step(docs, tmp_path):
    from rag.ingest.chunking import ChunkerSettings

    index = tmp_path / "index"
    index.mkdir()
    run = IngestRun(index, ChunkerSettings(), embed_model="hash", progress=False)
    run.load_file(docs / "bakery.md")
    run.keep_unseen([])
    summary = run.publish()
    run._close_worker()

    assert (summary.added, summary.files) == (1, 1)
    assert [c.source for c in load_index(index).chunks] == ["bakery.md"] * summary.chunks


# --------------------------------------------------------------------------- retrieval


@pytest.fixture
def hash_index(docs, tmp_path):
    index = tmp_path / "index"
    hash_ingest(docs, index)
    return index


def test_retrieval_finds_the_chunk_that_shares_the_words(hash_index):
    qa = QA(hash_index, "extractive", retrieval=RetrievalSettings(k=2))

    sources = qa.retrieve("How does the bakery feed its sourdough starter?")

    assert len(sources) == 2 and sources[0].source == "bakery.md"
    assert sources[0].score >= sources[1].score
    assert [s.source for s in qa.retrieve("lighthouse keeper lamp", k=1)] == ["lighthouse.txt"]


@pytest.mark.parametrize("options", [{"fusion": "rrf"}, {"mmr": True}, {"expansion_weight": 0.0},
                                     {"dense_weight": 0, "window_weight": 0, "expansion_weight": 0}])
def test_every_ranking_option_still_puts_the_matching_chunk_first(hash_index, options):
    qa = QA(hash_index, "extractive")

    assert qa.retrieve("Kepler third law orbital period", k=3, **options)[0].source == "orbits.txt"


def test_a_misspelled_retrieval_option_names_the_valid_ones(hash_index):
    with pytest.raises(InputError, match="unknown option kk: valid options are k, candidates"):
        QA(hash_index, "extractive").retrieve("sourdough", kk=3)


def test_an_extractive_answer_cites_the_retrieved_chunk(hash_index):
    answer = QA(hash_index, "extractive").ask("How long do the loaves rest before baking?", min_score=0.0)

    assert not answer.refused and answer.sources[0].source == "bakery.md" and "[1]" in answer.text


# --------------------------------------------------------------------------- FAISS helpers


def test_the_index_type_follows_the_vector_count():
    assert choose_index_type(10) == "flat" and choose_index_type(HNSW_AUTO_THRESHOLD + 1) == "hnsw"
    assert choose_index_type(10, "hnsw") == "hnsw"
    with pytest.raises(InputError, match="choose auto, flat or hnsw"):
        choose_index_type(10, "ivf")


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_both_index_types_find_the_nearest_vector(index_type):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = build_faiss(vectors, index_type)

    assert list(search_one(index, vectors[42], 3))[0] == 42
    assert len(search_one(index, vectors[0], 1000)) == 300  # k is capped at the vector count
    assert len(search_one(build_faiss(vectors[:0], index_type), vectors[0], 5)) == 0
