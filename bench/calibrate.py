#!/usr/bin/env python
"""Calibrate the citation check's support model and the answerability score.

Over indexes of ../shared/corpus/pdf and ../shared/corpus/txt (built in a temporary
folder, or given with --pdf-index / --txt-index), for every question of
../shared/eval/dev_questions.jsonl, bench/data/extra_questions.jsonl,
bench/data/near_topic_questions.jsonl and bench/data/blind_questions.jsonl (40 questions
written by a separate pass that saw the corpus but not the scoring code: 20 answerable
and 20 unanswerable, five of each per language; 16 of the unanswerable are near-topic), and, not
fitted on but measured with the score and thresholds in use, bench/data/blind2_questions.jsonl
(40 more written the same way, 15 of its unanswerable near-topic) and blind3 / blind4 / blind5
(40 each, written later the same way, all their unanswerable near-topic):

* answerability: the signals of rag/answerability.py after default retrieval,
  labelled by the question's ``answerable``; a logistic regression over them (fitted
  on standardized features, reported in raw units as rag/answerability.py holds them),
  its ROC AUC against the old score (best dense cosine alone), 5-fold cross-validated
  AUC, and the threshold: the highest one that refuses at most 5% of the answerable
  questions;
* support: for each answerable question with an evidence passage, a pseudo-claim
  (the question followed by the first alternative of each gold answer group) against
  each of the k retrieved chunks: supporting when the chunk holds the evidence passage,
  not supporting when it holds neither the passage nor the answer; the support model
  of rag/citations.py fitted on (window cosine, term coverage, token coverage, number
  coverage, rarity of the rarest missing word), its AUC and the Youden-optimal threshold.

    python bench/calibrate.py                  # tables; bench/results/calibrate.json
    python bench/calibrate.py --json --quiet
    python bench/calibrate.py --pdf-index .rag/pdf --txt-index .rag/txt   # reuse indexes
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.setup_path()

import numpy as np  # noqa: E402

QUESTION_FILES = [common.SHARED / "eval" / "dev_questions.jsonl", common.DATA / "extra_questions.jsonl",
                  common.DATA / "near_topic_questions.jsonl", common.DATA / "blind_questions.jsonl"]
# Not fitted on: the answerability score and thresholds in use are only measured on them.
CHECK_FILES = [common.DATA / f"blind{n}_questions.jsonl" for n in (2, 3, 4, 5)]
MAX_REFUSED_ANSWERABLE = 0.05
# Answers scoring below the caution threshold are given with a "low confidence" note:
# the highest threshold that puts at most 20% of the answerable questions below it. A
# note on one answer in five is as often as a reader will still read it.
MAX_CAUTIONED_ANSWERABLE = 0.20


def read(files) -> list[dict]:
    out = []
    for file in files:
        for line in Path(file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                item["_file"] = Path(file).name
                out.append(item)
    return out


def build_index(kind: str, folder: Path, log) -> Path:
    from rag.ingest.pipeline import ingest

    path = folder / kind
    log(f"indexing ../shared/corpus/{kind} into {path}")
    ingest([str(common.shared_path("corpus", kind))], index=path, progress=False)
    return path


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 100):
    """Logistic regression by Newton's method on standardized features (L2 on the
    weights, not the bias); returns (weights, bias) in raw feature units."""
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-9] = 1.0
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    reg = np.eye(z.shape[1]) * l2
    reg[-1, -1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + reg @ w
        hess = (z.T * (p * (1 - p))) @ z + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    raw = w[:-1] / sd
    bias = w[-1] - float(np.dot(raw, mu))
    return raw, bias


def by_set(rows, scores, min_score: float, caution: float) -> dict:
    """Per question file and corpus: unanswerable and answerable questions, how many of each
    are refused (below ``min_score``) and refused or flagged (below ``caution``)."""
    out: dict = {}
    for row, s in zip(rows, scores):
        kind = "answerable" if row["answerable"] else "unanswerable"
        entry = out.setdefault(row.get("set") or "?", {}).setdefault(row["corpus"], {})
        counts = entry.setdefault(kind, {"n": 0, "refused": 0, "flagged": 0})
        counts["n"] += 1
        counts["refused"] += int(s < min_score)
        counts["flagged"] += int(s < caution)
    return out


def fmt_set(name: str, corpora: dict) -> str:
    """"dev_questions.jsonl: unanswerable refused 2 / 2 of 2 (flagged 2 / 2); ...", PDF / txt."""
    parts = []
    for kind in ("unanswerable", "answerable"):
        counts = [corpora.get(c, {}).get(kind) for c in ("pdf", "txt")]
        if not any(counts):
            continue
        n = next(c["n"] for c in counts if c)
        refused = " / ".join(str(c["refused"]) if c else "-" for c in counts)
        flagged = " / ".join(str(c["flagged"]) if c else "-" for c in counts)
        parts.append(f"{kind} refused {refused} of {n} (with the note {flagged})")
    return f"  {name} (PDF / txt): " + "; ".join(parts)


def capped(scores, rows, answerability):
    """The scores in use: a question giving a value no retrieved chunk holds is capped
    (rag.answerability ``Signals.values``, not fitted)."""
    values = np.array([row.get("values", 1.0) for row in rows])
    return np.where(values < 1.0, np.minimum(scores, answerability.MISSING_VALUE_CAP), scores)


def predict(x, weights, bias):
    return 1 / (1 + np.exp(-(x @ weights + bias)))


def auc(positive_scores, negative_scores) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    pos, neg = np.asarray(positive_scores), np.asarray(negative_scores)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def refusal_threshold(scores: np.ndarray, answerable: np.ndarray, share: float = MAX_REFUSED_ANSWERABLE) -> float:
    """The highest threshold (refuse below it) that refuses at most ``share`` of the answerable."""
    allowed = int(np.floor(share * answerable.sum()))
    ans = np.sort(scores[answerable])
    # refusing below ans[allowed] refuses exactly the `allowed` lowest answerable ones
    upper = float(ans[allowed]) if allowed < len(ans) else float(ans[-1]) + 1e-3
    below = scores[~answerable & (scores < upper)]
    lower = float(below.max()) if len(below) else upper - 0.05
    return round((lower + upper) / 2, 4) if lower < upper else round(upper, 4)


def rates(scores, answerable, threshold) -> dict:
    refused = scores < threshold
    return {"unanswerable_refused": float(refused[~answerable].mean()) if (~answerable).any() else None,
            "answerable_refused": float(refused[answerable].mean()) if answerable.any() else None,
            "n_unanswerable": int((~answerable).sum()), "n_answerable": int(answerable.sum())}


def collect(index_path: Path, questions: list[dict], log) -> tuple[list[dict], list[dict]]:
    from rag.answerability import signals
    from rag.citations import CitationChecker, term_evidence
    from rag.embedders import get_embedder
    from rag.evaluation.metrics import keyword_groups_match, passage_in_chunk
    from rag.generators.extractive import lead, rank_passages
    from rag.qa import WindowLookup
    from rag.retrieval import search
    from rag.settings import RetrievalSettings
    from rag.store import load_index

    index = load_index(index_path)
    embedder = get_embedder(index.embed_model)
    checker = CitationChecker(index, embedder)
    windows = WindowLookup(index, embedder)
    settings = RetrievalSettings()
    rows, pairs = [], []
    for q in questions:
        retrieval = search(index, q["question"], settings)
        evidence_terms = term_evidence(q["question"], index, embedder)
        ranked = rank_passages(q["question"], retrieval.sources, embedder, evidence_terms, windows)
        sig, _ = signals(q["question"], retrieval, index, embedder, evidence=evidence_terms,
                         passage=lead(ranked)[1] if ranked else "")
        rows.append({"id": q["id"], "set": q.get("_file"), "lang": q.get("lang"),
                     "answerable": q.get("answerable", True) is not False, **sig.to_dict()})
        evidence = q.get("evidence")
        groups = q.get("answer") or []
        if not evidence or not groups or q.get("answerable") is False:
            continue
        claim = q["question"].rstrip() + " " + ", ".join(g[0] for g in groups if g)
        claim_evidence = term_evidence(claim, index, embedder, terms=None)
        vector = embedder.embed_queries([claim])[0]
        views = checker.views(retrieval.sources)
        for view in views:
            holds = passage_in_chunk(evidence, view.source.text)
            if not holds and keyword_groups_match(view.source.text, groups):
                continue  # holds the answer elsewhere: neither label is sure
            feats, _ = checker.features(claim, claim_evidence, vector, view)
            pairs.append({"id": q["id"], "supports": bool(holds), "features": [round(f, 4) for f in feats]})
    log(f"{index_path.name}: {len(rows)} questions, {len(pairs)} claim/chunk pairs")
    return rows, pairs


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--pdf-index", help="an index of ../shared/corpus/pdf to reuse")
    p.add_argument("--txt-index", help="an index of ../shared/corpus/txt to reuse")
    args = p.parse_args()
    log = common.Log(args.quiet or args.json)
    from rag import answerability, citations, config

    questions = read(QUESTION_FILES)
    checks = read(CHECK_FILES)
    rows, pairs, check_rows = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, given in (("pdf", args.pdf_index), ("txt", args.txt_index)):
            path = Path(given) if given else build_index(kind, Path(tmp), log)
            r, s = collect(path, questions, log)
            c, _ = collect(path, checks, log)
            for row in r + c:
                row["corpus"] = kind
            rows += r
            pairs += s
            check_rows += c

    # ---------------------------------------------------------------- answerability
    names = answerability.FEATURES
    x = np.array([[row[n] for n in names] for row in rows])
    answerable = np.array([row["answerable"] for row in rows])
    weights, bias = logistic_fit(x, answerable.astype(float))
    fitted = predict(x, weights, bias)
    current = capped(predict(x, np.asarray(answerability.WEIGHTS), answerability.BIAS), rows, answerability)
    # 5-fold cross-validation by question id (the same question on both corpora stays in one fold)
    ids = sorted({row["id"] for row in rows})
    fold_of = {qid: i % 5 for i, qid in enumerate(ids)}
    folds = np.array([fold_of[row["id"]] for row in rows])
    held_out = np.zeros(len(rows))
    for f in range(5):
        w, b = logistic_fit(x[folds != f], answerable[folds != f].astype(float))
        held_out[folds == f] = predict(x[folds == f], w, b)
    held_out = capped(held_out, rows, answerability)
    threshold = refusal_threshold(current, answerable)
    caution = refusal_threshold(current, answerable, MAX_CAUTIONED_ANSWERABLE)
    before = np.array([row["dense"] for row in rows])
    old_threshold = 0.17  # the dense-cosine threshold before this score
    single = {n: auc(x[answerable, i], x[~answerable, i]) for i, n in enumerate(names)}
    refusal = {
        "features": list(names),
        "fitted": {"weights": [round(float(v), 3) for v in weights], "bias": round(float(bias), 3)},
        "in_use": {"weights": list(answerability.WEIGHTS), "bias": answerability.BIAS,
                   "min_score": config.DEFAULT_MIN_SCORE},
        "auc_before_dense_cosine": auc(before[answerable], before[~answerable]),
        "auc_each_signal": single,
        "auc_fitted": auc(fitted[answerable], fitted[~answerable]),
        "auc_in_use": auc(current[answerable], current[~answerable]),
        "auc_cross_validated": auc(held_out[answerable], held_out[~answerable]),
        "recommended_min_score": threshold,
        "at_recommended": rates(current, answerable, threshold),
        "at_default": rates(current, answerable, config.DEFAULT_MIN_SCORE),
        "before_at_0.17": rates(before, answerable, old_threshold),
        "cross_validated_at_recommended": rates(held_out, answerable,
                                                refusal_threshold(held_out, answerable)),
        "recommended_caution_score": caution,
        # below the caution threshold: refused or answered with a low-confidence note
        "flagged_at_caution_default": rates(current, answerable, config.DEFAULT_CAUTION_SCORE),
        "cross_validated_flagged": rates(held_out, answerable,
                                         refusal_threshold(held_out, answerable, MAX_CAUTIONED_ANSWERABLE)),
        "by_corpus": {},
    }
    for kind in ("pdf", "txt"):
        m = np.array([row["corpus"] == kind for row in rows])
        refusal["by_corpus"][kind] = {"auc_before": auc(before[m & answerable], before[m & ~answerable]),
                                      "auc_in_use": auc(current[m & answerable], current[m & ~answerable]),
                                      **rates(current[m], answerable[m], config.DEFAULT_MIN_SCORE)}
    wrong = [{"id": row["id"], "corpus": row["corpus"], "answerable": row["answerable"],
              "score": round(float(s), 4)} for row, s in zip(rows, current)
             if (s < config.DEFAULT_MIN_SCORE) == row["answerable"]]
    refusal["misjudged_at_default"] = wrong

    # ---------------------------------------------------------------- support
    sx = np.array([pair["features"] for pair in pairs])
    sy = np.array([pair["supports"] for pair in pairs])
    sw, sb = logistic_fit(sx, sy.astype(float))
    s_current = np.array([citations.support_score(f) for f in sx])
    cut = youden(s_current, sy)
    support = {
        "features": ["window_cosine", "term_coverage", "token_coverage", "number_coverage", "missing_rarest"],
        "pairs": len(pairs), "supporting": int(sy.sum()),
        "fitted": {"weights": [round(float(v), 3) for v in sw], "bias": round(float(sb), 3)},
        "in_use": {"weights": list(citations.SUPPORT_WEIGHTS), "bias": citations.SUPPORT_BIAS,
                   "threshold": citations.SUPPORT_THRESHOLD},
        "auc_each_feature": {n: auc(sx[sy, i], sx[~sy, i]) for i, n in
                             enumerate(["window_cosine", "term_coverage", "token_coverage", "number_coverage", "missing_rarest"])},
        "auc_in_use": auc(s_current[sy], s_current[~sy]),
        "youden_threshold": cut,
        "at_threshold": {"supporting_passed": float((s_current[sy] >= citations.SUPPORT_THRESHOLD).mean()),
                         "not_supporting_passed": float((s_current[~sy] >= citations.SUPPORT_THRESHOLD).mean())},
    }
    # ---------------------------------------------------------------- held-out check
    cx = np.array([[row[n] for n in names] for row in check_rows])
    c_answerable = np.array([row["answerable"] for row in check_rows])
    c_scores = capped(predict(cx, np.asarray(answerability.WEIGHTS), answerability.BIAS), check_rows, answerability)
    check = {"files": [Path(f).name for f in CHECK_FILES],
             "auc_in_use": auc(c_scores[c_answerable], c_scores[~c_answerable]),
             "at_default": rates(c_scores, c_answerable, config.DEFAULT_MIN_SCORE),
             "flagged_at_caution_default": rates(c_scores, c_answerable, config.DEFAULT_CAUTION_SCORE)}
    refusal["held_out_check"] = check
    refusal["by_set"] = by_set(rows + check_rows, np.concatenate([current, c_scores]),
                               config.DEFAULT_MIN_SCORE, config.DEFAULT_CAUTION_SCORE)
    report = {"questions": len(questions), "refusal": refusal, "support": support, "rows": rows,
              "check_rows": check_rows}
    table = "\n".join([
        f"answerability ROC AUC: before (dense cosine) {refusal['auc_before_dense_cosine']:.3f}, "
        f"in use {refusal['auc_in_use']:.3f}, refit {refusal['auc_fitted']:.3f}, "
        f"5-fold cross-validated {refusal['auc_cross_validated']:.3f}",
        f"  per signal: " + ", ".join(f"{k} {v:.3f}" for k, v in single.items()),
        f"  refit weights {refusal['fitted']['weights']} bias {refusal['fitted']['bias']}",
        f"  at min_score {config.DEFAULT_MIN_SCORE}: {fmt_rates(refusal['at_default'])}",
        f"  recommended min_score {threshold}: {fmt_rates(refusal['at_recommended'])}",
        f"  cross-validated: {fmt_rates(refusal['cross_validated_at_recommended'])}",
        f"  before (cosine < {old_threshold}): {fmt_rates(refusal['before_at_0.17'])}",
        f"  low confidence below {config.DEFAULT_CAUTION_SCORE} (recommended {caution}): "
        f"{fmt_rates(refusal['flagged_at_caution_default'], 'refused or flagged')}",
        f"  cross-validated: {fmt_rates(refusal['cross_validated_flagged'], 'refused or flagged')}",
        f"held-out check ({', '.join(check['files'])}, not fitted on): ROC AUC {check['auc_in_use']:.3f}; "
        f"{fmt_rates(check['at_default'])}; {fmt_rates(check['flagged_at_caution_default'], 'refused or flagged')}",
        f"per question file at min_score {config.DEFAULT_MIN_SCORE}, with the note below {config.DEFAULT_CAUTION_SCORE}:",
        *(fmt_set(name, corpora) for name, corpora in refusal["by_set"].items()),
        f"support ROC AUC {support['auc_in_use']:.3f} on {len(pairs)} pairs ({int(sy.sum())} supporting); "
        f"refit weights {support['fitted']['weights']} bias {support['fitted']['bias']}; Youden cut {cut}",
        f"  per feature: " + ", ".join(f"{k} {v:.3f}" for k, v in support["auc_each_feature"].items()),
        f"  at threshold {citations.SUPPORT_THRESHOLD}: supporting passed "
        f"{support['at_threshold']['supporting_passed']:.2f}, not supporting passed "
        f"{support['at_threshold']['not_supporting_passed']:.2f}",
    ])
    common.emit("calibrate", report, table, args.json)


def fmt_rates(r: dict, verb: str = "refused") -> str:
    return (f"unanswerable {verb} {r['unanswerable_refused']:.2f} (of {r['n_unanswerable']}), "
            f"answerable {verb} {r['answerable_refused']:.3f} (of {r['n_answerable']})")


def youden(scores: np.ndarray, labels: np.ndarray) -> float:
    best, cut = -1.0, 0.5
    for t in np.unique(np.round(scores, 3)):
        j = (scores[labels] >= t).mean() - (scores[~labels] >= t).mean()
        if j > best:
            best, cut = j, float(t)
    return round(cut, 3)


if __name__ == "__main__":
    main()
