#!/usr/bin/env python
"""Query latency benchmark: retrieval and extractive answers over the txt corpus.

An index of ../shared/corpus/txt is built in a temporary folder (its build time
is reported), then for every question of ../shared/eval/dev_questions.jsonl and
bench/data/extra_questions.jsonl (when present), after a warm-up:

* retrieval: rag.retrieval.search(index, question) with the default settings;
  p50/p95 of the total and of its parts from Retrieval.timings (query
  embedding, dense search, BM25, fusion);
* extractive answer: rag.ask(question, generator="extractive"), wall time
  around the call (index lookup, retrieval and the extractive generator);
* with --local (llama.cpp, the bundled GGUF) and/or --hf (transformers): the
  generator's time to first streamed piece through rag.ask, k=5 chunks of
  context fitted to the generator's budget, max_tokens=32, after the model is
  loaded (its load time is reported on its own), with the prompt's size in the
  model's tokens and the rate it was read at (tokens / time to first piece).

Each question is asked once per pass (2 passes; --quick: 1 pass over a
quarter of the questions), retrieval and ask interleaved question by question;
each extractive ask is repeated with the USE model on 1 BLAS thread (its
default is min(4, cores)) to show what the thread count costs.

    python bench/query.py
    python bench/query.py --local       # also the local (llama.cpp) generator's time to first token
    python bench/query.py --hf          # also the hf generator's time to first token
    python bench/query.py --quick
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

TARGET_RETRIEVE_P50_MS = 30.0
TARGET_ASK_P50_MS = 100.0
TARGET_TTFT_S = 2.0
TARGET_LOCAL_TTFT_S = 1.5
PARTS = ["embed", "dense", "lexical", "fusion", "total"]


def stats_ms(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    return {"p50_ms": common.percentile(ms, 50), "p95_ms": common.percentile(ms, 95),
            "mean_ms": sum(ms) / len(ms) if ms else float("nan"), "max_ms": max(ms) if ms else float("nan"),
            "n": len(ms)}


def pick_hf_questions(questions: list[dict], n: int) -> list[dict]:
    """Answerable questions, the first of each language first, then the rest in file order."""
    answerable = [q for q in questions if q.get("answerable", True)]
    first, seen = [], set()
    for q in answerable:
        if q.get("lang") not in seen:
            seen.add(q.get("lang"))
            first.append(q)
    rest = [q for q in answerable if q not in first]
    return (first + rest)[: max(n * 3, n)]  # spares for questions refused before generation


def bench_hf(index_dir: Path, questions: list[dict], n: int, budget_s: float, log, name: str = "hf") -> dict:
    """Time to the first streamed piece of generator ``name`` (hf or local) with k=5 chunks of context."""
    import rag
    from rag.generators import GenerationRequest, get_generator
    from rag.settings import GenerationSettings

    t0 = time.perf_counter()
    gen = get_generator(name)
    load_s = time.perf_counter() - t0
    log(f"{name} generator {gen.model} loaded in {load_s:.1f}s")
    tokenizer = getattr(gen, "tokenizer", None)

    # warm-up on a short prompt: the first generate call initializes kernels and caches
    t0 = time.perf_counter()
    for _ in gen.stream(GenerationRequest(messages=[{"role": "user", "content": "Say hello."}],
                                          settings=GenerationSettings(max_tokens=4))):
        pass
    warmup_s = time.perf_counter() - t0

    # See the prompt ask() sends (system, context excerpts, question) to count its tokens.
    seen: dict = {}
    real_stream = gen.stream

    def spy(request):
        seen["messages"] = request.messages
        return real_stream(request)

    def prompt_tokens() -> int | None:
        if "messages" not in seen:
            return None
        if tokenizer is None:  # llama.cpp: the messages' own tokens (the chat template adds ~5 per message)
            return sum(gen.count_tokens(m.get("content", "")) + 5 for m in seen["messages"])
        try:
            ids = tokenizer.apply_chat_template(seen["messages"], add_generation_prompt=True, tokenize=True,
                                                return_dict=True)["input_ids"]
            return len(ids[0]) if ids and isinstance(ids[0], list) else len(ids)
        except Exception:
            return None

    def one(question: str) -> dict | None:
        seen.clear()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        stream = rag.ask(question, str(index_dir), k=5, generator=name, stream=True, max_tokens=32)
        if stream.refused:  # refused before generation: no token to time
            for _ in stream:
                pass
            return None
        sources = list(stream.sources)
        pieces = iter(stream)
        first = next(pieces, None)
        ttft = time.perf_counter() - t0
        # CPU time to the first piece: what it takes on an otherwise idle machine with one
        # thread, however busy this one is (wall time grows with the machine's load).
        ttft_cpu = time.process_time() - cpu0
        count = 1 if first is not None else 0
        for _ in pieces:
            count += 1
        total = time.perf_counter() - t0
        prompt_chars = sum(len(m.get("content", "")) for m in seen.get("messages", []))
        return {"ttft_s": ttft, "ttft_cpu_s": ttft_cpu, "total_s": total, "pieces": count, "sources": len(sources),
                "prompt_chars": prompt_chars or None, "prompt_tokens": prompt_tokens(),
                "retrieval_s": stream.answer.timings.get("retrieval")}

    runs: list[dict] = []
    gen.stream = spy  # an instance attribute over the method: removed again below
    try:
        skipped, stopped = _hf_loop(one, pick_hf_questions(questions, n), n, budget_s, runs, log, name)
    finally:
        del gen.stream
    ttft = [r["ttft_s"] for r in runs]
    for r in runs:
        r["read_tokens_per_s"] = r["prompt_tokens"] / r["ttft_s"] if r.get("prompt_tokens") else None
    if hasattr(gen, "threads"):
        threads = gen.threads
    else:
        import torch

        threads = torch.get_num_threads()
    return {"name": name, "model": gen.model, "load_s": load_s, "warmup_s": warmup_s, "k": 5, "max_tokens": 32,
            "context_chars_per_source": getattr(gen, "context_chars", None),
            "context_tokens_per_source": getattr(gen, "context_tokens", None),
            "torch_threads": threads, "runs": runs, "refused_skipped": skipped,
            "budget_s": budget_s, "stopped_by_budget": stopped,
            "ttft_p50_s": common.percentile(ttft, 50) if ttft else None,
            "ttft_cpu_p50_s": common.percentile([r["ttft_cpu_s"] for r in runs], 50) if runs else None,
            "ttft_max_s": max(ttft) if ttft else None,
            "total_p50_s": common.percentile([r["total_s"] for r in runs], 50) if runs else None}


def _hf_loop(one, picked: list[dict], n: int, budget_s: float, runs: list, log, name: str = "hf") -> tuple[int, bool]:
    """Time questions until ``n`` are done or ``budget_s`` is spent; (refused and skipped, stopped early)."""
    skipped, stopped = 0, False
    bench_started = time.perf_counter()
    for q in picked:
        if len(runs) >= n:
            break
        if runs and time.perf_counter() - bench_started > budget_s:
            stopped = True
            log(f"  {name}: time budget of {budget_s:.0f}s spent after {len(runs)} questions")
            break
        r = one(q["question"])
        if r is None:
            skipped += 1
            continue
        r["id"], r["lang"] = q.get("id"), q.get("lang")
        runs.append(r)
        log(f"  {name} {q.get('id')} ({q.get('lang')}): first piece {r['ttft_s']:.2f}s with a {r['prompt_tokens']}-token "
            f"prompt, {r['pieces']} pieces in {r['total_s']:.2f}s")
    return skipped, stopped


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--hf", action="store_true", help="also time the hf generator's first token")
    p.add_argument("--local", action="store_true", help="also time the local (llama.cpp) generator's first token")
    p.add_argument("--passes", type=int, help="passes over the questions (default 2, --quick 1)")
    p.add_argument("--hf-questions", type=int, help="questions timed with the hf generator (default 5, --quick 3)")
    p.add_argument("--hf-budget", type=float, default=240.0,
                   help="seconds after which no further hf question is started (default 240)")
    p.add_argument("--no-thread-compare", action="store_true",
                   help="do not repeat each extractive ask with the USE model on 1 BLAS thread")
    args = p.parse_args(argv)
    log = common.Log(args.quiet or args.json)
    passes = max(1, args.passes or (1 if args.quick else 2))
    started = time.perf_counter()
    meta = common.machine()

    txt_files = common.corpus_files("txt")
    questions = common.read_questions()
    if not questions:
        sys.exit("bench: no questions to ask")

    t0 = time.perf_counter()
    import rag
    from rag.ingest.pipeline import ingest
    from rag.embedders import get_embedder
    from rag.retrieval import search
    from rag.settings import RetrievalSettings
    from rag.store import open_index

    embedder = get_embedder("use-multilingual")
    model_load_s = time.perf_counter() - t0
    log(f"embedder loaded in {model_load_s:.1f}s")

    use_module = embedder.model[0]
    default_threads = getattr(use_module, "threads", None)
    if args.quick:
        questions = questions[::4]  # every language, a quarter of the questions

    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-query-"))
    try:
        index_dir = workdir / "index"
        # The build is not what is measured here: it runs with the fastest BLAS setting
        # on a busy 2-core machine (bench/ingest.py measures ingest with the default).
        use_module.threads = 1
        try:
            summary = ingest(txt_files, index_dir, embed_model="use-multilingual", rebuild=True, progress=False)
        finally:
            use_module.threads = default_threads
        if summary.failed:
            sys.exit("bench: building the index failed: "
                     + "; ".join(r.line() for r in summary.reports if r.status == "failed"))
        log(f"index of {summary.files} txt files, {summary.chunks} chunks built in {summary.seconds:.1f}s")
        index = open_index(index_dir)
        settings = RetrievalSettings()

        # warm-up: every code path once (query embedding, FAISS, BM25, the extractive generator)
        for q in questions[:3]:
            search(index, q["question"], settings)
            rag.ask(q["question"], str(index_dir), generator="extractive")

        parts: dict[str, list[float]] = {k: [] for k in PARTS}
        wall_retrieve: list[float] = []
        ask_wall: list[float] = []
        ask_generation: list[float] = []
        ask_1thread: list[float] = []  # the same ask with the USE model on 1 BLAS thread
        by_lang: dict[str, dict[str, list[float]]] = {}
        refused = 0
        compare_threads = default_threads is not None and default_threads != 1 and not args.no_thread_compare
        for pass_no in range(passes):
            for q in questions:
                text = q["question"]
                t0 = time.perf_counter()
                r = search(index, text, settings)
                wall_retrieve.append(time.perf_counter() - t0)
                for k in PARTS:
                    parts[k].append(r.timings.get(k, float("nan")))
                t0 = time.perf_counter()
                answer = rag.ask(text, str(index_dir), generator="extractive")
                ask_wall.append(time.perf_counter() - t0)
                if "generation" in answer.timings:
                    ask_generation.append(answer.timings["generation"])
                if pass_no == 0:
                    refused += bool(answer.refused)
                if compare_threads:
                    use_module.threads = 1
                    try:
                        t0 = time.perf_counter()
                        rag.ask(text, str(index_dir), generator="extractive")
                        ask_1thread.append(time.perf_counter() - t0)
                    finally:
                        use_module.threads = default_threads
                lang = by_lang.setdefault(q.get("lang", "?"), {"retrieve": [], "ask": []})
                lang["retrieve"].append(r.timings.get("total", float("nan")))
                lang["ask"].append(ask_wall[-1])
            log(f"pass {pass_no + 1}/{passes}: retrieve p50 {common.percentile(parts['total'], 50) * 1000:.1f} ms, "
                f"ask p50 {common.percentile(ask_wall, 50) * 1000:.1f} ms")

        hf = local = None
        for name in [n for n in ("local", "hf") if getattr(args, n)]:
            try:
                timed = bench_hf(index_dir, common.read_questions(), args.hf_questions or (3 if args.quick else 5),
                                 args.hf_budget, log, name)
            except Exception as exc:  # a missing or broken local model must not lose the other numbers
                timed = {"name": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                log(f"{name} generator: {timed['error']}")
            if name == "hf":
                hf = timed
            else:
                local = timed
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    retrieval = {k: stats_ms(v) for k, v in parts.items()}
    retrieval["wall"] = stats_ms(wall_retrieve)
    ask_stats = {"wall": stats_ms(ask_wall), "generation": stats_ms(ask_generation),
                 "blas_threads": default_threads}
    if ask_1thread:
        ask_stats["wall_1thread"] = stats_ms(ask_1thread)
    results = {
        "index": {"files": summary.files, "chunks": summary.chunks,
                  "texts_embedded": getattr(summary, "texts_embedded", summary.chunks_embedded),
                  "build_s": summary.seconds, "index_type": summary.index_type},
        "embedder_load_s": model_load_s,
        "questions": len(questions), "passes": passes,
        "question_files": sorted({q["_file"] for q in questions}),
        "refused_extractive": refused,
        "retrieval": retrieval,
        "ask_extractive": ask_stats,
        "by_lang": {lang: {"n": len(v["retrieve"]) // passes,
                           "retrieve_p50_ms": common.percentile(v["retrieve"], 50) * 1000,
                           "ask_p50_ms": common.percentile(v["ask"], 50) * 1000}
                    for lang, v in sorted(by_lang.items())},
        "hf": hf,
        "local": local,
    }
    targets = [
        common.target("retrieve p50 incl. query embedding (ms)", retrieval["total"]["p50_ms"], "<=",
                      TARGET_RETRIEVE_P50_MS),
        common.target("extractive ask p50 (ms)", ask_stats["wall"]["p50_ms"], "<=", TARGET_ASK_P50_MS),
    ]
    if hf is not None:
        targets.append(common.target("hf time to first token, k=5 (s)", hf.get("ttft_p50_s"), "<=", TARGET_TTFT_S))
    if local is not None:
        targets.append(common.target("local time to first token, k=5 (s)", local.get("ttft_p50_s"), "<=",
                                     TARGET_LOCAL_TTFT_S))
    headline = [
        {"metric": "retrieve p50 / p95 (ms)",
         "value": f"{retrieval['total']['p50_ms']:.1f} / {retrieval['total']['p95_ms']:.1f}"},
        {"metric": "  query embedding p50 (ms)", "value": retrieval["embed"]["p50_ms"]},
        {"metric": "  dense p50 / BM25 p50 / fusion p50 (ms)",
         "value": f"{retrieval['dense']['p50_ms']:.2f} / {retrieval['lexical']['p50_ms']:.2f} / "
                  f"{retrieval['fusion']['p50_ms']:.2f}"},
        {"metric": "extractive ask p50 / p95 (ms)",
         "value": f"{ask_stats['wall']['p50_ms']:.1f} / {ask_stats['wall']['p95_ms']:.1f}"},
    ]
    if "wall_1thread" in ask_stats:
        headline.append({"metric": "extractive ask p50, USE on 1 BLAS thread (ms)",
                         "value": ask_stats["wall_1thread"]["p50_ms"]})
    for timed in (local, hf):
        if timed is not None and "error" not in timed and timed["runs"]:
            headline.append({"metric": f"{timed['name']} load (s) / time to first token p50 (s)",
                             "value": f"{timed['load_s']:.1f} / {timed['ttft_p50_s']:.2f}"})
    meta.update(wall_s=time.perf_counter() - started, quick=args.quick, load_average_at_end=common.load_average())
    report = {"meta": meta, "results": results, "headline": headline, "targets": targets}
    common.emit("query", report, format_table(report), args.json)
    return 0


def format_table(report: dict) -> str:
    r, meta = report["results"], report["meta"]
    idx = r["index"]
    lines = [
        f"Query benchmark: {r['questions']} questions ({', '.join(r['question_files'])}) x {r['passes']} passes, "
        f"one at a time; index of {idx['files']} txt files, {idx['chunks']} chunks ({idx['index_type']}), "
        f"built in {idx['build_s']:.1f}s",
        f"embedder loaded in {r['embedder_load_s']:.1f}s | {meta.get('cpu', '?')}, {meta['cpu_count']} cores | "
        f"load average {meta['load_average_at_start']} at start, {meta['load_average_at_end']} at end",
        "",
    ]
    ret = r["retrieval"]
    names = {"embed": "  query embedding", "dense": "  dense (FAISS)", "lexical": "  BM25",
             "fusion": "  fusion + scoring", "total": "retrieve total (Retrieval.timings)",
             "wall": "retrieve, wall time around search()"}
    rows = [[names[k], ret[k]["p50_ms"], ret[k]["p95_ms"], ret[k]["mean_ms"], ret[k]["max_ms"]]
            for k in ["total", "embed", "dense", "lexical", "fusion", "wall"]]
    a = r["ask_extractive"]
    rows.append([f"ask(generator='extractive'), wall", a["wall"]["p50_ms"], a["wall"]["p95_ms"],
                 a["wall"]["mean_ms"], a["wall"]["max_ms"]])
    if a["generation"]["n"]:
        rows.append(["  of which the extractive generator", a["generation"]["p50_ms"], a["generation"]["p95_ms"],
                     a["generation"]["mean_ms"], a["generation"]["max_ms"]])
    if "wall_1thread" in a:
        w = a["wall_1thread"]
        rows.append(["same ask, USE model on 1 BLAS thread", w["p50_ms"], w["p95_ms"], w["mean_ms"], w["max_ms"]])
    lines.append(common.table(["ms", "p50", "p95", "mean", "max"], rows))
    if "wall_1thread" in a:
        lines.append(f"(the USE model runs on {a['blas_threads']} BLAS threads by default, inputs under 384 tokens "
                     "such as one query always on 1; the 1-thread ask is interleaved question by question with the "
                     "default one)")
    lines += ["", "by question language (p50 ms): " + ", ".join(
        f"{lang} (n={v['n']}): retrieve {v['retrieve_p50_ms']:.1f}, ask {v['ask_p50_ms']:.1f}"
        for lang, v in r["by_lang"].items()),
        f"extractive answers refused: {r['refused_extractive']} of {r['questions']}"]
    for hf in (r.get("local"), r.get("hf")):
        if hf is None:
            continue
        name = hf.get("name", "hf")
        lines.append("")
        if "error" in hf:
            lines.append(f"{name} generator: not measured ({hf['error']})")
        else:
            lines.append(f"{name} generator {hf['model']}: loaded in {hf['load_s']:.1f}s, warm-up {hf['warmup_s']:.1f}s; "
                         f"k={hf['k']} (excerpts of {hf['context_chars_per_source']} chars / "
                         f"{hf.get('context_tokens_per_source')} tokens), "
                         f"max_tokens={hf['max_tokens']}, threads {hf['torch_threads']}; "
                         f"{len(hf['runs'])} questions ({hf['refused_skipped']} refused before generation skipped"
                         + (f"; stopped by the {hf['budget_s']:.0f}s budget" if hf["stopped_by_budget"] else "") + ")")
            lines.append(common.table(
                ["question", "lang", "first piece s", "CPU s to it", "to the end s", "pieces", "prompt chars",
                 "prompt tokens", "read tok/s"],
                [[x["id"], x["lang"], x["ttft_s"], x.get("ttft_cpu_s"), x["total_s"], x["pieces"], x["prompt_chars"],
                  x["prompt_tokens"], x.get("read_tokens_per_s")] for x in hf["runs"]]
                + [["p50", "", hf["ttft_p50_s"], hf.get("ttft_cpu_p50_s"), hf["total_p50_s"], None, None, None,
                    None]]))
    lines += ["", common.targets_block(report["targets"]), f"\nwall time {meta['wall_s']:.0f}s"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
