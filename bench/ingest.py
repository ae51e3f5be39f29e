#!/usr/bin/env python
"""Ingest benchmark on the shared corpus (../shared/corpus/pdf and txt).

Measured in one process, with the embedder (use-multilingual) loaded once before
any timing (its load time is reported on its own):

A  pipeline      ingest(files, tmp_index, rebuild=True, progress=False): load, clean,
                 chunk, embed, write FAISS + BM25. chunks/s = chunks / wall time.
                 The pipeline embeds each chunk's embedding_text, its sentence
                 windows (window_chars > 0) and the corpus terms (rag/terms.py) ("texts").
E  re-ingest     the same call without rebuild right after A: nothing changed, so
                 nothing is embedded; reported as a fraction of A's time
B  bare encode   embedder.model.encode(texts, batch_size=64) of exactly the texts A
                 embedded (embedding_text of the built index's chunks, their
                 sentence windows, the index's term vocabulary); pipeline overhead = bare throughput / pipeline
                 throughput on those same texts (= pipeline time / bare time)
C  LangChain     a naive LangChain pipeline over the same documents: load_document,
                 the same splitter (ingest.chunking.make_splitter), then
                 langchain_community FAISS.from_texts with the same model wrapped as
                 a LangChain Embeddings class (one vector per chunk, no windows)
D  ~800 chars    embedder.embed_passages on ~800-character passages cut from the
                 txt corpus, round-robin over its five documents (all languages)
T  threads       the USE forward pass with 1 vs 2 BLAS threads on passage batches
                 (rag/embedders/use.py USEModule.threads; inputs under 384 tokens,
                 i.e. single queries, always use 1 thread)

Timed sections repeat (3 times; --quick: 2 times on one PDF) with the contenders
interleaved A,E,B,C,D,A,E,B,C,D,... (and 1,2,2,1,... for the thread counts) so
that load from other processes hits all of them alike; medians are reported.

    python bench/ingest.py               # whole corpus (10 files)
    python bench/ingest.py --quick       # one PDF, well under a minute on an idle machine
    python bench/ingest.py --threads 1   # sections A-D with 1 BLAS thread
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.setup_path()

EMBEDDER = "use-multilingual"
TARGET_OVERHEAD = 0.9  # pipeline throughput >= 0.9 x bare encode of the same texts
TARGET_800 = 50.0  # chunks/s on ~800-character chunks
TARGET_REINGEST = 0.10  # unchanged re-ingest < 10% of the first ingest
QUICK_FILES = ["pdf/003_53679c8f7bc64ce6.pdf"]  # the fewest embedded texts of the PDFs


def passages_800(files: list[Path], n: int, size: int = 800) -> list[str]:
    """``n`` passages of about ``size`` characters, cut at whitespace where there is
    some, taken round-robin from the documents (so every language is in the mix)."""
    from rag.ingest.loaders import load_document

    per_doc: list[list[str]] = []
    for path in files:
        text = "\n".join(r.text for r in load_document(path))
        pieces, pos = [], 0
        while pos + size // 2 < len(text):
            end = min(len(text), pos + size)
            cut = text.rfind(" ", pos + int(size * 0.85), end + 1) if end < len(text) else end
            end = cut if cut > pos else end
            piece = text[pos:end].strip()
            if len(piece) >= size * 0.8:
                pieces.append(piece)
            pos = end
        per_doc.append(pieces)
    out: list[str] = []
    i = 0
    while len(out) < n and any(i < len(p) for p in per_doc):
        out.extend(p[i] for p in per_doc if i < len(p))
        i += 1
    return out[:n]


def pipeline_texts(index_dir: Path) -> tuple[list[str], int]:
    """(texts the pipeline embedded for the index at ``index_dir``, number of chunks):
    each chunk's embedding_text followed by its sentence windows, as ingest does,
    then the index's corpus terms."""
    from rag import text as chunking
    from rag.store import load_index, read_manifest

    index = load_index(index_dir)
    chunks = index.chunks
    window_chars = int(read_manifest(index_dir).get("chunker", {}).get("window_chars", 0) or 0)
    windows = getattr(chunking, "sentence_windows", None)
    texts: list[str] = []
    for chunk in chunks:
        texts.append(chunk.embedding_text())
        if windows is not None and window_chars > 0:
            texts.extend(windows(chunk.text, window_chars))
    texts.extend(index.terms.vocab if getattr(index, "terms", None) is not None else [])
    return texts, len(chunks)


