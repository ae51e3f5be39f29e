#!/usr/bin/env python
"""Follow-up questions: does rewriting them with the LLM retrieve better than the heuristic?

For every row of bench/data/followups.jsonl (a first question, its answer, a
follow-up that leans on them, and the follow-up's evidence passage; en/ko/zh/it),
the follow-up is turned into the question that retrieval sees in several ways and
retrieval hit@5 / MRR@5 of the evidence is measured over an index of
../shared/corpus/txt (built here in a temporary folder unless --index is given):

* as asked: the follow-up alone (what no condensation gives);
* heuristic: rag.qa.heuristic_standalone (a short or referring follow-up borrows
  the previous question's words); instant, used by every generator by default;
* both, fused: the follow-up as asked and the heuristic's question, each retrieved
  and the rankings fused by reciprocal rank (rag.retrieval.search_phrasings): what
  rag.qa retrieves with;
* llm:<generator>: rag.qa.llm_condense with that generator (greedy, max 96 tokens),
  with the time each rewrite took.

rag.qa.condense uses the LLM only for generators whose ``condense_with_llm`` is set,
which this benchmark decides (README, "Follow-ups").

    python bench/followups.py                        # heuristic vs the local (llama.cpp) model
    python bench/followups.py --generators local,hf  # also the transformers path
    python bench/followups.py --index .rag/index --quick --json
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.setup_path()

FOLLOWUPS = Path(__file__).resolve().parent / "data" / "followups.jsonl"
K = 5


def read_followups(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if not row.get("question") or not row.get("history") or not row.get("evidence"):
                sys.exit(f"bench: {path}:{n}: a row needs question, history and evidence")
            row["history"] = [tuple(turn) for turn in row["history"]]
            rows.append(row)
    return rows


def rank_of(index, query: str | list[str], row: dict, settings) -> int | None:
    """Rank of the row's evidence in the top K for ``query`` (several phrasings: fused as
    rag.qa does, rag.retrieval.search_phrasings)."""
    from rag.evaluation.metrics import evidence_ranks
    from rag.retrieval import search_phrasings

    sources = search_phrasings(index, [query] if isinstance(query, str) else query, settings).sources[:K]
    rank = evidence_ranks([s.text for s in sources], [row["evidence"]])[0]
    if rank is not None and row.get("source") and sources[rank - 1].source != row["source"]:
        return None  # the same words in another file do not count
    return rank


def score(ranks: list[int | None]) -> dict:
    n = len(ranks)
    return {"n": n, "hit@5": sum(r is not None for r in ranks) / n if n else None,
            "mrr@5": sum(1 / r for r in ranks if r) / n if n else None}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--generators", default="local",
                   help="comma-separated LLM generators whose rewrite is measured (default: local)")
    p.add_argument("--index", help="an existing index of ../shared/corpus/txt to use (default: build one)")
    p.add_argument("--file", default=str(FOLLOWUPS), help="follow-up set (default bench/data/followups.jsonl)")
    args = p.parse_args(argv)
    log = common.Log(args.quiet or args.json)
    started = time.perf_counter()
    meta = common.machine()
    rows = read_followups(Path(args.file))
    if args.quick:
        rows = rows[::2]  # every language and document, half the rows

    from rag.generators import get_generator
    from rag.prompts import get_prompts
    from rag.qa import heuristic_standalone, llm_condense
    from rag.settings import RetrievalSettings
    from rag.store import open_index

    index_dir, workdir = common.txt_index(args.index, "rag-bench-followups-", log)
    try:
        index = open_index(index_dir)
        settings = RetrievalSettings()
        prompts = get_prompts()
        methods: dict[str, list[dict]] = {"as asked": [], "heuristic": [], "both, fused (default)": []}
        seconds: dict[str, list[float]] = {}
        for row in rows:
            q, history = row["question"], row["history"]
            joined = heuristic_standalone(q, history)
            for name, query in (("as asked", q), ("heuristic", joined), ("both, fused (default)", [q, joined])):
                methods[name].append({"id": row["id"], "lang": row["lang"], "query": query,
                                      "rank": rank_of(index, query, row, settings)})
        for name in [g.strip() for g in args.generators.split(",") if g.strip()]:
            t0 = time.perf_counter()
            gen = get_generator(name)
            log(f"{name} generator loaded in {time.perf_counter() - t0:.1f}s")
            key = f"llm:{name}"
            methods[key], seconds[key] = [], []
            for row in rows:
                t0 = time.perf_counter()
                query = llm_condense(row["question"], row["history"], gen, prompts)
                seconds[key].append(time.perf_counter() - t0)
                rank = rank_of(index, query, row, settings)
                methods[key].append({"id": row["id"], "lang": row["lang"], "query": query, "rank": rank})
                log(f"  {key} {row['id']} ({row['lang']}) {seconds[key][-1]:.1f}s rank {rank}: {query[:90]}")
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    langs = sorted({r["lang"] for r in rows})
    results = {}
    for name, runs in methods.items():
        entry = {"all": score([r["rank"] for r in runs]),
                 "by_lang": {lang: score([r["rank"] for r in runs if r["lang"] == lang]) for lang in langs},
                 "runs": runs}
        if name in seconds:
            entry["rewrite_p50_s"] = common.percentile(seconds[name], 50)
            entry["rewrite_max_s"] = max(seconds[name])
        results[name] = entry
    meta.update(wall_s=time.perf_counter() - started, quick=args.quick, load_average_at_end=common.load_average())
    report = {"meta": meta, "results": results, "file": str(args.file), "rows": len(rows), "k": K}
    common.emit("followups", report, format_table(report, langs), args.json)
    return 0


def format_table(report: dict, langs: list[str]) -> str:
    rows = []
    for name, r in report["results"].items():
        rows.append([name, r["all"]["hit@5"], r["all"]["mrr@5"]]
                    + [r["by_lang"][lang]["hit@5"] for lang in langs]
                    + [r.get("rewrite_p50_s"), r.get("rewrite_max_s")])
    meta = report["meta"]
    return "\n".join([
        f"Follow-up retrieval: {report['rows']} follow-ups ({report['file']}), evidence in the top {report['k']}",
        f"{meta.get('cpu', '?')}, {meta['cpu_count']} cores | load average {meta['load_average_at_start']} at start, "
        f"{meta['load_average_at_end']} at end",
        "",
        common.table(["standalone question", "hit@5", "MRR@5"] + [f"hit@5 {lang}" for lang in langs]
                     + ["rewrite p50 s", "max s"], rows),
        f"\nwall time {meta['wall_s']:.0f}s",
    ])


if __name__ == "__main__":
    sys.exit(main())
