"""Metrics of `rag eval`: plain functions over strings, lists and numpy arrays.

Retrieval   hit@k, MRR@k, recall@k of evidence passages and of expected source files.
Answers     keyword-group accuracy, exact match, token F1 (CJK by characters).
Grounding   share of answer sentences supported by the retrieved chunks; citation validity;
            citation precision and recall from the answers' own citation check.
Refusal     the "unanswerable" class as the positive one: confusion matrix, precision,
            recall, F1, ROC/AUC of the answerability score, a recommended threshold.
Latency     percentiles.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# --------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")
from rag.text import CITATION as _CITATION
from rag.text import CJK_ALL as _CJK_CHAR
from rag.text import split_sentences as _split_sentences

_TOKEN = re.compile(rf"[{_CJK_CHAR}]|[^\W_{_CJK_CHAR}]+", re.UNICODE)
_ARTICLES = frozenset({"a", "an", "the"})


def squash(text: str) -> str:
    """NFKC-normalized text with every whitespace character removed (for "contains, ignoring whitespace")."""
    return _WS.sub("", unicodedata.normalize("NFKC", text or ""))


def answer_tokens(text: str) -> list[str]:
    """Lower-cased words, CJK characters one by one, punctuation and English articles dropped."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return [t for t in _TOKEN.findall(text) if t not in _ARTICLES]


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text or "").strip()


def split_sentences(text: str) -> list[str]:
    """Answer sentences (citation markers kept), blank and punctuation-only pieces dropped."""
    out = []
    for piece in _split_sentences(text or ""):
        piece = piece.strip(" \t-*#>|")
        leading = _LEADING_MARKERS.match(piece)
        if leading and out:
            # "The programming. [1] Next one [2].": the marker after a full stop cites the
            # sentence it follows
            out[-1] = f"{out[-1]} {leading.group(0).strip()}"
            piece = piece[leading.end():]
        if piece and re.search(r"\w", strip_citations(piece)):
            out.append(piece)
    return out


_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+\s*")


def citations(sentence: str) -> list[int]:
    """The numbers of the [n] / [n, m] markers in ``sentence``, in order."""
    numbers = []
    for group in _CITATION.findall(sentence):
        numbers += [int(n) for n in re.split(r"\s*[,;]\s*", group) if n]
    return numbers


def file_stem(name: str | None) -> str:
    """``docs/003_x.pdf`` and ``003_x.txt`` both -> ``003_x`` (case-insensitive)."""
    if not name:
        return ""
    base = Path(str(name).replace("\\", "/")).name
    return (Path(base).stem if "." in base else base).lower()


