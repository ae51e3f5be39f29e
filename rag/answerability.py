"""Answerability: do the retrieved chunks answer the question? One score, one threshold.

A single dense cosine cannot tell "the documents talk about T5" from "the documents
say T5's BLEU score": a near-topic question lands close to the right chunks and is
answered with whatever they hold. So several signals are combined:

- ``dense``: the best cosine between the question and a chunk (the topic);
- ``coverage``: the rarity-weighted share of the question's content words that the
  best chunk holds, directly or through the cross-lingual term expansion
  ("정확도" reaches "accuracy"); a near-topic question's decisive word ("BLEU",
  "Australia", "TPU") is usually nowhere;
- ``known``: the rarity-weighted share of the question's words that reach any corpus
  word at all;
- ``values``: 0 when the question gives a value (a year, a threshold, a rank: "the 2006 World
  Cup", "with rank r=64") that none of the retrieved chunks holds, else 1. Such a question is
  about a case the documents do not cover, whatever else they share with it: it is not fitted
  (too few questions give values to fit a weight on) but caps the score at
  :data:`MISSING_VALUE_CAP`, below any sensible threshold. Over the calibration sets it
  held for 3 unanswerable questions and no answerable one;
- ``kind``: 0 when the question asks for a number ("how many", "quanti", "몇", "多少") or an
  address and the passage a reader would answer with (rag.generators.extractive.rank_passages)
  holds none, else 1 (rag/answer_types.py). "How many nodes does the AKS cluster have?" finds the AKS
  passage, with every word, but no count in it. A question that says what its number measures
  (money, memory, time taken, a year) wants the value in that unit ("How much does the AKS cluster
  cost per month?" is not answered by its replica count); a metric's name asks for a number right
  after a question word ("What zero-shot accuracy…"), not otherwise. A number must also sit by the question's words
  (rag.answer_types.bound_value): "What log loss did the Titanic model reach?" finds the Titanic passage
  and its accuracy figures, but no figure next to "log loss". A key's value answers only what its key
  names ("axis=1" beside the Titanic words counts no passengers), a format placeholder ("{0:.4f}") is
  no value, "when was it released" wants a date and "what's the maximum…" a figure.

What "reach" means is decided in rag/citations.py (term_evidences): a name ("GPU",
"XLNet") only as written, a compound ("xlnet-large") not through its own parts, a long
word not through its front ("imagenette" is no "image"). Without those rules a
near-topic question borrows the words the documents do have.

Also tried, and left out because the fit gave them no weight once coverage was in:
the best sentence-window cosine, the fused-score margin between the first and the
k-th chunk, coverage within the best ~240-character span, the rarity of the rarest
missing word. For the number's neighbourhood, the question word's nearest term (the
"attribute": "nodes" of "how many nodes") instead of all the question's words: it
misread Korean and Chinese questions and lowered cross-validated refusal.

A logistic model over them (weights fitted by ``python bench/calibrate.py`` on the
dev, extra, near-topic and blind question sets) gives ``Answer.score`` in 0..1; questions
below ``min_score`` (rag.config.DEFAULT_MIN_SCORE, ``--min-score``, ``RAG_MIN_SCORE``)
are refused; answers below ``caution_score`` (rag.config.DEFAULT_CAUTION_SCORE) carry a
low-confidence note (``Answer.confidence`` "low", ``Answer.note``).

In a conversation the coverage is taken over the words of the latest question
itself, not of the question joined with the previous one: "And the capital of
Australia?" after a question about the report borrows its topic for retrieval, but
its own words must still be found.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from .answer_types import answer_type_match, asks_address, asks_quantity, bound_value
from .citations import TermEvidence, term_evidence, words_of

FEATURES = ("dense", "coverage", "known", "kind")
# Fitted by `python bench/calibrate.py` (standardized logistic regression, mapped back
# to raw feature units here); the threshold is rag.config.DEFAULT_MIN_SCORE.
WEIGHTS = (1.828, 2.365, 8.395, 4.011)
BIAS = -12.895
TOP_CHUNKS = 3  # coverage: the best of the first chunks (the answer may sit in the second)
# The score of a question that gives a value no retrieved chunk holds (``Signals.values``).
MISSING_VALUE_CAP = 0.1
# A metric's name asks for its value right after a question word ("What zero-shot accuracy did
# CLIP reach?", "Qual è la log loss…", "Che accuratezza…"), not in a question about the metric
# itself ("What is the difference between precision and recall?", "Can accuracy be the metric?").
_METRICS = (r"(?:accuracy|precision|recall|f1|(?:roc[ _-]?)?auc|bleu|rouge|perplexity|log[ -]?loss|mse|rmse|mae|accuratezza|"
            # (a latency is a figure too: "Qual è la latenza media…")
            r"precisione|latency|latenza|throughput)")
_ASKS_METRIC = re.compile(
    r"(?i)\b(?:what|which|qual[ei]?|che)\b(?:[\s'’]+[^\s?'’]+){0,2}?[\s'’]+" + _METRICS + r"\b"
    # or a query that opens with the metric's name: "F1 score of DistilBERT on the test set"
    r"|^\s*(?:the\s+|la\s+|l'|l’)?" + _METRICS + r"(?:\s+score)?\s+(?:of|for|on|di|del|della|dello|dei|sul|sulla)\b")
# A value in a question: digits not inside or hyphenated to a Latin word ("2006", "0.4",
# "r=64", "2022年"), so "GPT-4", "T5", "F1" and "T5-11B" are names, not values.
_VALUE = re.compile(r"(?<![0-9A-Za-z.,-])\d+(?:[.,]\d+)*(?![0-9A-Za-z])")


@dataclass
class Signals:
    dense: float
    coverage: float
    known: float
    kind: float = 1.0
    values: float = 1.0  # not fitted: 0 caps the score (MISSING_VALUE_CAP)

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in FEATURES], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def score(signals: Signals) -> float:
    """The answerability score in 0..1 of these signals."""
    x = float(np.dot(WEIGHTS, signals.vector())) + BIAS
    fitted = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, x))))
    return fitted if signals.values >= 1.0 else min(fitted, MISSING_VALUE_CAP)


def missing_values(question: str, texts) -> list[str]:
    """The values ``question`` gives that none of ``texts`` holds ("2006" of "Chi ha vinto i
    mondiali nel 2006?"); a value is found as a whole number, thousands separators aside
    ("83" is in "83.1%", not in "1830")."""
    found = []
    flat = [t.replace(",", "") for t in texts]
    for value in dict.fromkeys(_VALUE.findall(question)):
        plain = value.replace(",", "")
        pattern = re.compile(rf"(?<![0-9]){re.escape(plain)}(?![0-9])")
        if not any(pattern.search(t) for t in flat):
            found.append(value)
    return found


def signals(question: str, retrieval, index, embedder, evidence: TermEvidence | None = None,
            own_question: str | None = None, *, passage: str,
            own_evidence: TermEvidence | None = None) -> tuple[Signals, TermEvidence]:
    """The answerability signals of a retrieval for ``question`` (the standalone question);
    ``own_question`` is what the user typed when it was joined to an earlier one; ``passage``
    is the reader's best passage (rag.generators.extractive.rank_passages), "" when there is none;
    ``own_evidence`` is ``own_question``'s term evidence when the caller already has it."""
    sources = retrieval.sources
    if evidence is None:
        evidence = term_evidence(question, index, embedder)
    asked = own_question or question
    own = evidence
    if own_question and own_question != question:
        mine = own_evidence if own_evidence is not None else term_evidence(own_question, index, embedder)
        if len(mine):
            own = mine
    # 0.5 from answer_type_match: the question asks for no particular kind of answer. A
    # metric's name counts only right after a question word (_ASKS_METRIC).
    metric = bool(_ASKS_METRIC.search(asked))
    kind = float(answer_type_match(asked, passage, metrics=metric, hints=False) > 0)
    if kind and asks_quantity(asked, metrics=metric) and not asks_address(asked) and len(own):
        kind = float(bound_value(asked, passage, own))
    values = 0.0 if missing_values(asked, [s.text for s in sources]) else 1.0
    if not sources:
        return Signals(float(retrieval.best_dense), 0.0, evidence.known(), kind, values), evidence
    top = sources[:TOP_CHUNKS]
    coverage = max(own.coverage(source.text, words_of(source.text)) for source in top) if len(own) else 0.0
    return Signals(float(retrieval.best_dense), coverage, own.known(), kind, values), evidence


__all__ = ["Signals", "signals", "score", "missing_values", "MISSING_VALUE_CAP", "FEATURES", "WEIGHTS", "BIAS"]