def langchain_embeddings(model):
    from langchain_core.embeddings import Embeddings

    class EncodeEmbeddings(Embeddings):
        """The project's SentenceTransformer, called the way LangChain calls a model."""

        def embed_documents(self, texts):
            return model.encode(list(texts), batch_size=64).tolist()

        def embed_query(self, text):
            return model.encode([text])[0].tolist()

    return EncodeEmbeddings()


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, help="timed repeats (default 3, --quick 2)")
    p.add_argument("--threads", type=int, help="BLAS threads of the USE model for sections A-D "
                                               "(default: the model's own default)")
    p.add_argument("--no-langchain", action="store_true", help="skip the LangChain comparison")
    args = p.parse_args(argv)
    quiet = args.quiet or args.json
    log = common.Log(quiet)
    repeats = max(1, args.repeats or (2 if args.quick else 3))
    started = time.perf_counter()
    meta = common.machine()

    if args.quick:
        files = [common.shared_path("corpus", *name.split("/")) for name in QUICK_FILES]
    else:
        files = common.corpus_files("pdf") + common.corpus_files("txt")
    n_800 = 16 if args.quick else 128
    n_thread = 16 if args.quick else 128

    # ------------------------------------------------------------------ model load
    import numpy as np

    t0 = time.perf_counter()
    from rag.embedders import get_embedder

    embedder = get_embedder(EMBEDDER)
    model_load_s = time.perf_counter() - t0
    model = embedder.model
    use_module = model[0]
    default_threads = getattr(use_module, "threads", None)
    if args.threads:
        use_module.threads = args.threads
    bench_threads = getattr(use_module, "threads", None)
    log(f"embedder {EMBEDDER} loaded in {model_load_s:.1f}s (BLAS threads: default {default_threads}, "
        f"used {bench_threads})")

    from rag.ingest.chunking import ChunkerSettings, make_splitter
    from rag.ingest.loaders import load_document
    from rag.ingest.pipeline import ingest

    lc_error = None
    FAISS = None
    if args.no_langchain:
        lc_error = "skipped (--no-langchain)"
    else:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from langchain_community.vectorstores import FAISS
        except ImportError as exc:
            lc_error = (f"not run: langchain-community is not installed ({exc}); "
                        "pip install -e '.[bench]' adds it")
            log(lc_error)

    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    try:
        # Warm-up (untimed): the first calls import pypdf, the splitter, faiss and
        # bm25s, and run the model's code paths once.
        # A tiny file keeps this cheap; reading one page of a PDF warms the PDF loader.
        warm_file = workdir / "warmup.txt"
        warm_file.write_text("# Warm-up\n\n" + "This paragraph only warms up the code paths. " * 12 + "\n\n"
                             + "Un paragrafo in italiano. 中文的句子。 한국어 문장입니다. " * 4, encoding="utf-8")
        warm = ingest([warm_file], workdir / "warmup", rebuild=True, progress=False)
        pdfs = [f for f in files if f.suffix.lower() == ".pdf"]
        if pdfs:
            import pypdf

            pypdf.PdfReader(str(pdfs[0])).pages[0].extract_text()
        embedder.embed_passages(["warm-up passage " * 20] * 8)
        log(f"warm-up ingest of a {warm.chunks}-chunk file: {warm.seconds:.1f}s")

        # from the txt corpus whatever the files ingested: the five documents, every language
        sample_800 = passages_800(common.corpus_files("txt"), n_800)
        tokens_800 = [embedder.count_tokens(t) for t in sample_800]
        index_dir = workdir / "index"

        pipeline_s, pipeline_embed_s, reingest_s, bare_s, lc_s, d800_s = [], [], [], [], [], []
        lc_parts: list[dict] = []
        texts: list[str] | None = None
        n_chunks = n_texts = n_lc_chunks = 0
        summary = None
        load_per_repeat: list[float | None] = []
        for rep in range(repeats):
            load_per_repeat.append((common.load_average() or [None])[0])
            # A: whole pipeline, from files to a published index version
            summary = ingest(files, index_dir, rebuild=True, progress=False)
            if summary.failed:
                sys.exit("bench: ingest failed: "
                         + "; ".join(r.line() for r in summary.reports if r.status == "failed"))
            pipeline_s.append(summary.seconds)
            pipeline_embed_s.append(summary.embed_seconds)
            # E: unchanged re-ingest
            t, again = common.timed(ingest, files, index_dir, progress=False)
            if again.chunks_embedded:
                sys.exit(f"bench: re-ingest of unchanged files embedded {again.chunks_embedded} chunks")
            reingest_s.append(t)
            if texts is None:
                texts, n_chunks = pipeline_texts(index_dir)
                n_texts = (getattr(summary, "texts_embedded", summary.chunks_embedded) or summary.chunks_embedded) \
                    + getattr(summary, "terms_embedded", 0)
                if len(texts) != n_texts or n_chunks != summary.chunks_embedded:
                    log(f"warning: rebuilt {len(texts)} texts / {n_chunks} chunks, the pipeline reports "
                        f"{n_texts} / {summary.chunks_embedded}: bare encode is not the same work")
            # B: bare encode of exactly those texts
            t, _ = common.timed(model.encode, texts, batch_size=64)
            bare_s.append(t)
            # C: naive LangChain pipeline
            if FAISS is not None:
                c0 = time.perf_counter()
                lc_texts, metadatas = [], []
                loaded = [(path, load_document(path)) for path in files]
                c1 = time.perf_counter()
                splitter = make_splitter(ChunkerSettings(), embedder.count_tokens)
                for path, records in loaded:
                    for record in records:
                        for piece in splitter.split_text(record.text):
                            lc_texts.append(piece)
                            metadatas.append({"source": path.name, "page": record.page})
                c2 = time.perf_counter()
                store = FAISS.from_texts(lc_texts, langchain_embeddings(model), metadatas=metadatas)
                c3 = time.perf_counter()
                if store.index.ntotal != len(lc_texts):
                    sys.exit("bench: the LangChain FAISS store lost vectors")
                lc_s.append(c3 - c0)
                lc_parts.append({"load_s": c1 - c0, "split_s": c2 - c1, "embed_index_s": c3 - c2})
                n_lc_chunks = len(lc_texts)
                del store
            # D: ~800-character passages
            t, _ = common.timed(embedder.embed_passages, sample_800)
            d800_s.append(t)
            log(f"repeat {rep + 1}/{repeats}: pipeline {pipeline_s[-1]:.1f}s (embed {pipeline_embed_s[-1]:.1f}s), "
                f"re-ingest {reingest_s[-1]:.2f}s, bare encode {bare_s[-1]:.1f}s"
                + (f", langchain {lc_s[-1]:.1f}s" if lc_s else "") + f", 800-char {d800_s[-1]:.1f}s")

        # T: BLAS threads 1 vs 2 on batches of 64, as the pipeline sends them: corpus
        # chunk texts (an even sample across the corpus, long and short mixed) and
        # ~800-character passages. Each batch runs with 1 and with 2 threads back to
        # back (order alternating), so every pair sees the same machine load.
        chunk_only = _chunk_texts(index_dir)
        thread_sets = {
            "chunks": chunk_only[:: max(1, len(chunk_only) // n_thread)][:n_thread],
            "800": sample_800[:n_thread],
        }
        pairs: dict[str, list[dict]] = {k: [] for k in thread_sets}
        flip = 0
        try:
            for rep in range(repeats):
                for kind, passages in thread_sets.items():
                    for start in range(0, len(passages), 64):
                        batch = passages[start:start + 64]
                        pair = {"n": len(batch)}
                        for threads in ((1, 2) if flip % 2 == 0 else (2, 1)):
                            use_module.threads = threads
                            pair[str(threads)], _ = common.timed(embedder.embed_passages, batch)
                        flip += 1
                        pairs[kind].append(pair)
                log(f"threads repeat {rep + 1}/{repeats}: "
                    + ", ".join(f"{kind}: 1 thread {sum(x['1'] for x in v[-_nb(thread_sets[kind]):]):.1f}s, "
                                f"2 threads {sum(x['2'] for x in v[-_nb(thread_sets[kind]):]):.1f}s"
                                for kind, v in pairs.items()))
        finally:
            use_module.threads = default_threads
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = common.median
    pipeline_cps = n_chunks / med(pipeline_s)
    pipeline_tps = n_texts / med(pipeline_s)
    bare_tps = len(texts) / med(bare_s)
    overhead_ratio = bare_tps / pipeline_tps if len(texts) == n_texts else med(pipeline_s) / med(bare_s)
    lc_cps = n_lc_chunks / med(lc_s) if lc_s else None
    d800_cps = len(sample_800) / med(d800_s)
    reingest_frac = med(reingest_s) / med(pipeline_s)
    threads_report = {}
    for kind, v in pairs.items():
        n_pass = sum(x["n"] for x in v)
        row = {"passages": len(thread_sets[kind]), "batches_timed": len(v),
               "mean_chars": float(np.mean([len(t) for t in thread_sets[kind]])),
               "pairs": v}
        for th in ("1", "2"):
            row[f"chunks_per_s_{th}"] = n_pass / sum(x[th] for x in v)
            row[f"best_chunks_per_s_{th}"] = max(x["n"] / x[th] for x in v)
        ratios = [x["1"] / x["2"] for x in v]  # > 1: 2 threads faster on that batch
        row["speedup_2_over_1_median"] = common.median(ratios)
        row["pairs_won_by_2"] = sum(r > 1 for r in ratios)
        threads_report[kind] = row
    # Which is faster over the whole comparison: total time of the same batches. On a
    # shared machine 2 threads are fast while both cores are free and several times
    # slower while another process runs, so the total, not the typical pair, decides.
    total = {th: sum(x[th] for v in pairs.values() for x in v) for th in ("1", "2")}
    threads_report["total_s"] = total
    threads_report["total_speedup_2_over_1"] = total["1"] / total["2"]
    threads_report["faster"] = 1 if total["1"] <= total["2"] else 2

    results = {
        "corpus": {"files": [str(f.relative_to(common.SHARED)) for f in files], "pages": summary.pages,
                   "chunks": n_chunks, "texts_embedded": n_texts,
                   "mean_chunk_chars": float(np.mean([len(t) for t in chunk_only])),
                   "mean_text_chars": float(np.mean([len(t) for t in texts])),
                   "chunker": ChunkerSettings().describe()},
        "embedder": EMBEDDER,
        "model_load_s": model_load_s,
        "default_blas_threads": default_threads,
        "bench_blas_threads": bench_threads,
        "repeats": repeats,
        "pipeline": {"seconds": common.spread(pipeline_s), "embed_seconds": common.spread(pipeline_embed_s),
                     "non_embed_seconds": common.spread([a - b for a, b in zip(pipeline_s, pipeline_embed_s)]),
                     "chunks_per_s": pipeline_cps, "texts_per_s": pipeline_tps,
                     "embed_texts_per_s": n_texts / med(pipeline_embed_s)},
        "bare_encode": {"texts": len(texts), "seconds": common.spread(bare_s), "texts_per_s": bare_tps,
                        "chunks_per_s_equivalent": n_chunks / med(bare_s)},
        "overhead": {"bare_over_pipeline": overhead_ratio, "pipeline_over_bare": 1 / overhead_ratio,
                     "overhead_pct": (overhead_ratio - 1) * 100,
                     "best_bare_over_pipeline": min(pipeline_s) / min(bare_s)},
        "langchain": ({"seconds": common.spread(lc_s), "chunks": n_lc_chunks, "chunks_per_s": lc_cps,
                       "texts_per_s": lc_cps,
                       "parts_median": {k: med([x[k] for x in lc_parts]) for k in lc_parts[0]},
                       "pipeline_over_langchain_chunks_per_s": pipeline_cps / lc_cps,
                       "pipeline_over_langchain_texts_per_s": pipeline_tps / lc_cps}
                      if lc_s else {"error": lc_error}),
        "passages_800": {"n": len(sample_800), "mean_chars": float(np.mean([len(t) for t in sample_800])),
                         "mean_tokens": float(np.mean(tokens_800)), "seconds": common.spread(d800_s),
                         "chunks_per_s": d800_cps, "blas_threads": bench_threads},
        "reingest_unchanged": {"seconds": common.spread(reingest_s), "fraction_of_first": reingest_frac},
        "blas_threads": threads_report,
        "load_average_1min_per_repeat": load_per_repeat,
    }
    targets = [
        common.target("pipeline / bare encode throughput (same texts)", 1 / overhead_ratio, ">=", TARGET_OVERHEAD),
        common.target(f"embedder chunks/s on ~800-char chunks ({bench_threads} BLAS threads)", d800_cps, ">=",
                      TARGET_800),
        common.target("unchanged re-ingest / first ingest", reingest_frac, "<", TARGET_REINGEST),
    ]
    headline = [
        {"metric": "embedder load (s)", "value": model_load_s},
        {"metric": "pipeline chunks/s", "value": pipeline_cps},
        {"metric": "pipeline texts/s (chunks + windows)", "value": pipeline_tps},
        {"metric": "bare model.encode texts/s (same texts)", "value": bare_tps},
        {"metric": "LangChain load+split+FAISS.from_texts chunks/s", "value": lc_cps},
        {"metric": "USE BLAS threads, 2 vs 1 (total time of the same batches)",
         "value": f"{threads_report['total_speedup_2_over_1']:.2f}x -> {threads_report['faster']} faster"},
        {"metric": "USE chunks/s, 1 / 2 BLAS threads (corpus chunks)",
         "value": f"{threads_report['chunks']['chunks_per_s_1']:.1f} / {threads_report['chunks']['chunks_per_s_2']:.1f}"},
        {"metric": "USE chunks/s, 1 / 2 BLAS threads (~800 chars)",
         "value": f"{threads_report['800']['chunks_per_s_1']:.1f} / {threads_report['800']['chunks_per_s_2']:.1f}"},
    ]
    meta.update(wall_s=time.perf_counter() - started, quick=args.quick, load_average_at_end=common.load_average())
    report = {"meta": meta, "results": results, "headline": headline, "targets": targets}
    common.emit("ingest", report, format_table(report), args.json)
    return 0


def _chunk_texts(index_dir: Path) -> list[str]:
    from rag.store import load_index

    return [c.embedding_text() for c in load_index(index_dir).chunks]


def format_table(report: dict) -> str:
    r, meta = report["results"], report["meta"]
    med = lambda x: x["seconds"]["median"]  # noqa: E731
    c = r["corpus"]
    n, nt = c["chunks"], c["texts_embedded"]
    pl = r["pipeline"]
    lines = [
        f"Ingest benchmark: {len(c['files'])} files, {c['pages']} pages -> {n} chunks (mean {c['mean_chunk_chars']:.0f} "
        f"chars) + sentence windows = {nt} embedded texts (mean {c['mean_text_chars']:.0f} chars)",
        f"embedder {r['embedder']} loaded in {r['model_load_s']:.1f}s; BLAS threads {r['bench_blas_threads']} "
        f"(model default {r['default_blas_threads']}); medians of {r['repeats']} interleaved repeats",
        f"{meta.get('cpu', '?')}, {meta['cpu_count']} cores; load average (1, 5, 15 min) "
        f"{meta['load_average_at_start']} at start, {meta['load_average_at_end']} at end",
        "",
    ]
    best = lambda x: x["seconds"]["min"]  # noqa: E731
    rows = [
        ["A pipeline ingest(rebuild=True)", n, nt, med(pl), best(pl), pl["chunks_per_s"], pl["texts_per_s"],
         _runs(pl["seconds"])],
        ["    embedding part", n, nt, pl["embed_seconds"]["median"], pl["embed_seconds"]["min"],
         n / pl["embed_seconds"]["median"], pl["embed_texts_per_s"], _runs(pl["embed_seconds"])],
        ["    load+chunk+write part", "", "", pl["non_embed_seconds"]["median"], pl["non_embed_seconds"]["min"],
         None, None, _runs(pl["non_embed_seconds"])],
        ["B bare model.encode, same texts", n, r["bare_encode"]["texts"], med(r["bare_encode"]),
         best(r["bare_encode"]), r["bare_encode"]["chunks_per_s_equivalent"], r["bare_encode"]["texts_per_s"],
         _runs(r["bare_encode"]["seconds"])],
    ]
    lc = r["langchain"]
    if "error" in lc:
        rows.append(["C LangChain", "", "", None, None, None, None, lc["error"]])
    else:
        parts = lc["parts_median"]
        rows.append(["C LangChain load+split+from_texts", lc["chunks"], lc["chunks"], med(lc), best(lc),
                     lc["chunks_per_s"], lc["chunks_per_s"], _runs(lc["seconds"]) + f"  (load {parts['load_s']:.2f}, "
                     f"split {parts['split_s']:.2f}, embed+FAISS {parts['embed_index_s']:.2f})"])
    d = r["passages_800"]
    rows.append(["D embed_passages ~800-char", d["n"], d["n"], med(d), best(d), d["chunks_per_s"], d["chunks_per_s"],
                 _runs(d["seconds"]) + f"  (mean {d['mean_chars']:.0f} chars, {d['mean_tokens']:.0f} tokens)"])
    e = r["reingest_unchanged"]
    rows.append(["E re-ingest, nothing changed", 0, 0, med(e), best(e), None, None, _runs(e["seconds"])])
    lines.append(common.table(["section", "chunks", "texts", "median s", "best s", "chunks/s", "texts/s",
                               "runs (s)"], rows, "lrrrrrrl"))
    lines.append("chunks/s and texts/s from the median time")
    o = r["overhead"]
    lines += [
        "",
        f"pipeline overhead: bare encode / pipeline throughput on the same {nt} texts = "
        f"{o['bare_over_pipeline']:.3f} (pipeline at {o['pipeline_over_bare']:.1%} of bare; "
        f"overhead {o['overhead_pct']:+.1f}%); best runs: {o['best_bare_over_pipeline']:.3f}",
    ]
    if "error" not in lc:
        lines.append(
            f"pipeline vs naive LangChain: {lc['pipeline_over_langchain_chunks_per_s']:.2f}x its chunks/s "
            f"({lc['pipeline_over_langchain_texts_per_s']:.2f}x its texts/s; LangChain embeds 1 text per chunk, "
            f"the pipeline {nt / max(1, n):.1f})")
    lines.append(f"unchanged re-ingest: {e['fraction_of_first']:.2%} of the first ingest")
    t = r["blas_threads"]
    names = {"chunks": "corpus chunks", "800": "~800-char passages"}
    lines += [
        "",
        f"USE BLAS threads 1 vs 2: embed_passages on batches of 64, each batch timed with 1 and 2 threads back "
        f"to back (order alternating), {r['repeats']} repeats:",
        common.table(
            ["passages", "batches", "1 thread /s", "2 threads /s", "best 1 /s", "best 2 /s",
             "2-vs-1 speedup (median pair)", "pairs 2 won"],
            [[f"{names[k]} (mean {t[k]['mean_chars']:.0f} chars)", t[k]["batches_timed"], t[k]["chunks_per_s_1"],
              t[k]["chunks_per_s_2"], t[k]["best_chunks_per_s_1"], t[k]["best_chunks_per_s_2"],
              t[k]["speedup_2_over_1_median"], f"{t[k]['pairs_won_by_2']}/{t[k]['batches_timed']}"]
             for k in ("chunks", "800")], "lrrrrrrr"),
        f"all batches: {t['total_s']['1']:.1f}s with 1 thread, {t['total_s']['2']:.1f}s with 2 "
        f"(2 threads {t['total_speedup_2_over_1']:.2f}x as fast) -> faster here: {t['faster']} "
        f"thread{'s' if t['faster'] > 1 else ''}; 1-min load average per repeat: "
        f"{r.get('load_average_1min_per_repeat')}",
        "",
        common.targets_block(report["targets"]),
        f"\nwall time {meta['wall_s']:.0f}s",
    ]
    return "\n".join(lines)


def _nb(passages: list) -> int:
    return (len(passages) + 63) // 64


def _runs(spread: dict) -> str:
    return " ".join(f"{v:.2f}" if v < 10 else f"{v:.1f}" for v in spread["runs"])


if __name__ == "__main__":
    sys.exit(main())