def _div(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def mean(values: Iterable[float | None]) -> float | None:
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


# --------------------------------------------------------------------------- retrieval


def passage_in_chunk(passage: str, chunk: str, window: int = 60) -> bool:
    """Whether ``chunk`` holds the gold ``passage``, ignoring whitespace.

    A short passage (the dev set's ``evidence``) must be contained in the chunk. A long
    reference context (RAGAS ``reference_contexts``) is usually cut across chunks: it
    counts when the chunk lies inside it or shares a ``1.5 * window`` character run with it.
    """
    p, c = squash(passage), squash(chunk)
    if not p or not c:
        return False
    if p in c:
        return True
    if len(p) <= 2 * window:
        return False
    if c in p:
        return True
    step = window // 2
    return any(p[i:i + window] in c for i in range(0, len(p) - window + 1, step))


def evidence_ranks(chunks: Sequence[str], passages: Sequence[str]) -> list[int | None]:
    """For each gold passage, the 1-based rank of the first chunk holding it (None: not retrieved)."""
    ranks: list[int | None] = []
    for passage in passages:
        rank = next((i for i, chunk in enumerate(chunks, start=1) if passage_in_chunk(passage, chunk)), None)
        ranks.append(rank)
    return ranks


def source_ranks(retrieved: Sequence[str], expected: Sequence[str]) -> list[int | None]:
    """For each expected source file, the 1-based rank of the first chunk from it (by file stem)."""
    stems = [file_stem(s) for s in retrieved]
    return [next((i for i, s in enumerate(stems, start=1) if s and s == file_stem(e)), None) for e in expected]


def ranking_scores(ranks: Sequence[int | None], k: int | None = None) -> dict[str, float] | None:
    """hit@k (any gold item found), MRR@k (1 / rank of the first found), recall@k (share found)."""
    if not ranks:
        return None
    found = [r for r in ranks if r is not None and (k is None or r <= k)]
    first = min(found) if found else None
    return {"hit": 1.0 if found else 0.0, "mrr": 1.0 / first if first else 0.0, "recall": len(found) / len(ranks)}


# --------------------------------------------------------------------------- answers


def keyword_groups_match(answer: str, groups: Sequence[Sequence[str]]) -> bool | None:
    """True when ``answer`` contains (case-insensitively) one alternative of every group."""
    if not groups:
        return None
    text = unicodedata.normalize("NFKC", answer or "").casefold()
    squashed = squash(text)
    for group in groups:
        alternatives = [unicodedata.normalize("NFKC", a).casefold() for a in group if a]
        # Containment, as the question-file format defines it: "843" is in "843.3063", and so
        # "0.82" is in "0.8246" too; write the alternatives as exact as the answer must be.
        if not any(a in text or squash(a) in squashed for a in alternatives):
            return False
    return True


def exact_match(prediction: str, references: Sequence[str]) -> float | None:
    if not references:
        return None
    pred = answer_tokens(strip_citations(prediction))
    return 1.0 if any(pred == answer_tokens(r) for r in references) else 0.0


def token_f1(prediction: str, references: Sequence[str] | str) -> float | None:
    """SQuAD-style token F1 (best over references); Chinese/Japanese/Korean count character by character."""
    if isinstance(references, str):
        references = [references]
    if not references:
        return None
    pred = answer_tokens(strip_citations(prediction))
    best = 0.0
    for reference in references:
        ref = answer_tokens(reference)
        if not pred or not ref:
            best = max(best, 1.0 if pred == ref else 0.0)
            continue
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


# --------------------------------------------------------------------------- grounding

# A sentence is supported by a chunk when most of its content tokens occur in it, or
# (answers paraphrase, and may be in another language than the chunk) when their
# embeddings are close. Starting values, not calibrated yet: extractive answers (the
# only ones measured so far) quote chunks and score 1.0 token support; the cosine
# cut-off should be checked against LLM answers (--judge gives a second opinion).
TOKEN_SUPPORT = 0.6
COSINE_SUPPORT = 0.55


def token_support(sentence: str, chunk: str) -> float:
    """Share of the sentence's content tokens (rag.lexical tokens: CJK bigrams) found in the chunk."""
    from rag.lexical import tokenize

    tokens = set(tokenize(strip_citations(sentence)))
    if not tokens:
        return 1.0
    return len(tokens & set(tokenize(chunk))) / len(tokens)


def support_matrix(sentences: Sequence[str], chunks: Sequence[str],
                   cosines: np.ndarray | None = None) -> np.ndarray:
    """support[i, j] in [0, 1]: how well chunk j supports sentence i (max of token support and
    cosine rescaled so that ``COSINE_SUPPORT`` maps onto ``TOKEN_SUPPORT``)."""
    support = np.zeros((len(sentences), len(chunks)), dtype=np.float64)
    for i, sentence in enumerate(sentences):
        for j, chunk in enumerate(chunks):
            support[i, j] = token_support(sentence, chunk)
    if cosines is not None and cosines.size:
        scaled = np.clip(np.asarray(cosines, dtype=np.float64) * (TOKEN_SUPPORT / COSINE_SUPPORT), 0.0, 1.0)
        support = np.maximum(support, scaled)
    return support


def groundedness(support: np.ndarray) -> float | None:
    """Share of sentences whose best chunk supports them."""
    if support.shape[0] == 0:
        return None
    if support.shape[1] == 0:
        return 0.0
    return float(np.mean(support.max(axis=1) >= TOKEN_SUPPORT - 1e-9))


def citation_check(sentences: Sequence[str], n_sources: int, support: np.ndarray | None) -> dict[str, float | int | None]:
    """Every [n] marker: does it name a retrieved source (1..n_sources), and does that source
    support the sentence it ends? Also the share of sentences that carry a citation."""
    total = valid = supported = cited_sentences = 0
    for i, sentence in enumerate(sentences):
        numbers = citations(sentence)
        if numbers:
            cited_sentences += 1
        for n in numbers:
            total += 1
            if 1 <= n <= n_sources:
                valid += 1
                if support is not None and support.shape[1] >= n and support[i, n - 1] >= TOKEN_SUPPORT - 1e-9:
                    supported += 1
    return {
        "citations": total,
        "citations_valid": valid,
        "citations_supported": supported,
        "citation_validity": _div(valid, total),
        "citation_support": _div(supported, total),
        "cited_sentences": _div(cited_sentences, len(sentences)),
    }


def checked_citations(citations: Sequence[dict] | None) -> dict[str, int]:
    """Counts from an answer's checked citations (``Answer.citations`` as dicts, see
    rag/citations.py): what the generator cited against what the check found.

    ``cited``: (sentence, source) pairs the generator wrote that name a source;
    ``cited_supporting``: those the check kept (the source supports the sentence);
    ``claims_supported``: sentences some source supports; ``claims_supported_cited``:
    those the generator gave a citation; ``claims_unsupported``: sentences no source
    supports (marked for the reader)."""
    counts = {"cited": 0, "cited_supporting": 0, "claims_supported": 0, "claims_supported_cited": 0,
              "claims_unsupported": 0}
    for c in citations or []:
        cited = [n for n in c.get("cited") or []]
        kept = set(c.get("sources") or [])
        counts["cited"] += len(cited)
        counts["cited_supporting"] += sum(1 for n in cited if n in kept)
        if c.get("supported") and kept:
            counts["claims_supported"] += 1
            counts["claims_supported_cited"] += 1 if cited else 0
        elif not c.get("supported"):
            counts["claims_unsupported"] += 1
    return counts


def citation_rates(rows: Sequence[dict]) -> dict[str, float | int | None]:
    """Citation precision (cited sources that support their sentence) and recall (supported
    sentences that cite), summed over the rows' checked-citation counts."""
    total = {key: sum(int(r.get(key) or 0) for r in rows) for key in
             ("cited", "cited_supporting", "claims_supported", "claims_supported_cited", "claims_unsupported")}
    return {"citation_precision": _div(total["cited_supporting"], total["cited"]),
            "citation_recall": _div(total["claims_supported_cited"], total["claims_supported"]),
            "unsupported_sentences": total["claims_unsupported"], "cited": total["cited"],
            "claims_supported": total["claims_supported"]}


# --------------------------------------------------------------------------- refusal as a classifier


def confusion(unanswerable: Sequence[bool], refused: Sequence[bool]) -> dict[str, float | int | None]:
    """Refusal as a binary classifier, "unanswerable" the positive class."""
    y = np.asarray(unanswerable, dtype=bool)
    p = np.asarray(refused, dtype=bool)
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    tn = int(np.sum(~y & ~p))
    precision = _div(tp, tp + fp)
    recall = _div(tp, tp + fn)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": tp + fp + fn + tn,
        "accuracy": _div(tp + tn, tp + fp + fn + tn),
        "precision": precision, "recall": recall, "f1": f1,
        "answerable_refused": fp, "unanswerable_answered": fn,
    }


