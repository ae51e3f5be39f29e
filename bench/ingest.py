#!/usr/bin/env python
"""Ingest benchmark on the shared corpus (../shared/corpus/pdf and txt): the pipeline
today (fast USE forward) against the pipeline before it, LangChain and a bare encode.

Measured in one process, both embedders loaded before any timing:

A  pipeline      ingest(files, tmp_index, rebuild=True, progress=False) with
                 use-multilingual: load, clean, chunk, embed (chunks, their sentence
                 windows, new corpus terms), write FAISS + BM25. chunks/s = chunks / wall.
O  old pipeline  the same call with embed_model="use-multilingual-reference": the
                 package's own numpy forward, every text embedded whole, one thread
                 (the path of commit bec0b59 and before; same vectors), files
                 parsed in the ingest's process as then (parse_workers=0)
E  re-ingest     A again without rebuild: nothing changed, nothing embedded
B  bare encode   embedder.embed_passages(texts): exactly the texts A embedded, as
                 one flat list (no window reuse); pipeline / bare = A's overhead
C  LangChain     a naive LangChain pipeline over the same documents: load_document,
                 the same splitter, langchain_community FAISS.from_texts with the
                 model as LangChain users wire it: its SentenceTransformer's encode
                 (the reference forward), one vector per chunk, no windows, no terms
C2 LangChain+    the same naive pipeline with our fast encoder as its Embeddings
D  ~800 chars    embedder.embed_passages on ~800-character passages cut from the txt
                 corpus, round-robin over its five documents (all languages)
Q  query         embed_query on each dev question, p50/p95 in ms, both paths
M  memory        peak RSS (VmHWM) of a fresh process ingesting the whole corpus,
                 each path (a subprocess each; --no-rss skips)
R  retrieval     hit@5 / MRR@5 of the default settings (bench/retrieval.py's
                 evaluate) on txt and pdf indexes built by each path (--no-retrieval skips)

Timed sections repeat (3 times; --quick: 2 times on one PDF), interleaved
A,O,E,B,C,C2,D,A,O,... so that load from other processes hits all of them alike;
medians are reported, ratios come from the same run.

    python bench/ingest.py                 # whole corpus (10 files)
    python bench/ingest.py --quick         # one PDF, no memory/retrieval sections
    python bench/ingest.py --repeats 2 --json
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.setup_path()

EMBEDDER = "use-multilingual"
REFERENCE = "use-multilingual-reference"
TARGET_SPEEDUP = 3.0  # end-to-end chunks/s over the old pipeline, same run
TARGET_QUERY_MS = 3.0  # p50 of embedding a one-line question
TARGET_REINGEST = 0.10  # unchanged re-ingest < 10% of the first ingest
QUICK_FILES = ["pdf/003_53679c8f7bc64ce6.pdf"]  # the fewest embedded texts of the PDFs

RSS_SCRIPT = """
import json, resource, sys, tempfile, time
from pathlib import Path
from rag.ingest.pipeline import ingest
files = [Path(p) for p in json.loads(sys.argv[2])]
t0 = time.perf_counter()
s = ingest(files, Path(tempfile.mkdtemp()) / "index", rebuild=True, progress=False, embed_model=sys.argv[1],
           parse_workers=0 if sys.argv[1].endswith("-reference") else None)  # the old path parsed in process
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big
# process would report its parent's peak
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mib": peak,
                  "seconds": time.perf_counter() - t0, "chunks": s.chunks}))
