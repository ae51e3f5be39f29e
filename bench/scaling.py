#!/usr/bin/env python
"""Scaling benchmark for the retrieval indexes: exact (flat) and HNSW FAISS, and BM25.

Synthetic corpora of N chunks (default 10k, 100k and 1M):

* dense side: random unit float32 vectors of dim 512 (the default embedder's
  dimension), indexed with ``rag.vectors.build_faiss`` (so the HNSW_* constants in
  rag/vectors.py are what is measured);
* lexical side: generated multilingual text (English, Italian, Chinese, Korean,
  with some code-mixing), ~60-120 BM25 tokens a chunk drawn from Zipf-like
  vocabularies, indexed with ``rag.lexical.LexicalIndex``.

Measured for each N: build time, memory (RSS delta, bytes per vector), single-query
p50/p95 latency (one query at a time), HNSW recall@10 against exact search, BM25
build time and query p50/p95. The exact-vs-HNSW threshold (the N where exact p50
crosses 20 ms) is derived from the measurements and compared with
``rag.vectors.HNSW_AUTO_THRESHOLD``.

Vector model. Isotropic Gaussian vectors in 512 dimensions have no neighbourhood
structure: every stored vector is at cosine ~0 +- 0.044 from a query, so
neighbours 2..10 of a query are decided by noise and no graph index reaches a
useful recall@10 on them (measured: HNSW M=32, efSearch=256 gives recall@10 0.48
at 100k). Real sentence embeddings are anisotropic: for the default embedder
(use-multilingual) on bench/data questions the mean vector has norm 0.34, the
median pairwise cosine is 0.09 and 20 principal components carry half the
variance. The default ``--vectors anisotropic`` draws x = normalize(mu + g) with
|mu| = 0.35 and g Gaussian with a power-law spectrum (variance of component i
proportional to 1/i), which reproduces those statistics; ``--vectors isotropic``
gives the structure-free worst case. Queries are perturbed copies of stored
vectors (isotropic noise, cosine to the source ~0.5-0.8), so the true top-1 is
known and recall@10 is meaningful.

Usage (from the repository root)::

    python bench/scaling.py                # 10k, 100k, 1M (several minutes)
    python bench/scaling.py --quick        # 10k and 100k, about a minute
    python bench/scaling.py --sizes 10000,100000 --json

Writes bench/results/scaling.json and bench/results/scaling.png.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from operator import itemgetter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DIM = 512  # the default embedder (use-multilingual)
K = 10
FULL_SIZES = [10_000, 100_000, 1_000_000]
QUICK_SIZES = [10_000, 100_000]
EXACT_BUDGET_MS = 20.0  # exact search stays the default while its p50 is under this
TARGETS = {
    "hnsw_1m_p50_ms": 5.0,
    "hnsw_1m_recall_at_10": 0.95,
    "exact_100k_p50_ms": 20.0,
    "bm25_1m_p50_ms": 10.0,
    "exact_memory_vs_raw": 1.2,
}
EF_SWEEP = [32, 64, 128, 256, 512]
GEN_VERSION = 1  # bump when the synthetic data generators change (invalidates cached builds)

_quiet = False


def log(msg: str) -> None:
    if not _quiet:
        print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return 0


def settle() -> int:
    """RSS after collecting garbage and handing freed heap pages back to the OS, so
    that a delta measures what the next step keeps, not what the allocator reused."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_bytes()


# --------------------------------------------------------------------------- timing


def latency_ms(fn, queries, warmup: int = 5) -> tuple[float, float, list[float]]:
    """p50/p95 in ms of ``fn(q)`` run once per query, one query at a time."""
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), times


# --------------------------------------------------------------------------- vectors


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_vectors(n: int, dim: int, seed: int, kind: str) -> np.ndarray:
    """``n`` random unit float32 vectors (see the module docstring for ``kind``)."""
    rng = np.random.default_rng([seed, n, 1])
    out = np.empty((n, dim), dtype=np.float32)
    if kind == "anisotropic":
        spectrum = 1.0 / np.arange(1, dim + 1)
        scale = np.sqrt(spectrum / spectrum.sum()).astype(np.float32)
        mu = rng.standard_normal(dim).astype(np.float32)
        mu *= 0.35 / np.linalg.norm(mu)
    block = 1 << 16
    for start in range(0, n, block):
        x = rng.standard_normal((min(block, n - start), dim), dtype=np.float32)
        if kind == "anisotropic":
            x *= scale
            x += mu
        out[start:start + len(x)] = _unit_rows(x)
    return out


