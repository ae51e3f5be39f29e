"""Retrieval quality on question files in the dev schema (dev, extra, blind): hit@k and MRR@k of the
evidence passage, per question language, for the default settings and a few
alternatives, all over one index built here.

    python bench/retrieval.py                      # dev + extra questions, txt corpus
    python bench/retrieval.py --corpus pdf --json
    python bench/retrieval.py --index milvus:///tmp/bench.db --variants default   # the index on Milvus
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
QUESTION_FILES = [SHARED / "eval" / "dev_questions.jsonl", ROOT / "bench" / "data" / "extra_questions.jsonl",
                  ROOT / "bench" / "data" / "blind_questions.jsonl"]


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def evaluate(index, questions, settings, k=5):
    from rag.retrieval import search

    ranks, by_lang, refusal_scores = [], {}, []
    for q in questions:
        result = search(index, q["question"], settings)
        refusal_scores.append((result.best_dense, bool(q.get("answerable", True))))
        if not q.get("answerable", True):
            continue
        rank = next((i + 1 for i, s in enumerate(result.sources[:k])
                     if squeeze(q["evidence"]) in squeeze(s.text)), None)
        ranks.append(rank)
        by_lang.setdefault(q["lang"], []).append(rank)
    hit = sum(r is not None for r in ranks) / len(ranks)
    mrr = sum(1 / r for r in ranks if r) / len(ranks)
    langs = {lang: round(sum(r is not None for r in rs) / len(rs), 3) for lang, rs in sorted(by_lang.items())}
    return {"hit@5": round(hit, 3), "mrr@5": round(mrr, 3), "n": len(ranks), "hit@5_by_lang": langs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="txt", choices=["txt", "pdf"])
    parser.add_argument("--questions", nargs="*", type=Path, default=None)
    parser.add_argument("--embed-model", default=None, help="embedding model to compare (default: the default)")
    parser.add_argument("--window-chars", type=int, default=None,
                        help="sentence-window size to index with (default: the product default; 0: none)")
    parser.add_argument("--index", default=None,
                        help="ingest into this index and keep it (a folder or a milvus:// URI; default: a "
                             "temporary FAISS folder)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variant names to run, or 'default' (default: all)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"shared corpus not found at {SHARED}: run from a checkout with ../shared beside it")

    from dataclasses import replace

    from rag.ingest.pipeline import ingest
    from rag.settings import RetrievalSettings
    from rag.store import load_index

    files = args.questions or [f for f in QUESTION_FILES if f.exists()]
    sets = {f.stem: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
            for f in files}
    with tempfile.TemporaryDirectory() as tmp:
        target = args.index or Path(tmp) / "index"
        ingest([SHARED / "corpus" / args.corpus], target, embed_model=args.embed_model,
               **({} if args.window_chars is None else {"window_chars": args.window_chars}),
               progress=not (args.quiet or args.json))
        index = load_index(target)
        default = RetrievalSettings(k=5)
        only = dict(dense_weight=0.0, window_weight=0.0, lexical_weight=0.0, expansion_weight=0.0)
        variants = {
            "default (4-way z-score)": default,
            "rrf fusion": replace(default, fusion="rrf"),
            "without term expansion": replace(default, expansion_weight=0.0),
            "term expansion at weight 1": replace(default, expansion_weight=1.0),
            "without windows": replace(default, window_weight=0.0),
            "without bm25": replace(default, lexical_weight=0.0),
            "dense only": replace(default, **dict(only, dense_weight=1.0)),
            "windows only": replace(default, **dict(only, window_weight=1.0)),
            "bm25 only": replace(default, **dict(only, lexical_weight=1.0)),
            "term expansion only": replace(default, **dict(only, expansion_weight=1.0)),
        }
        if args.variants:
            wanted = [v.strip() for v in args.variants.split(",")]
            wanted = ["default (4-way z-score)" if v == "default" else v for v in wanted]
            unknown = [v for v in wanted if v not in variants]
            if unknown:
                sys.exit(f"unknown variant(s) {unknown}: choose from {list(variants)}")
            variants = {name: variants[name] for name in wanted}
        results = {name: {stem: evaluate(index, qs, settings) for stem, qs in sets.items()}
                   for name, settings in variants.items()}
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "retrieval" + (f"-{args.embed_model.replace('/', '_')}" if args.embed_model else "")
    name += f"-windows{args.window_chars}" if args.window_chars is not None else ""
    name += "-milvus" if args.index and str(args.index).startswith("milvus:") else ""
    (out / f"{name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    if not args.quiet:
        print(f"{'variant':24s} {'questions':22s} {'hit@5':>6s} {'mrr@5':>6s}  by language")
        for name, per_set in results.items():
            for stem, r in per_set.items():
                print(f"{name:24s} {stem:22s} {r['hit@5']:6.3f} {r['mrr@5']:6.3f}  {r['hit@5_by_lang']}")


if __name__ == "__main__":
    main()
