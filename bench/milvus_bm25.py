"""Would Milvus's own BM25 do for the lexical ranker? BM25-only hit@5 / MRR@5 of the
engine's BM25 function (Milvus Lite analyzers: ``standard``, ``jieba``) against the
client-side BM25 the Milvus store uses (rag.lexical: words + CJK bigrams), on the same
chunks and questions as bench/retrieval.py.

    python bench/milvus_bm25.py                 # txt corpus, ingests into a temporary Milvus Lite file
    python bench/milvus_bm25.py --json

The answer decides where the lexical ranker runs (README, "Scale out").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import QUESTION_FILES, SHARED, squeeze  # noqa: E402


def score(ranked_texts: list[list[str]], questions: list[dict]) -> dict:
    ranks = []
    for q, texts in zip(questions, ranked_texts):
        if not q.get("answerable", True):
            continue
        ranks.append(next((i + 1 for i, t in enumerate(texts[:5]) if squeeze(q["evidence"]) in squeeze(t)), None))
    return {"hit@5": round(sum(r is not None for r in ranks) / len(ranks), 3),
            "mrr@5": round(sum(1 / r for r in ranks if r) / len(ranks), 3), "n": len(ranks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="txt", choices=["txt", "pdf"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from pymilvus import DataType, Function, FunctionType

    from rag import milvus_store
    from rag.ingest.pipeline import ingest
    from rag.store import open_index

    sets = {f.stem: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
            for f in QUESTION_FILES if f.exists()}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"milvus://{tmp}/bm25.db"
        ingest([SHARED / "corpus" / args.corpus], uri, progress=False)
        index = open_index(uri)
        texts = [c.embedding_text() for c in index.chunks]
        client = milvus_store.client(milvus_store.parse(uri))
        results: dict = {"client (rag.lexical)": {}}
        for stem, qs in sets.items():
            ranked = []
            for q in qs:
                top, _ = index.lexical.search_all(q["question"], 5)
                ranked.append([index.chunks[r].text for r in top])
            results["client (rag.lexical)"][stem] = score(ranked, qs)
        for analyzer in ("standard", "jieba"):
            name = f"probe_{analyzer}"
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                             analyzer_params={"tokenizer": analyzer})
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                         input_field_names=["text"], output_field_names=["sparse"]))
            params = client.prepare_index_params()
            params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                             params={"bm25_k1": 1.5, "bm25_b": 0.75})  # bm25s's defaults
            client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")
            client.insert(name, [{"id": i, "text": t} for i, t in enumerate(texts)])
            client.flush(name)
            results[f"engine BM25 ({analyzer})"] = {}
            for stem, qs in sets.items():
                hits = client.search(name, data=[q["question"] for q in qs], anns_field="sparse", limit=5,
                                     search_params={"metric_type": "BM25"}, output_fields=["id"])
                ranked = [[index.chunks[int(h["id"])].text for h in row] for row in hits]
                results[f"engine BM25 ({analyzer})"][stem] = score(ranked, qs)
        milvus_store.release(uri)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'BM25 only, ' + args.corpus + ' corpus':32s} {'questions':18s} {'hit@5':>6s} {'mrr@5':>6s}")
    for name, per_set in results.items():
        for stem, r in per_set.items():
            print(f"{name:32s} {stem:18s} {r['hit@5']:6.3f} {r['mrr@5']:6.3f}")


if __name__ == "__main__":
    main()