def make_queries(vectors: np.ndarray, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Perturbed copies of stored vectors: cosine to the source in ~[0.5, 0.8]."""
    rng = np.random.default_rng([seed, len(vectors), 2])
    source = rng.choice(len(vectors), size=nq, replace=False)
    # isotropic noise of norm r: cos(q, source) ~ 1/sqrt(1 + r^2), r in [0.75, 1.73]
    r = rng.uniform(0.75, 1.73, size=(nq, 1)).astype(np.float32)
    noise = rng.standard_normal((nq, vectors.shape[1]), dtype=np.float32) / np.sqrt(vectors.shape[1])
    q = _unit_rows(vectors[source] + noise * r)
    return np.ascontiguousarray(q, dtype=np.float32), source


def hnsw_struct_bytes(index) -> int:
    import faiss

    storage = faiss.downcast_index(index.storage)
    h = index.hnsw
    return (storage.ntotal * storage.code_size + h.neighbors.size() * 4 + h.offsets.size() * 8
            + h.levels.size() * 4)


def bench_dense(n: int, args) -> dict:
    import faiss

    from rag import vectors as store  # the FAISS helpers and HNSW_* constants

    build_threads = faiss.omp_get_max_threads()
    raw = n * DIM * 4
    t0 = time.perf_counter()
    vectors = make_vectors(n, DIM, args.seed, args.vectors)
    queries, source = make_queries(vectors, args.queries, args.seed)
    log(f"  [{n:>9,}] {n:,} x {DIM} vectors generated in {time.perf_counter() - t0:.1f}s")
    q_rows = [queries[i:i + 1] for i in range(len(queries))]
    res: dict = {"raw_vector_bytes": raw}

    # exact
    faiss.omp_set_num_threads(build_threads)
    before = settle()
    t0, c0 = time.perf_counter(), time.process_time()
    flat = store.build_faiss(vectors, "flat")
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    delta = settle() - before
    struct = flat.ntotal * flat.code_size
    t0 = time.perf_counter()
    gt_scores, gt_ids = flat.search(queries, K)  # batched, all threads: ground truth
    gt_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(args.query_threads)
    p50, p95, _ = latency_ms(lambda q: flat.search(q, K), q_rows)
    exact = {
        "build_s": build_s, "build_cpu_s": build_cpu, "rss_delta_bytes": delta, "bytes_per_vector": delta / n,
        "struct_bytes_per_vector": struct / n, "memory_vs_raw": delta / raw,
        "p50_ms": p50, "p95_ms": p95, "recall_at_10": 1.0, "groundtruth_batch_s": gt_s,
    }
    # the same search with every core on one query (what an unconfigured process does)
    if build_threads != args.query_threads:
        faiss.omp_set_num_threads(build_threads)
        sub = q_rows[: max(20, len(q_rows) // 4)]
        mp50, mp95, _ = latency_ms(lambda q: flat.search(q, K), sub)
        exact[f"p50_ms_{build_threads}_threads"] = mp50
        exact[f"p95_ms_{build_threads}_threads"] = mp95
    res["exact"] = exact
    res["query_top1_cosine"] = {
        "p5": float(np.percentile(gt_scores[:, 0], 5)), "p50": float(np.median(gt_scores[:, 0])),
        "p95": float(np.percentile(gt_scores[:, 0], 95)),
        "top10_median": float(np.median(gt_scores[:, K - 1])),
        "source_is_top1": float(np.mean(gt_ids[:, 0] == source)),
    }
    log(f"  [{n:>9,}] exact: build {build_s:.2f}s, {delta / 2**20:.0f} MiB, p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    del flat
    gc.collect()

    # HNSW (built once per configuration at N >= --cache-min, then loaded)
    faiss.omp_set_num_threads(build_threads)
    key = (f"hnsw-n{n}-d{DIM}-{args.vectors}-seed{args.seed}-M{store.HNSW_M}-efc{store.HNSW_EF_CONSTRUCTION}"
           f"-faiss{faiss.__version__}-np{np.__version__}-g{GEN_VERSION}")
    cached = Path(args.out) / "cache" / key
    build_info = None
    if n >= args.cache_min and not args.rebuild and (cached / "meta.json").exists():
        before = settle()
        t0 = time.perf_counter()
        hnsw = faiss.read_index(str(cached / "index.faiss"))
        load_s = time.perf_counter() - t0
        load_delta = settle() - before
        if hnsw.ntotal == n and hnsw.d == DIM:
            build_info = json.loads((cached / "meta.json").read_text())
            build_info.update(cached=True, load_s=load_s, load_rss_delta_bytes=load_delta)
            log(f"  [{n:>9,}] hnsw: loaded cached build ({cached.name}) in {load_s:.1f}s")
        else:
            del hnsw
    if build_info is None:
        log(f"  [{n:>9,}] hnsw: building (M={store.HNSW_M}, efConstruction={store.HNSW_EF_CONSTRUCTION}, "
            f"{build_threads} threads)...")
        before = settle()
        t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        hnsw = store.build_faiss(vectors, "hnsw")
        build_info = {"build_s": time.perf_counter() - t0, "build_cpu_s": time.process_time() - c0,
                      "rss_delta_bytes": settle() - before, "build_threads": build_threads,
                      "loadavg_1min": [load0, os.getloadavg()[0]],
                      "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cached": False}
        if n >= args.cache_min:
            cached.mkdir(parents=True, exist_ok=True)
            faiss.write_index(hnsw, str(cached / "index.faiss"))
            (cached / "meta.json").write_text(json.dumps({k: v for k, v in build_info.items() if k != "cached"}))
    build_s, delta = build_info["build_s"], build_info["rss_delta_bytes"]
    struct = hnsw_struct_bytes(hnsw)
    faiss.omp_set_num_threads(args.query_threads)

    def run(ef: int) -> dict:
        hnsw.hnsw.efSearch = ef
        ids = np.empty((len(q_rows), K), dtype=np.int64)
        times = []
        for q in q_rows[:5]:
            hnsw.search(q, K)
        for i, q in enumerate(q_rows):
            t = time.perf_counter()
            _, found = hnsw.search(q, K)
            times.append((time.perf_counter() - t) * 1e3)
            ids[i] = found[0]
        recall = np.mean([len(set(ids[i]) & set(gt_ids[i])) / K for i in range(len(ids))])
        return {"ef_search": ef, "p50_ms": float(np.percentile(times, 50)),
                "p95_ms": float(np.percentile(times, 95)), "recall_at_10": float(recall),
                "recall_at_1": float(np.mean(ids[:, 0] == gt_ids[:, 0]))}

    sweep = [run(ef) for ef in sorted(set(EF_SWEEP) | {store.HNSW_EF_SEARCH})]
    default = next(s for s in sweep if s["ef_search"] == store.HNSW_EF_SEARCH)
    res["hnsw"] = {
        "build_s": build_s, "build_cpu_s": build_info.get("build_cpu_s"), "build_cached": build_info["cached"],
        "built_at": build_info["built_at"], "build_loadavg_1min": build_info.get("loadavg_1min"),
        "build_threads": build_info["build_threads"], "load_s": build_info.get("load_s"),
        "rss_delta_bytes": delta, "bytes_per_vector": delta / n,
        "struct_bytes_per_vector": struct / n, "memory_vs_raw": delta / raw,
        "M": store.HNSW_M, "ef_construction": store.HNSW_EF_CONSTRUCTION,
        "ef_search": store.HNSW_EF_SEARCH, "p50_ms": default["p50_ms"], "p95_ms": default["p95_ms"],
        "recall_at_10": default["recall_at_10"], "recall_at_1": default["recall_at_1"],
        "ef_sweep": sweep,
    }
    log(f"  [{n:>9,}] hnsw: build {build_s:.1f}s{' (cached)' if build_info['cached'] else ''}, "
        f"{delta / 2**20:.0f} MiB, p50 {default['p50_ms']:.2f} ms, "
        f"recall@10 {default['recall_at_10']:.3f}")
    del hnsw, vectors
    gc.collect()
    faiss.omp_set_num_threads(build_threads)
    return res


# --------------------------------------------------------------------------- text

_EN_REAL = (
    "index vector search query document retrieval embedding model token chunk score ranking answer question "
    "context source page table figure section paper method result dataset training evaluation accuracy "
    "precision recall latency memory build time cluster graph node edge neighbor distance cosine similarity "
    "language translation sentence paragraph word character batch size learning rate epoch loss gradient "
    "layer network attention transformer encoder decoder weight bias parameter function value error test "
    "train validation split feature label class classifier regression forest tree boosting kernel matrix "
    "linear sparse dense lexical semantic hybrid fusion rerank citation file folder format version update "
    "server client request response cache thread process core disk storage network speed throughput"
).split()
_IT_REAL = (
    "indice vettore ricerca domanda documento risposta modello frase parola pagina tabella figura sezione "
    "metodo risultato dati addestramento valutazione accuratezza precisione richiamo memoria tempo grafo "
    "nodo distanza somiglianza lingua traduzione paragrafo carattere lotto dimensione apprendimento tasso "
    "epoca perdita gradiente livello rete attenzione peso parametro funzione valore errore prova classe "
    "classificatore albero matrice lineare semantico ibrido citazione cartella formato versione aggiornamento "
    "servizio richiesta velocità archivio calcolo sistema utente progetto analisi studio campione esempio"
).split()
_EN_STOP = "the of and to in is for with that on as by from this are be it was at an or".split()
_IT_STOP = "di che la il e per con non una del della nel al si sono le dei gli un da".split()
_EN_SYL = ("ba be bi bo bu ca co cu da de di do fa fe fi ga ge go ha he hi ja ka ke la le li lo lu ma me mi mo "
           "na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa we wi ya ze str tion ment "
           "ing er al ic ous ive ble ness ly pro con dis pre trans inter graph log net").split()
_IT_SYL = ("ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo ga ge gi go la le li lo lu ma me mi mo mu "
           "na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi vo za ze zio ne gno glia sce "
           "chia chi ghe tto zza mento zione ità").split()
_KO_PARTICLES = "은 는 이 가 을 를 의 에 에서 으로 와 과 도 로".split()
_TECH = "BM25 FAISS HNSW top_k batch_size learning_rate GPU API JSON PDF v2.1 Python token_ids".split()
LANG_MIX = {"en": 0.40, "it": 0.25, "zh": 0.20, "ko": 0.15}


def _zipf_cdf(size: int, s: float = 1.07, q: float = 2.7) -> np.ndarray:
    p = 1.0 / (np.arange(size) + 1 + q) ** s
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def _sample(cdf: np.ndarray, count: int, rng) -> np.ndarray:
    return np.searchsorted(cdf, rng.random(count)).astype(np.int64)


def _synthetic_words(rng, syllables: list[str], count: int, seen: set[str], lo=2, hi=4) -> list[str]:
    words: list[str] = []
    syl = np.array(syllables)
    while len(words) < count:
        lengths = rng.integers(lo, hi + 1, size=count)
        picks = rng.integers(0, len(syl), size=(count, hi))
        for length, row in zip(lengths, picks):
            w = "".join(syl[row[:length]])
            if w not in seen:
                seen.add(w)
                words.append(w)
                if len(words) == count:
                    break
    return words


def build_vocabularies(seed: int) -> dict:
    """Rank-ordered vocabularies (rank 0 = most frequent) for each language."""
    rng = np.random.default_rng([seed, 7])
    seen: set[str] = set(_EN_REAL) | set(_IT_REAL)
    en = _EN_REAL + _synthetic_words(rng, _EN_SYL, 60_000 - len(_EN_REAL), seen)
    it = _IT_REAL + _synthetic_words(rng, _IT_SYL, 60_000 - len(_IT_REAL), seen)
    # Chinese: 4,000 characters (Zipf), words of 1-4 characters (mostly 2)
    chars = np.array([chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA6), 4000, replace=False)])
    char_cdf = _zipf_cdf(len(chars), s=0.9)
    zh, seen_zh = [], set()
    while len(zh) < 40_000:
        length = int(rng.choice([1, 2, 3, 4], p=[0.12, 0.68, 0.15, 0.05]))
        w = "".join(chars[_sample(char_cdf, length, rng)])
        if w not in seen_zh:
            seen_zh.add(w)
            zh.append(w)
    # Korean: 2,500 syllables (Zipf), stems of 1-4 syllables, often with a particle
    sylls = np.array([chr(c) for c in rng.choice(np.arange(0xAC00, 0xD7A4), 2500, replace=False)])
    syl_cdf = _zipf_cdf(len(sylls), s=0.9)
    ko, seen_ko = [], set()
    while len(ko) < 40_000:
        length = int(rng.choice([1, 2, 3, 4], p=[0.1, 0.45, 0.35, 0.1]))
        w = "".join(sylls[_sample(syl_cdf, length, rng)])
        if rng.random() < 0.45:
            w += _KO_PARTICLES[int(rng.integers(len(_KO_PARTICLES)))]
        if w not in seen_ko:
            seen_ko.add(w)
            ko.append(w)
    return {"en": en, "it": it, "zh": zh, "ko": ko}


def make_corpus(n: int, seed: int, vocab: dict, n_queries: int) -> tuple[list[str], list[str]]:
    """``n`` chunks of ~60-120 BM25 tokens and ``n_queries`` queries taken from them."""
    rng = np.random.default_rng([seed, n, 3])
    langs = list(LANG_MIX)
    lang_of = rng.choice(len(langs), size=n, p=list(LANG_MIX.values()))
    texts: list[str | None] = [None] * n
    tech_obj = np.array(_TECH, dtype=object)
    for li, lang in enumerate(langs):
        where = np.flatnonzero(lang_of == li)
        if not len(where):
            continue
        words = np.array(vocab[lang], dtype=object)
        cdf = _zipf_cdf(len(words))
        target = rng.integers(60, 121, size=len(where))  # BM25 tokens wanted
        # tokens per word: 1 for en/it; ~2 for zh and ko (character bigrams)
        per_word = {"en": 1.0, "it": 1.0, "zh": 2.0, "ko": 1.9}[lang]
        n_words = np.maximum(8, np.round(target / per_word)).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(n_words)])
        total = int(offsets[-1])
        ids = _sample(cdf, total, rng)
        # burstiness: ~15% of a chunk's words come from a handful of topic words
        chunk_of = np.repeat(np.arange(len(where)), n_words)
        topics = _sample(cdf, len(where) * 4, rng).reshape(-1, 4)
        bursty = rng.random(total) < 0.15
        ids[bursty] = topics[chunk_of[bursty], rng.integers(0, 4, size=int(bursty.sum()))]
        toks = words[ids]
        if lang in ("it", "zh", "ko"):  # code-mixing: a few English technical terms
            mix = rng.random(total) < 0.02
            toks[mix] = tech_obj[rng.integers(0, len(tech_obj), size=int(mix.sum()))]
        if lang in ("en", "it"):  # function words (stopwords, dropped by the tokenizer)
            stop = np.array(_EN_STOP if lang == "en" else _IT_STOP, dtype=object)
            has = rng.random(total) < 0.4
            toks[has] = stop[rng.integers(0, len(stop), size=int(has.sum()))] + " " + toks[has]
            sep = " "
        elif lang == "zh":  # runs of 3-8 words between punctuation marks
            punct = np.array(["，", "。", "、", "；"], dtype=object)
            brk = rng.random(total) < 0.18
            toks[brk] = toks[brk] + punct[rng.integers(0, len(punct), size=int(brk.sum()))]
            sep = ""
        else:
            sep = " "
        for j, pos in enumerate(where):
            texts[pos] = sep.join(toks[offsets[j]:offsets[j + 1]])
    queries = []
    qrng = np.random.default_rng([seed, n, 4])
    for pos in qrng.choice(n, size=n_queries, replace=False):
        text = texts[pos]
        if langs[lang_of[pos]] == "zh":
            start = int(qrng.integers(0, max(1, len(text) - 14)))
            q = text[start:start + int(qrng.integers(5, 15))]
        else:
            parts = text.split()
            start = int(qrng.integers(0, max(1, len(parts) - 7)))
            q = " ".join(parts[start:start + int(qrng.integers(3, 8))])
        queries.append(q)
    return texts, queries  # type: ignore[return-value]


def _lexical_fingerprint() -> str:
    """Changes when the tokenizer or the index build changes (not when search does)."""
    import hashlib
    import inspect

    from rag import lexical

    src = inspect.getsource(lexical.tokenize) + inspect.getsource(lexical.LexicalIndex.build)
    src += lexical._TOKEN.pattern + " ".join(sorted(lexical.STOPWORDS))
    return hashlib.sha1(src.encode()).hexdigest()[:10]


def bench_bm25(n: int, args, vocab: dict) -> dict:
    import bm25s

    from rag.lexical import LexicalIndex, tokenize

    key = f"bm25-n{n}-seed{args.seed}-q{args.queries}-lex{_lexical_fingerprint()}-bm25s{bm25s.__version__}-g{GEN_VERSION}"
    cached = Path(args.out) / "cache" / key
    info = None
    if n >= args.cache_min and not args.rebuild and (cached / "meta.json").exists():
        before = settle()
        t0 = time.perf_counter()
        index = LexicalIndex.load(cached / "index")
        load_s = time.perf_counter() - t0
        load_delta = settle() - before
        info = json.loads((cached / "meta.json").read_text())
        queries = info.pop("queries")
        info.update(cached=True, load_s=load_s, load_rss_delta_bytes=load_delta)
        log(f"  [{n:>9,}] bm25: loaded cached build ({cached.name}) in {load_s:.1f}s")
    else:
        t0 = time.perf_counter()
        texts, queries = make_corpus(n, args.seed, vocab, args.queries)
        gen_s = time.perf_counter() - t0
        sample = texts[:: max(1, n // 2000)]
        lengths = [len(tokenize(t)) for t in sample]
        log(f"  [{n:>9,}] {n:,} texts generated in {gen_s:.1f}s (tokens/chunk median {np.median(lengths):.0f}); "
            "building BM25...")
        before = settle()
        t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        index = LexicalIndex.build(texts)
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        delta = settle() - before
        del texts
        info = {
            "build_s": build_s, "build_cpu_s": build_cpu, "rss_delta_bytes": delta, "generate_s": gen_s,
            "build_loadavg_1min": [load0, os.getloadavg()[0]],
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tokens_per_chunk": {"p5": float(np.percentile(lengths, 5)), "p50": float(np.median(lengths)),
                                 "p95": float(np.percentile(lengths, 95))},
            "cached": False,
        }
        if n >= args.cache_min:
            index.save(cached / "index")
            (cached / "meta.json").write_text(json.dumps(
                dict({k: v for k, v in info.items() if k != "cached"}, queries=queries), ensure_ascii=False))
    p50, p95, _ = latency_ms(lambda q: index.search(q, K), queries)
    hits = [len(index.search(q, K)[0]) for q in queries[:50]]
    exp_p50, exp_p95 = bench_expansion(index, queries, args.seed)
    res = dict(info)
    res.update({
        "build_cached": info["cached"], "bytes_per_chunk": info["rss_delta_bytes"] / n,
        "p50_ms": p50, "p95_ms": p95, "vocabulary": len(index.vocab),
        "postings": int(index.retriever.scores["indptr"][-1]),
        "query_tokens_median": float(np.median([len(tokenize(q)) for q in queries])),
        "queries_with_k_hits": float(np.mean([h == K for h in hits])),
        "expansion_p50_ms": exp_p50, "expansion_p95_ms": exp_p95,
    })
    res.pop("cached")
    log(f"  [{n:>9,}] bm25: build {res['build_s']:.1f}s{' (cached)' if info['cached'] else ''}, "
        f"{res['rss_delta_bytes'] / 2**20:.0f} MiB, p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    del index
    gc.collect()
    return res


# --------------------------------------------------------------------------- analysis


def bench_expansion(index, queries: list[str], seed: int) -> tuple[float, float]:
    """p50/p95 ms of the term-expansion scoring (rag/terms.py) over this BM25 index:
    each query token expands to itself and 9 other vocabulary tokens drawn by
    frequency (real neighbours are often common words, whose postings are long),
    scored with ``max_weighted_scores`` and cut to the top candidates, as retrieval
    does. The embedding lookups are not part of it (the vocabulary is synthetic)."""
    from rag.retrieval import top_rows

    rng = np.random.default_rng(seed + 7)
    indptr = index.retriever.scores["indptr"]
    df = np.diff(indptr)
    common = np.argsort(-df)[:20_000]  # neighbours come from the 20k most frequent tokens
    weights = df[common] / df[common].sum()
    expanded = {}
    for q in queries:
        ids = index._token_ids(q)
        expanded[q] = [[(t, 1.0)] + [(int(n), float(rng.uniform(0.6, 0.9)))
                                     for n in rng.choice(common, size=9, p=weights)] for t in ids]

    def score(q):
        total = np.zeros(index.num_docs, dtype=np.float32)
        for group in expanded[q]:
            total += index.max_weighted_scores(group)
        return top_rows(total, 50)

    p50, p95, _ = latency_ms(score, queries)
    return p50, p95


def bench_milvus(n: int, args, vocab: dict | None) -> dict:
    """The Milvus store (rag/milvus_store.py) on Milvus Lite, with the same vectors and
    queries as bench_dense: ingest throughput through MilvusWriter.write_file (chunk
    JSON + vector rows with their corpus terms, files of 500 chunks, each switched in like
    an ingest does), the reader's open time cold (snapshot of every chunk + client-side
    BM25 builds, then cached on disk) and warm (a second reader: the snapshot from the
    reader cache, rag/milvus_store.py), and
    single-query p50/p95 of the engine's dense search (search_dense, k=10) with its
    recall@10 against exact search."""
    import shutil
    import tempfile

    from rag import milvus_store
    from rag.terms import extract_terms
    from rag.types import Chunk

    vectors = make_vectors(n, DIM, args.seed, args.vectors)
    queries, _ = make_queries(vectors, args.milvus_queries, args.seed)
    texts = make_corpus(n, args.seed, vocab, 1)[0] if vocab else [f"chunk {i}" for i in range(n)]
    folder = Path(tempfile.mkdtemp(prefix="milvus-bench-"))
    uri = milvus_store.parse(f"milvus://{folder}/bench.db")
    try:
        writer = milvus_store.MilvusWriter(uri, {"name": "synthetic", "dim": DIM}, DIM, {"bench": True})
        writer.prepare()
        per_file = 500
        t0 = time.perf_counter()
        for f, start in enumerate(range(0, n, per_file)):
            rows = range(start, min(n, start + per_file))
            chunks = [Chunk(id=f"{f}-{i}", text=texts[i], path=f"/bench/{f:05d}.txt", source=f"{f:05d}.txt")
                      for i in rows]
            writer.write_file(f"/bench/{f:05d}.txt", {"hash": str(f), "chunks": len(chunks)}, chunks,
                              vectors[start:start + len(chunks)], [np.zeros((0, DIM), np.float32)] * len(chunks),
                              [extract_terms(c.embedding_text()) for c in chunks])
            if f % 20 == 0:
                log(f"  [{n:>9,}] milvus: {start + len(chunks):,} chunks written")
        writer.flush()
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = milvus_store.load_index(uri)
        open_s = time.perf_counter() - t0
        assert len(index) == n
        t0 = time.perf_counter()
        warm = milvus_store.load_index(uri)  # what the next reader (process or host) does
        open_warm_s = time.perf_counter() - t0
        assert len(warm) == n and warm.chunks == index.chunks
        del warm
        flat = vectors @ queries.T  # exact ground truth, (n, nq)
        gt = np.argsort(-flat, axis=0)[:K].T
        times, recalls = [], []
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            found = index.search_dense(q, K)
            times.append((time.perf_counter() - t0) * 1000)
            # rows are ordered by file path, then position in the file: row r holds vector r
            recalls.append(len(set(int(r) for r in found) & set(int(g) for g in gt[i])) / K)
        res = {"engine": "milvus-lite", "chunks": n, "ingest_s": ingest_s, "ingest_chunks_per_s": n / ingest_s,
               "open_s": open_s, "open_warm_s": open_warm_s, "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
               "recall_at_10": float(np.mean(recalls)), "n_queries": len(queries),
               "disk_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}
        log(f"  [{n:>9,}] milvus: ingest {res['ingest_chunks_per_s']:.0f} chunks/s, "
            f"open {open_s:.1f}s cold / {open_warm_s:.2f}s warm, "
            f"p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms, recall@10 {res['recall_at_10']:.3f}")
        return res
    finally:
        milvus_store.release(uri)
        shutil.rmtree(folder, ignore_errors=True)


def _nice_floor(x: float) -> int:
    """The largest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k not above ``x``."""
    if x <= 0:
        return 0
    exp = 10 ** int(np.floor(np.log10(x)))
    steps = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]
    return int(max(s for s in steps if s * exp <= x * (1 + 1e-9)) * exp)


def derive_threshold(results: dict, current: int) -> dict:
    """N where exact p50 crosses EXACT_BUDGET_MS, from a linear fit p50 = a + b N."""
    ns = np.array(sorted(int(n) for n in results), dtype=float)
    p50 = np.array([results[str(int(n))]["exact"]["p50_ms"] for n in ns])
    rule: dict = {"budget_ms": EXACT_BUDGET_MS, "current_store_threshold": current}
    if len(ns) < 2:
        rule.update(crossing_n=None, rule="need two sizes to fit", consistent=None)
        return rule
    b, a = np.polyfit(ns, p50, 1)
    crossing = (EXACT_BUDGET_MS - a) / b if b > 0 else float("inf")
    nice = _nice_floor(crossing)
    rule.update(
        fit_intercept_ms=float(a), fit_ms_per_million=float(b * 1e6), crossing_n=float(crossing),
        suggested_threshold=nice,
        rule=f"exact (flat) while N <= {nice:,}; HNSW above (exact p50 = {a:.2f} ms + "
             f"{b * 1e6:.1f} ms per million vectors crosses {EXACT_BUDGET_MS:.0f} ms at N = {crossing:,.0f})",
        # the store constant should sit at or just below the crossing
        consistent=bool(0.5 * crossing <= current <= crossing * 1.05),
    )
    return rule


def check_targets(results: dict) -> list[dict]:
    out = []

    def add(name, value, limit, ok, where):
        out.append({"target": name, "value": value, "limit": limit, "met": ok, "at": where})

    if "1000000" in results:
        h = results["1000000"]["hnsw"]
        add("HNSW p50 at 1M (ms)", h["p50_ms"], f"<= {TARGETS['hnsw_1m_p50_ms']}",
            h["p50_ms"] <= TARGETS["hnsw_1m_p50_ms"], "1M")
        add("HNSW recall@10 at 1M", h["recall_at_10"], f">= {TARGETS['hnsw_1m_recall_at_10']}",
            h["recall_at_10"] >= TARGETS["hnsw_1m_recall_at_10"], "1M")
        if "bm25" in results["1000000"]:
            b = results["1000000"]["bm25"]
            add("BM25 p50 at 1M (ms)", b["p50_ms"], f"<= {TARGETS['bm25_1m_p50_ms']}",
                b["p50_ms"] <= TARGETS["bm25_1m_p50_ms"], "1M")
    if "100000" in results:
        e = results["100000"]["exact"]
        add("exact p50 at 100k (ms)", e["p50_ms"], f"<= {TARGETS['exact_100k_p50_ms']}",
            e["p50_ms"] <= TARGETS["exact_100k_p50_ms"], "100k")
    big = str(max(int(n) for n in results))
    ratio = results[big]["exact"]["memory_vs_raw"]
    add("exact index memory / raw float32", ratio, f"<= {TARGETS['exact_memory_vs_raw']}",
        ratio <= TARGETS["exact_memory_vs_raw"], f"{int(big):,}")
    return out


# --------------------------------------------------------------------------- output


def _n(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n % 1000 == 0 else str(n))


def _cpu(x: dict) -> str:
    return "" if x.get("build_cpu_s") is None else f"{x['build_cpu_s']:.1f}"


def format_table(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"Scaling benchmark: dim {meta['dim']}, {meta['n_queries']} single queries per measurement, k={K}, "
        f"vectors {meta['vectors']}",
        f"FAISS {meta['faiss']} | build threads {meta['build_threads']} | query threads "
        f"{meta['query_threads']} | HNSW M={meta['hnsw_M']} efConstruction={meta['hnsw_ef_construction']} "
        f"efSearch={meta['hnsw_ef_search']} | {meta['cpu']} ({meta['cpu_count']} cores)",
        f"load average (1 min) {meta['loadavg_1min_at_start']:.1f} at start, {meta['loadavg_1min_at_end']:.1f} at end "
        "(other processes share this machine: wall times and p95 include waiting for a core)",
        "",
        f"{'N':>5} {'index':<6} {'build s':>9} {'cpu s':>7} {'mem MiB':>8} {'B/vec':>7} {'struct':>7} {'x raw':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9}",
    ]
    cached = []

    def build(x: dict, n: int, name: str) -> str:
        if x.get("build_cached"):
            cached.append(f"{_n(n)} {name}: built {x['built_at']}, loaded in {x['load_s']:.1f}s this run")
            return f"{x['build_s']:.2f}*"
        return f"{x['build_s']:.2f} "

    for n_str, r in sorted(report["results"].items(), key=lambda kv: int(kv[0])):
        n = int(n_str)
        for name in ("exact", "hnsw"):
            if name not in r:
                continue
            x = r[name]
            lines.append(
                f"{_n(n):>5} {name:<6} {build(x, n, name):>9} {_cpu(x):>7} {x['rss_delta_bytes'] / 2**20:>8.0f} "
                f"{x['bytes_per_vector']:>7.0f} {x['struct_bytes_per_vector']:>7.0f} {x['memory_vs_raw']:>6.2f} "
                f"{x['p50_ms']:>8.2f} {x['p95_ms']:>8.2f} {x['recall_at_10']:>9.3f}")
        if "bm25" in r:
            x = r["bm25"]
            lines.append(
                f"{_n(n):>5} {'bm25':<6} {build(x, n, 'bm25'):>9} {_cpu(x):>7} {x['rss_delta_bytes'] / 2**20:>8.0f} "
                f"{x['bytes_per_chunk']:>7.0f} {'':>7} {'':>6} {x['p50_ms']:>8.2f} {x['p95_ms']:>8.2f} {'':>9}")
            if "expansion_p50_ms" in x:
                lines.append(f"{_n(n):>5} {'bm25+':<6} {'':>9} {'':>7} {'':>8} {'':>7} {'':>7} {'':>6} "
                             f"{x['expansion_p50_ms']:>8.2f} {x['expansion_p95_ms']:>8.2f} {'':>9}")
    milvus = [(int(n), r["milvus"]) for n, r in sorted(report["results"].items(), key=lambda kv: int(kv[0]))
              if "milvus" in r]
    if milvus:
        lines.append("")
        lines.append(f"{'N':>5} {'store':<12} {'write chunks/s':>14} {'open s cold/warm':>16} {'p50 ms':>8} "
                     f"{'p95 ms':>8} {'recall@10':>9}")
        for n, x in milvus:
            faiss_x = report["results"][str(n)]["exact"]
            lines.append(f"{_n(n):>5} {'faiss exact':<12} {n / faiss_x['build_s']:>14.0f} {'':>16} "
                         f"{faiss_x['p50_ms']:>8.2f} {faiss_x['p95_ms']:>8.2f} {faiss_x['recall_at_10']:>9.3f}")
            opened = f"{x['open_s']:.1f} / " + (f"{x['open_warm_s']:.2f}" if "open_warm_s" in x else "-")
            lines.append(f"{_n(n):>5} {'milvus-lite':<12} {x['ingest_chunks_per_s']:>14.0f} {opened:>16} "
                         f"{x['p50_ms']:>8.2f} {x['p95_ms']:>8.2f} {x['recall_at_10']:>9.3f}")
        lines.append("write chunks/s: FAISS = vectors added to IndexFlatIP per second (build only); Milvus = chunk "
                     "rows (JSON + vector) written per second through MilvusWriter.write_file, files of 500, "
                     "each switched in; open s: a reader's open, cold (snapshot load + client-side BM25 builds, "
                     "then cached on disk) / warm (the next reader, from that cache)")
    lines.append("")
    lines.append("build s: wall clock; cpu s: CPU time of this process (all threads) during the build")
    lines.append("bm25+: term-expansion scoring (rag/terms.py) on the same index, 10 neighbours per query token")
    lines.append("mem MiB / B/vec: RSS delta of the build (per vector; per chunk for bm25); struct: index arrays "
                 "per vector; x raw: RSS delta / (N x 512 x 4 B)")
    if cached:
        lines.append("* build time measured when the index was first built and cached (--rebuild to redo): "
                     + "; ".join(cached))
    extra = []
    for n_str, r in sorted(report["results"].items(), key=lambda kv: int(kv[0])):
        e = r.get("exact", {})
        multi = [k for k in e if k.startswith("p50_ms_") and k.endswith("_threads")]
        if multi:
            extra.append(f"{_n(int(n_str))}: {e[multi[0]]:.2f} ms")
    if extra:
        lines.append(f"exact p50 with {meta['build_threads']} OpenMP threads on a single query: " + ", ".join(extra))
    bm = [f"{_n(int(n))}: vocab {r['bm25']['vocabulary']:,}, postings {r['bm25']['postings']:,}, "
          f"tokens/chunk p50 {r['bm25']['tokens_per_chunk']['p50']:.0f}"
          for n, r in sorted(report["results"].items(), key=lambda kv: int(kv[0])) if "bm25" in r]
    if bm:
        lines.append("bm25 corpus: " + "; ".join(bm))
    lines.append("")
    lines.append("HNSW efSearch sweep (p50 ms / recall@10):")
    for n_str, r in sorted(report["results"].items(), key=lambda kv: int(kv[0])):
        if "hnsw" in r:
            cells = [f"ef {s['ef_search']}: {s['p50_ms']:.2f}/{s['recall_at_10']:.3f}" for s in r["hnsw"]["ef_sweep"]]
            lines.append(f"  {_n(int(n_str)):>5}  " + "  ".join(cells))
    qc = [f"{_n(int(n))}: {r['query_top1_cosine']['p50']:.2f}" for n, r in
          sorted(report["results"].items(), key=lambda kv: int(kv[0])) if "query_top1_cosine" in r]
    if qc:
        lines.append("query top-1 cosine (median): " + ", ".join(qc))
    lines.append("")
    rule = report["auto_threshold"]
    lines.append(f"Auto exact-vs-HNSW rule: {rule['rule']}")
    if rule.get("crossing_n") is not None:
        state = "consistent" if rule["consistent"] else "NOT consistent"
        lines.append(f"  rag.vectors.HNSW_AUTO_THRESHOLD = {rule['current_store_threshold']:,} ({state} with the "
                     f"measured crossing)")
    lines.append("")
    lines.append("Targets:")
    for t in report["targets"]:
        value = f"{t['value']:.3f}" if isinstance(t["value"], float) else str(t["value"])
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {value} (target {t['limit']})")
    lines.append(f"\nwall time {meta['wall_s']:.0f}s")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter

    results = report["results"]
    meta = report["meta"]
    ns = sorted(int(n) for n in results)
    fig, ax = plt.subplots(figsize=(9, 6.5), dpi=120)
    series = [("exact", "exact (IndexFlatIP)", "tab:red", "o"),
              ("hnsw", f"HNSW (M={meta['hnsw_M']}, efC={meta['hnsw_ef_construction']}, "
                       f"efSearch={meta['hnsw_ef_search']})", "tab:blue", "s"),
              ("bm25", "BM25 (LexicalIndex)", "tab:green", "^")]
    for key, label, color, marker in series:
        xs = [n for n in ns if key in results[str(n)]]
        if not xs:
            continue
        p50 = [results[str(n)][key]["p50_ms"] for n in xs]
        p95 = [results[str(n)][key]["p95_ms"] for n in xs]
        ax.plot(xs, p50, marker=marker, color=color, lw=2, label=f"{label} p50")
        ax.plot(xs, p95, marker=marker, color=color, lw=1, ls="--", alpha=0.5, label=f"{label} p95")
        for n, v in zip(xs, p50):
            text = f"{v:.2f}" if v < 10 else f"{v:.0f}"
            if key == "hnsw":
                text += f"\nr@10 {results[str(n)][key]['recall_at_10']:.2f}"
            above = key == "exact"
            ax.annotate(text, (n, v), textcoords="offset points", xytext=(7, 4 if above else -4), fontsize=8,
                        color=color, va="bottom" if above else "top")
    for y, text, color in [(EXACT_BUDGET_MS, "20 ms: exact budget", "tab:red"),
                           (TARGETS["bm25_1m_p50_ms"], "10 ms: BM25 target at 1M", "tab:green"),
                           (TARGETS["hnsw_1m_p50_ms"], "5 ms: HNSW target at 1M", "tab:blue")]:
        ax.axhline(y, color=color, ls=":", lw=1, alpha=0.6)
        ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 2),
                    textcoords="offset points", ha="right", va="bottom", fontsize=7, color=color)
    rule = report["auto_threshold"]
    if rule.get("suggested_threshold"):
        ax.axvline(rule["suggested_threshold"], color="purple", ls="-.", lw=1, alpha=0.7)
        ax.annotate(f"auto: HNSW above\nN = {rule['suggested_threshold']:,}", (rule["suggested_threshold"], 0.0),
                    xycoords=("data", "axes fraction"), xytext=(4, 4), textcoords="offset points",
                    ha="left", va="bottom", fontsize=8, color="purple")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(ns[0] / 1.6, ns[-1] * 2.2)
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ns, [_n(n) for n in ns])
    ax.set_xlabel("chunks in the index (N)")
    ax.set_ylabel("single-query latency, ms (log)")
    ax.set_title(f"Query latency vs N: dim {meta['dim']}, k={K}, {meta['n_queries']} queries, "
                 f"{meta['query_threads']} query thread, {meta['cpu_count']}-core {meta['cpu']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    global _quiet
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"sizes {','.join(map(str, QUICK_SIZES))} only")
    parser.add_argument("--sizes", help=f"comma-separated N (default {','.join(map(str, FULL_SIZES))})")
    parser.add_argument("--json", action="store_true", help="print the JSON report only")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--queries", type=int, default=200, help="single queries per measurement (default 200)")
    parser.add_argument("--query-threads", type=int, default=1,
                        help="OpenMP threads while timing single queries (default 1)")
    parser.add_argument("--vectors", choices=["anisotropic", "isotropic"], default="anisotropic",
                        help="synthetic vector distribution (default anisotropic, see the module docstring)")
    parser.add_argument("--no-bm25", action="store_true", help="dense indexes only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-milvus", action="store_true", help="skip the Milvus Lite store")
    parser.add_argument("--milvus-max", type=int, default=100_000,
                        help="largest N run on Milvus Lite (default 100000: it ingests ~1-2k chunks/s here)")
    parser.add_argument("--milvus-queries", type=int, default=50,
                        help="single queries per Milvus measurement (default 50)")
    parser.add_argument("--cache-min", type=int, default=1_000_000,
                        help="save HNSW and BM25 builds of at least this many chunks under OUT/cache and "
                             "reuse them (their build time is the one measured when built; default 1000000)")
    parser.add_argument("--rebuild", action="store_true", help="ignore cached builds (and replace them)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="output folder")
    args = parser.parse_args(argv)
    _quiet = args.quiet or args.json
    if args.sizes:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    else:
        sizes = QUICK_SIZES if args.quick else FULL_SIZES

    import bm25s
    import faiss

    from rag import vectors as store  # the FAISS helpers and HNSW_* constants

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    build_threads = faiss.omp_get_max_threads()
    log(f"sizes {sizes}; build threads {build_threads}, query threads {args.query_threads}")
    vocab = None if args.no_bm25 else build_vocabularies(args.seed)
    results: dict = {}
    for n in sizes:
        results[str(n)] = bench_dense(n, args)
        if not args.no_bm25:
            results[str(n)]["bm25"] = bench_bm25(n, args, vocab)
        if not args.no_milvus and n <= args.milvus_max:
            try:
                import pymilvus  # noqa: F401
            except ImportError:
                log("  milvus: pymilvus not installed (pip install 'rag-docs[milvus]'): skipped")
            else:
                results[str(n)]["milvus"] = bench_milvus(n, args, vocab)
    report = {
        "meta": {
            "dim": DIM, "k": K, "n_queries": args.queries, "sizes": sizes, "vectors": args.vectors,
            "seed": args.seed, "build_threads": build_threads, "query_threads": args.query_threads,
            "hnsw_M": store.HNSW_M, "hnsw_ef_construction": store.HNSW_EF_CONSTRUCTION,
            "hnsw_ef_search": store.HNSW_EF_SEARCH, "hnsw_auto_threshold": store.HNSW_AUTO_THRESHOLD,
            "faiss": faiss.__version__, "bm25s": bm25s.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "quick": args.quick, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_1min_at_start": load_start,
        },
        "results": results,
    }
    report["auto_threshold"] = derive_threshold(results, store.HNSW_AUTO_THRESHOLD)
    report["targets"] = check_targets(results)
    report["meta"]["wall_s"] = time.perf_counter() - started
    report["meta"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(report, out / "scaling.png")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
        print(f"wrote {out / 'scaling.json'} and {out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