"""

# Section Q in a fresh process, as a process serving questions runs it: in the bench's
# own process the LangChain rows leave torch and its thread pools behind, and the fast
# path's p50 went from 2.5 to 3.5 ms after a SentenceTransformer encode (measured).
# The two paths alternate pass by pass (load hits both alike); interleaving them
# question by question made each evict the other's weights from the CPU caches.
QUERY_SCRIPT = """
import json, sys, time
from rag.embedders import get_embedder
names, questions, passes = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
embedders = {name: get_embedder(name) for name in names}
wall = {name: [] for name in names}
cpu = {name: [] for name in names}
for _ in range(passes):
    for name, e in embedders.items():
        e.embed_query(questions[0])  # this pass's first call pays the cache refill
        for question in questions:
            # CPU time of this thread too: on a shared machine the wall time is mostly
            # waiting for a core
            c0, t0 = time.thread_time(), time.perf_counter()
            e.embed_query(question)
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.thread_time() - c0) * 1000)
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def query_timings(questions: list[str], passes: int) -> tuple[dict, dict]:
    """({model: [ms per question]} wall, the same in thread CPU) from a fresh process."""
    proc = subprocess.run([sys.executable, "-c", QUERY_SCRIPT, json.dumps([EMBEDDER, REFERENCE]),
                           json.dumps(questions), str(passes)],
                          capture_output=True, text=True, cwd=str(common.ROOT))
    if proc.returncode != 0:
        sys.exit("bench: the query-embedding process failed: "
                 + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["wall"], result["cpu"]


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
    each chunk's embedding_text followed by its sentence windows, then the terms."""
    from rag import text as chunking
    from rag.store import load_index, read_manifest

    index = load_index(index_dir)
    window_chars = int(read_manifest(index_dir).get("chunker", {}).get("window_chars", 0) or 0)
    texts: list[str] = []
    for chunk in index.chunks:
        texts.append(chunk.embedding_text())
        if window_chars > 0:
            texts.extend(chunking.sentence_windows(chunk.text, window_chars))
    texts.extend(index.terms.vocab if getattr(index, "terms", None) is not None else [])
    return texts, len(index.chunks)


def langchain_embeddings(encode_documents, encode_query):
    from langchain_core.embeddings import Embeddings

    class EncodeEmbeddings(Embeddings):
        def embed_documents(self, texts):
            return encode_documents(list(texts)).tolist()

        def embed_query(self, text):
            return encode_query(text).tolist()

    return EncodeEmbeddings()


def peak_rss(model: str, files: list[Path]) -> dict:
    """Peak RSS of a fresh process that ingests ``files`` with ``model``."""
    proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT, model, json.dumps([str(f) for f in files])],
                          capture_output=True, text=True, cwd=str(common.ROOT))
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def retrieval_figures(model: str, workdir: Path) -> dict:
    """hit@5 / MRR@5 (default settings) per corpus and question file, as bench/retrieval.py."""
    import retrieval as rb  # bench/retrieval.py

    from rag.ingest.pipeline import ingest
    from rag.settings import RetrievalSettings
    from rag.store import load_index

    sets = {f.stem: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
            for f in rb.QUESTION_FILES if f.exists()}
    out = {}
    for corpus in ("txt", "pdf"):
        target = workdir / f"retrieval-{corpus}-{model}"
        ingest([common.shared_path("corpus", corpus)], target, embed_model=model, progress=False)
        index = load_index(target)
        out[corpus] = {stem: rb.evaluate(index, qs, RetrievalSettings(k=5)) for stem, qs in sets.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, help="timed repeats (default 3, --quick 2)")
    p.add_argument("--no-langchain", action="store_true", help="skip the LangChain comparisons")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--no-retrieval", action="store_true", help="skip the retrieval figures")
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

    import numpy as np

    from rag.embedders import get_embedder

    t0 = time.perf_counter()
    embedder = get_embedder(EMBEDDER)
    model_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = get_embedder(REFERENCE)
    reference_load_s = time.perf_counter() - t0
    log(f"embedders loaded: {EMBEDDER} {model_load_s:.1f}s (workers {embedder.workers}), "
        f"{REFERENCE} {reference_load_s:.1f}s")

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
    lc_naive = langchain_embeddings(
        lambda texts: reference.model.encode(texts, batch_size=64),
        lambda text: reference.model.encode([text])[0])
    lc_fast = langchain_embeddings(embedder.embed_passages, embedder.embed_query)

    def langchain_run(embeddings) -> tuple[float, int, dict]:
        c0 = time.perf_counter()
        loaded = [(path, load_document(path)) for path in files]
        c1 = time.perf_counter()
        splitter = make_splitter(ChunkerSettings(), embedder.count_tokens)
        lc_texts, metadatas = [], []
        for path, records in loaded:
            for record in records:
                for piece in splitter.split_text(record.text):
                    lc_texts.append(piece)
                    metadatas.append({"source": path.name, "page": record.page})
        c2 = time.perf_counter()
        store = FAISS.from_texts(lc_texts, embeddings, metadatas=metadatas)
        c3 = time.perf_counter()
        if store.index.ntotal != len(lc_texts):
            sys.exit("bench: the LangChain FAISS store lost vectors")
        return c3 - c0, len(lc_texts), {"load_s": c1 - c0, "split_s": c2 - c1, "embed_index_s": c3 - c2}

    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    try:
        # Warm-up (untimed): imports (pypdf, the splitter, faiss, bm25s, jieba) and
        # both embedders' code paths, on a tiny file.
        warm_file = workdir / "warmup.txt"
        warm_file.write_text("# Warm-up\n\n" + "This paragraph only warms up the code paths. " * 12 + "\n\n"
                             + "Un paragrafo in italiano. 中文的句子。 한국어 문장입니다. " * 4, encoding="utf-8")
        for model in (EMBEDDER, REFERENCE):
            ingest([warm_file], workdir / f"warmup-{model}", rebuild=True, progress=False, embed_model=model)
        pdfs = [f for f in files if f.suffix.lower() == ".pdf"]
        if pdfs:
            import pypdf

            pypdf.PdfReader(str(pdfs[0])).pages[0].extract_text()
        sample_800 = passages_800(common.corpus_files("txt"), n_800)
        tokens_800 = [embedder.count_tokens(t) for t in sample_800]
        index_dir, old_dir = workdir / "index", workdir / "index-old"

        times: dict[str, list[float]] = {k: [] for k in ("A", "A_embed", "O", "O_embed", "E", "B", "C", "C2", "D")}
        lc_parts: dict[str, list[dict]] = {"C": [], "C2": []}
        texts: list[str] | None = None
        n_chunks = n_texts = n_lc_chunks = 0
        summary = None
        load_per_repeat: list[float | None] = []
        for rep in range(repeats):
            load_per_repeat.append((common.load_average() or [None])[0])
            summary = ingest(files, index_dir, rebuild=True, progress=False)  # A
            if summary.failed:
                sys.exit("bench: ingest failed: "
                         + "; ".join(r.line() for r in summary.reports if r.status == "failed"))
            times["A"].append(summary.seconds)
            times["A_embed"].append(summary.embed_seconds)
            old = ingest(files, old_dir, rebuild=True, progress=False, embed_model=REFERENCE, parse_workers=0)  # O
            times["O"].append(old.seconds)
            times["O_embed"].append(old.embed_seconds)
            t, again = common.timed(ingest, files, index_dir, progress=False)  # E
            if again.chunks_embedded:
                sys.exit(f"bench: re-ingest of unchanged files embedded {again.chunks_embedded} chunks")
            times["E"].append(t)
            if texts is None:
                texts, n_chunks = pipeline_texts(index_dir)
                n_texts = summary.texts_embedded + summary.terms_embedded
                if old.chunks != summary.chunks:
                    sys.exit(f"bench: the old pipeline made {old.chunks} chunks, the new {summary.chunks}")
            t, _ = common.timed(embedder.embed_passages, texts)  # B
            times["B"].append(t)
            if FAISS is not None:
                for key, embeddings in (("C", lc_naive), ("C2", lc_fast)):
                    t, n_lc_chunks, parts = langchain_run(embeddings)
                    times[key].append(t)
                    lc_parts[key].append(parts)
            t, _ = common.timed(embedder.embed_passages, sample_800)  # D
            times["D"].append(t)
            log(f"repeat {rep + 1}/{repeats}: new {times['A'][-1]:.1f}s, old {times['O'][-1]:.1f}s "
                f"({times['O'][-1] / times['A'][-1]:.2f}x), re-ingest {times['E'][-1]:.2f}s, "
                f"bare {times['B'][-1]:.1f}s"
                + (f", langchain {times['C'][-1]:.1f}s / with our encoder {times['C2'][-1]:.1f}s"
                   if times["C"] else "") + f", 800-char {times['D'][-1]:.1f}s")

        # Q: query embedding, one question at a time, in a fresh process (QUERY_SCRIPT)
        questions = [q["question"] for q in common.read_questions()][:60]
        query_ms, query_cpu_ms = query_timings(questions, 3 if not args.quick else 1)
        log(f"query p50: new {common.median(query_ms[EMBEDDER]):.2f} ms, "
            f"old {common.median(query_ms[REFERENCE]):.2f} ms")

        rss = {}
        if not (args.quick or args.no_rss):
            for name in (EMBEDDER, REFERENCE):
                rss[name] = peak_rss(name, files)
                log(f"peak RSS {name}: {rss[name]}")
        retrieval = {}
        if not (args.quick or args.no_retrieval):
            for name in (EMBEDDER, REFERENCE):
                retrieval[name] = retrieval_figures(name, workdir)
                log(f"retrieval {name}: {retrieval[name]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = common.median
    new_cps = n_chunks / med(times["A"])
    old_cps = n_chunks / med(times["O"])
    speedups = [o / a for a, o in zip(times["A"], times["O"])]  # per repeat, same load
    lc = {}
    for key in ("C", "C2"):
        if times[key]:
            cps = n_lc_chunks / med(times[key])
            lc[key] = {"seconds": common.spread(times[key]), "chunks": n_lc_chunks, "chunks_per_s": cps,
                       "parts_median": {k: med([x[k] for x in lc_parts[key]]) for k in lc_parts[key][0]},
                       "pipeline_over_langchain": new_cps / cps,
                       "pipeline_over_langchain_per_repeat": [
                           (n_chunks / a) / (n_lc_chunks / c) for a, c in zip(times["A"], times[key])]}
    retrieval_delta = None
    if retrieval:
        retrieval_delta = max(
            abs(retrieval[EMBEDDER][c][s][m] - retrieval[REFERENCE][c][s][m])
            for c in retrieval[EMBEDDER] for s in retrieval[EMBEDDER][c] for m in ("hit@5", "mrr@5"))
    results = {
        "corpus": {"files": [str(f.relative_to(common.SHARED)) for f in files], "pages": summary.pages,
                   "chunks": n_chunks, "texts_embedded": n_texts,
                   "mean_text_chars": float(np.mean([len(t) for t in texts])),
                   "chunker": ChunkerSettings().describe()},
        "embedder": EMBEDDER, "reference": REFERENCE, "workers": embedder.workers,
        "model_load_s": {EMBEDDER: model_load_s, REFERENCE: reference_load_s},
        "repeats": repeats,
        "pipeline": {"seconds": common.spread(times["A"]), "embed_tail_seconds": common.spread(times["A_embed"]),
                     "chunks_per_s": new_cps, "texts_per_s": n_texts / med(times["A"])},
        "old_pipeline": {"seconds": common.spread(times["O"]),
                         "embed_tail_seconds": common.spread(times["O_embed"]), "chunks_per_s": old_cps},
        "speedup": {"chunks_per_s_new_over_old": new_cps / old_cps, "per_repeat": speedups,
                    "median_of_repeats": med(speedups)},
        "bare_encode": {"texts": len(texts), "seconds": common.spread(times["B"]),
                        "texts_per_s": len(texts) / med(times["B"]),
                        "pipeline_over_bare": med(times["B"]) / med(times["A"])},
        "langchain": lc or {"error": lc_error},
        "passages_800": {"n": len(sample_800), "mean_chars": float(np.mean([len(t) for t in sample_800])),
                         "mean_tokens": float(np.mean(tokens_800)), "seconds": common.spread(times["D"]),
                         "chunks_per_s": len(sample_800) / med(times["D"])},
        "reingest_unchanged": {"seconds": common.spread(times["E"]),
                               "fraction_of_first": med(times["E"]) / med(times["A"])},
        "query_ms": {name: {"n": len(v), "p50": med(v), "p95": common.percentile(v, 95),
                            "cpu_p50": med(query_cpu_ms[name])}
                     for name, v in query_ms.items()},
        "peak_rss": rss,
        "retrieval": retrieval, "retrieval_max_abs_delta": retrieval_delta,
        "load_average_1min_per_repeat": load_per_repeat,
    }
    targets = [
        common.target("end-to-end chunks/s, new / old pipeline (median of per-repeat ratios)", med(speedups),
                      ">=", TARGET_SPEEDUP),
        common.target("query embedding p50 (ms, wall)", med(query_ms[EMBEDDER]), "<=", TARGET_QUERY_MS),
        common.target("query embedding p50 (ms, thread CPU)", med(query_cpu_ms[EMBEDDER]), "<=", TARGET_QUERY_MS),
        common.target("unchanged re-ingest / first ingest", results["reingest_unchanged"]["fraction_of_first"],
                      "<", TARGET_REINGEST),
    ]
    if "C" in lc:
        targets.append(common.target("pipeline / naive LangChain chunks/s", lc["C"]["pipeline_over_langchain"],
                                     ">", 1.0))
    if "C2" in lc:
        targets.append(common.target("pipeline / LangChain on our fast encoder, chunks/s",
                                     lc["C2"]["pipeline_over_langchain"], ">", 1.0))
    if rss.get(EMBEDDER, {}).get("peak_rss_mib") and rss.get(REFERENCE, {}).get("peak_rss_mib"):
        targets.append(common.target("peak RSS new / old", rss[EMBEDDER]["peak_rss_mib"]
                                     / rss[REFERENCE]["peak_rss_mib"], "<=", 1.0))
    if retrieval_delta is not None:
        targets.append(common.target("largest hit@5/MRR@5 change vs old (txt, pdf; dev, extra)", retrieval_delta,
                                     "<=", 0.01))
    headline = [
        {"metric": "pipeline chunks/s, new / old (same run)", "value": f"{new_cps:.1f} / {old_cps:.1f}"},
        {"metric": "new / old end to end (median of repeats)", "value": med(speedups)},
        {"metric": "pipeline / naive LangChain chunks/s", "value": lc.get("C", {}).get("pipeline_over_langchain")},
        {"metric": "query embedding p50 ms (wall / thread CPU)",
         "value": f"{med(query_ms[EMBEDDER]):.2f} / {med(query_cpu_ms[EMBEDDER]):.2f}"},
        {"metric": "peak RSS MiB, new / old",
         "value": " / ".join(f"{rss.get(k, {}).get('peak_rss_mib', float('nan')):.0f}" for k in (EMBEDDER, REFERENCE))
         if rss else None},
    ]
    meta.update(wall_s=time.perf_counter() - started, quick=args.quick, load_average_at_end=common.load_average())
    report = {"meta": meta, "results": results, "headline": headline, "targets": targets}
    common.emit("ingest", report, format_table(report), args.json)
    return 0


def format_table(report: dict) -> str:
    r, meta = report["results"], report["meta"]
    med = lambda x: x["seconds"]["median"]  # noqa: E731
    best = lambda x: x["seconds"]["min"]  # noqa: E731
    c = r["corpus"]
    n, nt = c["chunks"], c["texts_embedded"]
    pl, old = r["pipeline"], r["old_pipeline"]
    lines = [
        f"Ingest benchmark: {len(c['files'])} files, {c['pages']} pages -> {n} chunks + sentence windows + "
        f"terms = {nt} embedded texts; medians of {r['repeats']} interleaved repeats",
        f"{meta.get('cpu', '?')}, {meta['cpu_count']} cores, fast path on {r['workers']} worker threads; "
        f"load average (1, 5, 15 min) {meta['load_average_at_start']} at start, "
        f"{meta['load_average_at_end']} at end",
        "",
    ]
    rows = [
        ["A pipeline (fast USE forward)", n, med(pl), best(pl), pl["chunks_per_s"], _runs(pl["seconds"])],
        ["O old pipeline (reference forward)", n, med(old), best(old), old["chunks_per_s"], _runs(old["seconds"])],
        ["B bare embed_passages, A's texts", n, med(r["bare_encode"]), best(r["bare_encode"]),
         n / med(r["bare_encode"]), _runs(r["bare_encode"]["seconds"])],
    ]
    for key, label in (("C", "C LangChain naive (model.encode)"), ("C2", "C2 LangChain, our fast encoder")):
        lc = r["langchain"].get(key)
        if lc:
            parts = lc["parts_median"]
            rows.append([label, lc["chunks"], med(lc), best(lc), lc["chunks_per_s"],
                         _runs(lc["seconds"]) + f"  (load {parts['load_s']:.1f}, split {parts['split_s']:.1f}, "
                                                f"embed+FAISS {parts['embed_index_s']:.1f})"])
    d = r["passages_800"]
    rows.append(["D embed_passages ~800-char", d["n"], med(d), best(d), d["chunks_per_s"],
                 _runs(d["seconds"]) + f"  (mean {d['mean_chars']:.0f} chars, {d['mean_tokens']:.0f} tokens)"])
    e = r["reingest_unchanged"]
    rows.append(["E re-ingest, nothing changed", 0, med(e), best(e), None, _runs(e["seconds"])])
    lines.append(common.table(["section", "chunks", "median s", "best s", "chunks/s", "runs (s)"], rows,
                              "lrrrrl"))
    s = r["speedup"]
    lines += ["", f"new / old pipeline: {s['chunks_per_s_new_over_old']:.2f}x chunks/s (per repeat: "
                  + ", ".join(f"{x:.2f}" for x in s["per_repeat"]) + ")",
              f"pipeline / bare flat encode of the same texts: {r['bare_encode']['pipeline_over_bare']:.2f}x"]
    for key, label in (("C", "naive LangChain"), ("C2", "LangChain on our fast encoder")):
        lc = r["langchain"].get(key)
        if lc:
            lines.append(f"pipeline / {label}: {lc['pipeline_over_langchain']:.2f}x chunks/s (per repeat: "
                         + ", ".join(f"{x:.2f}" for x in lc["pipeline_over_langchain_per_repeat"])
                         + f"; it embeds 1 text per chunk, the pipeline {nt / max(1, n):.1f})")
    q = r["query_ms"]
    lines.append("query embedding (ms): " + "; ".join(
        f"{name} p50 {v['p50']:.2f}, p95 {v['p95']:.2f}, thread CPU p50 {v['cpu_p50']:.2f} (n={v['n']})"
        for name, v in q.items()))
    if r["peak_rss"]:
        lines.append("peak RSS of a fresh whole-corpus ingest: " + "; ".join(
            f"{name} {v.get('peak_rss_mib', 0):.0f} MiB ({v.get('seconds', 0):.0f} s)" if "error" not in v
            else f"{name} {v['error']}" for name, v in r["peak_rss"].items()))
    if r["retrieval"]:
        lines += ["", "retrieval, default settings (hit@5 / MRR@5):"]
        rows = []
        for name, per_corpus in r["retrieval"].items():
            for corpus, per_set in per_corpus.items():
                for stem, v in per_set.items():
                    rows.append([name, corpus, stem, v["n"], v["hit@5"], v["mrr@5"]])
        lines.append(common.table(["embedder", "corpus", "questions", "n", "hit@5", "MRR@5"], rows, "lllrrr"))
    lines += ["", common.targets_block(report["targets"]), f"\nwall time {meta['wall_s']:.0f}s"]
    return "\n".join(lines)


def _runs(spread: dict) -> str:
    return " ".join(f"{v:.2f}" if v < 10 else f"{v:.1f}" for v in spread["runs"])


if __name__ == "__main__":
    sys.exit(main())