def roc_curve(labels: Sequence[bool], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for "positive when score >= threshold", starting at (0, 0).

    Tied scores move together (one point per distinct score), as in scikit-learn.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.where(np.diff(s))[0]
    ends = np.r_[distinct, len(s) - 1]
    tps = np.cumsum(y)[ends]
    fps = np.cumsum(~y)[ends]
    pos, neg = y.sum(), (~y).sum()
    tpr = np.r_[0.0, tps / pos] if pos else np.full(len(ends) + 1, np.nan)
    fpr = np.r_[0.0, fps / neg] if neg else np.full(len(ends) + 1, np.nan)
    thresholds = np.r_[np.inf, s[ends]]
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float | None:
    if len(fpr) < 2 or np.isnan(fpr).any() or np.isnan(tpr).any():
        return None
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def roc_auc(unanswerable: Sequence[bool], answerability: Sequence[float]) -> dict | None:
    """ROC of detecting unanswerable questions by a low answerability score (uses ``-score``)."""
    y = np.asarray(unanswerable, dtype=bool)
    if len(y) == 0 or y.all() or not y.any():
        return None
    fpr, tpr, thresholds = roc_curve(y, -np.asarray(answerability, dtype=np.float64))
    return {
        "auc": auc(fpr, tpr),
        "fpr": [round(float(v), 6) for v in fpr],
        "tpr": [round(float(v), 6) for v in tpr],
        # on Answer.score: refuse below this value
        "score_thresholds": [None if not np.isfinite(t) else round(float(-t), 6) for t in thresholds],
    }


def candidate_thresholds(scores: Sequence[float]) -> np.ndarray:
    """Midpoints between consecutive distinct scores, plus one below the lowest and one above the highest."""
    s = np.unique(np.round(np.asarray(scores, dtype=np.float64), 6))
    if len(s) == 0:
        return np.array([])
    mids = (s[:-1] + s[1:]) / 2
    return np.round(np.r_[s[0] - 0.01, mids, s[-1] + 0.01], 4)


def threshold_sweep(unanswerable: Sequence[bool], scores: Sequence[float],
                    thresholds: Sequence[float] | None = None) -> list[dict]:
    """For each threshold t (refuse when score < t): the confusion counts, precision, recall, F1, Youden J."""
    y = np.asarray(unanswerable, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    thresholds = candidate_thresholds(s) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    rows = []
    for t in thresholds:
        c = confusion(y, s < t)
        tpr = _div(c["tp"], c["tp"] + c["fn"])
        fpr = _div(c["fp"], c["fp"] + c["tn"])
        j = (tpr - fpr) if tpr is not None and fpr is not None else None
        rows.append({"threshold": round(float(t), 4), **{k: c[k] for k in ("tp", "fp", "fn", "tn", "precision", "recall", "f1", "accuracy")},
                     "youden_j": j})
    return rows


CRITERIA = {"f1": ("f1", "youden_j"), "youden": ("youden_j", "f1"), "youden_j": ("youden_j", "f1"),
            "accuracy": ("accuracy", "f1")}


def recommend_threshold(unanswerable: Sequence[bool], scores: Sequence[float], current: float | None = None,
                        criterion: str = "f1", alternatives: bool = True) -> dict | None:
    """The refusal threshold on Answer.score that maximizes F1 of "unanswerable" (or Youden's
    J, or accuracy), with the effect of moving from ``current`` to it.

    Several thresholds often tie (a gap between the classes): the middle of the best
    range is taken, the value with the most margin on both sides. With ``alternatives``
    the optima of the other criteria are added (with few unanswerable questions, max F1
    may refuse many answerable ones to catch one more).
    """
    y = np.asarray(unanswerable, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) == 0 or y.all() or not y.any():
        return None
    sweep = threshold_sweep(y, s)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion '{criterion}': choose one of {', '.join(CRITERIA)}")
    primary, secondary = CRITERIA[criterion]
    key = [((r[primary] if r[primary] is not None else -1.0), (r[secondary] if r[secondary] is not None else -1.0))
           for r in sweep]
    best = max(key)
    tied = [i for i, k in enumerate(key) if k == best]
    # the middle of the longest run of consecutive tied thresholds
    runs, run = [], [tied[0]]
    for i in tied[1:]:
        if i == run[-1] + 1:
            run.append(i)
        else:
            runs.append(run)
            run = [i]
    runs.append(run)
    longest = max(runs, key=len)
    # Candidate i (a midpoint) stands for every threshold in (u[i-1], u[i]]: the run of
    # tied candidates covers (u[first-1], u[last]]; take the middle of that interval.
    u = np.unique(np.round(s, 6))
    first, last = longest[0], longest[-1]
    low = float(u[first - 1]) if first > 0 else None
    high = float(u[last]) if last < len(u) else None
    if low is not None and high is not None:
        threshold = round((low + high) / 2, 4)
    else:
        threshold = sweep[first]["threshold"] if low is None else sweep[last]["threshold"]
    chosen = threshold_sweep(y, s, [threshold])[0]
    out = {
        "criterion": primary,
        "threshold": threshold,
        # refuse below any value in (low, high] for the same result
        "range": [None if low is None else round(low, 4), None if high is None else round(high, 4)],
        "f1": chosen["f1"], "youden_j": chosen["youden_j"], "precision": chosen["precision"],
        "recall": chosen["recall"], "accuracy": chosen["accuracy"],
        "answerable_refused": chosen["fp"], "unanswerable_answered": chosen["fn"],
    }
    if current is not None:
        now = threshold_sweep(y, s, [current])[0]
        refused_now, refused_then = s < current, s < threshold
        out["current"] = {
            "threshold": round(float(current), 4), "f1": now["f1"], "youden_j": now["youden_j"],
            "answerable_refused": now["fp"], "unanswerable_answered": now["fn"],
        }
        out["change"] = {
            "answerable_newly_refused": int(np.sum(~y & refused_then & ~refused_now)),
            "answerable_no_longer_refused": int(np.sum(~y & ~refused_then & refused_now)),
            "unanswerable_newly_refused": int(np.sum(y & refused_then & ~refused_now)),
            "unanswerable_newly_answered": int(np.sum(y & ~refused_then & refused_now)),
        }
    if alternatives:
        out["alternatives"] = {}
        for other in ("youden", "accuracy"):
            if CRITERIA[other][0] == primary:
                continue
            alt = recommend_threshold(y, s, None, other, alternatives=False)
            out["alternatives"][CRITERIA[other][0]] = {
                key: alt[key] for key in ("threshold", "range", "f1", "youden_j", "accuracy", "answerable_refused",
                                          "unanswerable_answered")}
    return out


# --------------------------------------------------------------------------- latency


def percentiles(values: Iterable[float | None]) -> dict[str, float] | None:
    v = np.asarray([float(x) for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    return {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "mean": float(v.mean()),
            "max": float(v.max()), "n": int(v.size)}


# --------------------------------------------------------------------------- aggregation over result rows


def _rate(rows: list[dict], field: str) -> float | None:
    return mean(float(r[field]) for r in rows if r.get(field) is not None)


def _count(rows: list[dict], field: str) -> int:
    return sum(1 for r in rows if r.get(field) is not None)


def group_metrics(rows: list[dict]) -> dict:
    """The headline numbers of a subset of rows (a language, a document)."""
    labelled = [r for r in rows if r.get("answerable") is not None]
    return {
        "n": len(rows),
        "answerable": sum(1 for r in rows if r.get("answerable") is True),
        "unanswerable": sum(1 for r in rows if r.get("answerable") is False),
        "hit": _rate(rows, "hit"),
        "mrr": _rate(rows, "mrr"),
        "source_hit": _rate(rows, "source_hit"),
        "keyword_accuracy": _rate(rows, "keyword_correct"),
        "f1": _rate(rows, "f1"),
        "semantic_similarity": _rate(rows, "semantic_similarity"),
        "groundedness": _rate(rows, "groundedness"),
        "refusal_accuracy": mean(1.0 if bool(r["refused"]) == (r["answerable"] is False) else 0.0 for r in labelled),
        "accuracy": _rate(rows, "correct"),
        "refused": sum(1 for r in rows if r.get("refused")),
        **{k: v for k, v in citation_rates([r for r in rows if not r.get("refused")]).items()
           if k in ("citation_precision", "citation_recall")},
    }


def aggregate(rows: list[dict], k: int, current_threshold: float | None = None) -> dict:
    """Every metric of a run from its per-question rows (rows with an ``error`` are only counted)."""
    ok = [r for r in rows if not r.get("error")]
    out: dict = {
        "counts": {
            "questions": len(rows), "evaluated": len(ok), "errors": len(rows) - len(ok),
            "answerable": sum(1 for r in ok if r.get("answerable") is True),
            "unanswerable": sum(1 for r in ok if r.get("answerable") is False),
            "unlabelled": sum(1 for r in ok if r.get("answerable") is None),
            "refused": sum(1 for r in ok if r.get("refused")),
        },
        "k": k,
    }
    retrieval = {}
    for name, prefix in (("evidence", ""), ("source", "source_")):
        scored = [r for r in ok if r.get(prefix + "hit") is not None]
        if scored:
            retrieval[name] = {
                "n": len(scored),
                f"hit@{k}": mean(r[prefix + "hit"] for r in scored),
                f"mrr@{k}": mean(r[prefix + "mrr"] for r in scored),
                f"recall@{k}": mean(r[prefix + "recall"] for r in scored),
            }
    out["retrieval"] = retrieval

    answers = {}
    for name, field in (("keyword_accuracy", "keyword_correct"), ("exact_match", "exact_match"),
                        ("token_f1", "f1"), ("semantic_similarity", "semantic_similarity"),
                        ("accuracy", "correct")):
        if _count(ok, field):
            answers[name] = _rate(ok, field)
            answers[f"{name}_n"] = _count(ok, field)
    out["answer"] = answers

    answered = [r for r in ok if not r.get("refused")]
    grounding: dict = {}
    if _count(answered, "groundedness"):
        grounding["groundedness"] = _rate(answered, "groundedness")
        grounding["groundedness_n"] = _count(answered, "groundedness")
    total = sum(r.get("citations") or 0 for r in answered)
    if answered:
        grounding["citations"] = total
        grounding["citation_validity"] = _div(sum(r.get("citations_valid") or 0 for r in answered), total)
        grounding["citation_support"] = _div(sum(r.get("citations_supported") or 0 for r in answered), total)
        grounding["cited_sentences"] = _rate(answered, "cited_sentences")
        if any(r.get("cited") is not None for r in answered):
            # From the answers' own citation check (rag/citations.py): precision of what the
            # generator cited, recall of the supported sentences it cited.
            grounding.update(citation_rates(answered))
    judged = [r["judge"] for r in ok if isinstance(r.get("judge"), dict) and not r["judge"].get("error")]
    if judged:
        grounding["judge_groundedness"] = mean(j.get("grounded") for j in judged)
        grounding["judge_correct"] = mean(None if j.get("correct") is None else float(bool(j["correct"]))
                                          for j in judged)
        grounding["judge_n"] = len(judged)
        grounding["judge_errors"] = sum(1 for r in ok if isinstance(r.get("judge"), dict) and r["judge"].get("error"))
    out["grounding"] = grounding

    labelled = [r for r in ok if r.get("answerable") is not None]
    refusal: dict = {}
    if labelled:
        y = [r["answerable"] is False for r in labelled]
        refusal["confusion"] = confusion(y, [bool(r.get("refused")) for r in labelled])
        # Refused, or answered with the low-confidence note: what a reader is warned about.
        refusal["flagged"] = confusion(y, [bool(r.get("refused")) or r.get("confidence") == "low"
                                           for r in labelled])
        scored = [(label, r["score"]) for label, r in zip(y, labelled) if r.get("score") is not None]
        if scored:
            labels = [s[0] for s in scored]
            scores = [s[1] for s in scored]
            refusal["roc"] = roc_auc(labels, scores)
            refusal["threshold"] = recommend_threshold(labels, scores, current_threshold)
            refusal["sweep"] = threshold_sweep(labels, scores) if refusal["roc"] else []
            refusal["scores"] = {
                "answerable": sorted(s for label, s in scored if not label),
                "unanswerable": sorted(s for label, s in scored if label),
            }
        refusal["current_threshold"] = current_threshold
    out["refusal"] = refusal

    by_lang: dict[str, list[dict]] = {}
    by_source: dict[str, list[dict]] = {}
    for r in ok:
        by_lang.setdefault(r.get("lang") or "?", []).append(r)
        stems = sorted({file_stem(s) for s in r.get("expected_sources") or []})
        if r.get("answerable") is False:
            stems = ["(unanswerable)"]
        for stem in stems or ["(no source given)"]:
            by_source.setdefault(stem, []).append(r)
    out["by_language"] = {lang: group_metrics(group) for lang, group in sorted(by_lang.items())}
    by_generator: dict[str, list[dict]] = {}
    for r in ok:
        by_generator.setdefault(r.get("generator") or "?", []).append(r)
    out["by_generator"] = {name: group_metrics(group) for name, group in sorted(by_generator.items())}
    out["by_source"] = {src: group_metrics(group) for src, group in sorted(by_source.items())}

    out["latency"] = {
        stage: percentiles(r.get(f"{stage}_s") for r in ok)
        for stage in ("retrieval", "generation", "total")
    }
    return out


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Scalar metrics as ``{"retrieval.evidence.hit@5": 0.9, ...}`` (curves and score lists left out;
    of the ROC only its AUC)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if key in ("sweep", "scores", "range", "fpr", "tpr", "score_thresholds"):
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, (int, float)):
            flat[name] = float(value)
    return flat
