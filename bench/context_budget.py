#!/usr/bin/env python
"""How many model tokens of each source the local generator needs to see the answer.

For every answerable question of the dev and extra sets, over an index of
../shared/corpus/txt (--index, or built here), the 5 retrieved chunks are fitted
the way rag.qa shows them to the `local` generator (the best window of each chunk,
centred on its best-matching sentence window, cut to a budget of the model's own
tokens), and we count how often the gold evidence passage is inside what the model
sees, and how many prompt tokens the 5 excerpts cost. Together with the prompt
reading rate from bench/query.py --local this picks LocalGenerator.context_tokens.

    python bench/context_budget.py --index /tmp/index --budgets 40,70,100,160,250
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.setup_path()


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--index", help="an existing index of ../shared/corpus/txt (default: build one)")
    p.add_argument("--budgets", default="40,70,100,160,250,0,250:50,400:25",
                   help="tokens per source to try (0: whole chunks; A:B = A for the best source, B for the others)")
    args = p.parse_args(argv)
    log = common.Log(args.quiet or args.json)
    meta = common.machine()
    budgets = [b.strip() for b in args.budgets.split(",")]

    from rag.embedders import get_embedder
    from rag.evaluation.metrics import passage_in_chunk
    from rag.generators import get_generator
    from rag.qa import fitted_excerpt
    from rag.retrieval import add_focus, search
    from rag.settings import RetrievalSettings
    from rag.store import open_index

    questions = [q for q in common.read_questions() if q.get("answerable", True) and q.get("evidence")]
    if args.quick:
        questions = questions[::3]
    index_dir, workdir = common.txt_index(args.index, "rag-bench-budget-")
    try:
        index = open_index(index_dir)
        embedder = get_embedder(index.embed_model)
        gen = get_generator("local")
        chars_limit = gen.context_chars
        rows = {b: {"seen": 0, "retrieved": 0, "tokens": []} for b in budgets}
        for n, q in enumerate(questions, start=1):
            sources = search(index, q["question"], RetrievalSettings()).sources[:5]
            add_focus(sources, q["question"], embedder)
            retrieved = any(passage_in_chunk(q["evidence"], s.text) for s in sources)
            for b in budgets:
                first, _, rest = b.partition(":")
                shown = []
                for rank, s in enumerate(sources):
                    tokens = int(first if rank == 0 or not rest else rest)
                    gen.context_tokens = tokens or None
                    gen.context_chars = max(chars_limit, tokens * 6) if tokens else None
                    shown.append(fitted_excerpt(s, gen, gen.context_chars))
                rows[b]["retrieved"] += retrieved
                rows[b]["seen"] += any(passage_in_chunk(q["evidence"], text) for text in shown)
                rows[b]["tokens"].append(sum(gen.count_tokens(text) for text in shown))
            if n % 10 == 0:
                log(f"{n}/{len(questions)} questions")
    finally:
        gen.context_tokens, gen.context_chars = type(gen).context_tokens, type(gen).context_chars
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results = {str(b): {"evidence_seen": r["seen"] / len(questions), "evidence_retrieved": r["retrieved"] / len(questions),
                        "excerpt_tokens_p50": common.percentile(r["tokens"], 50),
                        "excerpt_tokens_max": max(r["tokens"])} for b, r in rows.items()}
    report = {"meta": meta, "questions": len(questions), "results": results}
    table = common.table(
        ["tokens per source", "evidence in what the model sees", "evidence in the 5 chunks", "5 excerpts: tokens p50",
         "max"],
        [[b if b != "0" else "whole chunk", r["evidence_seen"], r["evidence_retrieved"], r["excerpt_tokens_p50"],
          r["excerpt_tokens_max"]] for b, r in results.items()])
    common.emit("context_budget", report, f"Context budget of the local generator: {len(questions)} answerable "
                                          f"questions (dev + extra), k=5\n\n{table}", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
