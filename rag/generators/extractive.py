"""No language model: the answer is the sentence of the retrieved chunks that answers
the question, with its citation; a second passage only when it scores nearly as well
and says something the first does not. Fast, faithful to the documents, fully offline.

Each candidate (a sentence; consecutive short lines such as "임곗값: 0.4" / "재현율:
0.8197" packed into one passage) is scored by

- its embedding cosine with the question (meaning, across languages),
- the share of the question's tokens it contains (exact terms, numbers, identifiers),
- the rarity-weighted share of the question's words it holds through the
  cross-lingual term expansion (rag/citations.py ``TermEvidence``), which finds the
  sentence of a Chinese report that answers a Korean question; a word counts more the
  fewer of the candidate passages hold it (the topic is in all of them, the focus is not),
- a small prior for the retrieval rank of its chunk,
- whether it holds the kind of answer the question asks for (a number, an address),
- asked what an abbreviation stands for, whether it defines it (rag/aliases.py).

The best passage is quoted, a title left in the text ("行业大模型应用阶段划分") giving way to a
sentence that scores nearly as well; a passage that leans on the sentence before it ("This
approach …") is quoted with that sentence.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from rag.aliases import contains
from rag.answer_types import answer_type_match, asks_quantity, bound_value
from rag.citations import tokens_of
from rag.lexical import tokenize
from rag.text import quote_brackets
from rag.text import split_sentences as _split_sentences

from .base import GenerationRequest, Generator

MAX_PASSAGES = 2  # "a sentence or two"
# A second passage must score within this of the best (score units: cosine + shares)
# and bring at least this share of content tokens the first lacks.
CLOSE_SCORE = 0.15
NEW_CONTENT = 0.5
# Sentences scored per answer: enough to cover the top chunks, few enough that
# embedding them stays within a few tens of milliseconds on a CPU.
MAX_CANDIDATES = 36
# Of those, the passages embedded one by one (the rest are ranked by the cosine of the stored
# sentence window that holds them): embedding dominates an extractive answer's time.
EMBEDDED = 12
SOURCES_SCANNED = 4
# Lines shorter than this without sentence punctuation are fragments (a label, a value,
# a table row): consecutive ones are packed up to PASSAGE_CHARS.
FRAGMENT_CHARS = 60
# Shorter than this, without sentence end, label or number: a title (is_title).
TITLE_CHARS = 40
PASSAGE_CHARS = 240
# Weights of the score parts. Chosen by reasoning, not fitted to questions: the cosine
# ranges ~0.1-0.7; a passage holding all question words (tokens or expanded terms)
# gains up to 0.5 each; retrieval rank adds at most 0.1.
TOKEN_WEIGHT = 0.5
TERM_WEIGHT = 0.5
PRIOR_WEIGHT = 0.1
ANSWER_TYPE_WEIGHT = 0.15  # holds the kind of answer asked for (rag/answer_types.py)
# Asked what an abbreviation stands for, a passage defining it (both forms, rag/aliases.py):
# worth more than a use of it that shares the question's few words.
DEFINITION_WEIGHT = 0.3
# A passage of a document that names what the question names ("XLNet", "LabelEncoder": names
# are written alike in every language) over one of a document that never does: the weight of
# every other part together, so a close wording in the wrong document does not win.
SUBJECT_WEIGHT = 1.0


def split_sentences(text: str, min_chars: int = 8) -> list[str]:
    """Abbreviation-safe sentences ("Dr. Ada Moreno" stays whole) with list and table
    markup stripped, pieces shorter than ``min_chars`` dropped."""
    return [piece for piece, _ in _pieces(text, min_chars)]


def _pieces(text: str, min_chars: int) -> list[tuple[str, bool]]:
    """:func:`split_sentences` with, for each, whether it is a Markdown heading line."""
    out = []
    numbered = False  # "# 7. Deploy to Azure" splits after "7.": the rest is the heading
    for piece in _split_sentences(text):
        heading = piece.startswith("#") or numbered
        piece = piece.strip(" \t-*#>|")
        numbered = heading and bool(_ENUMERATOR.match(piece))
        if len(piece) >= min_chars and re.search(r"\w", piece) and not _ENUMERATOR.match(piece):
            out.append((piece, heading))
    return out


# A list or heading number left alone by the sentence splitter ("## 1. Autoregressive
# Pretraining:" splits after "1."): not a passage, and not an answer to "how many".
_ENUMERATOR = re.compile(r"^(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]$")


_SENTENCE_END = re.compile(r"[.!?。！？]$")


def split_passages(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """Sentences, and for runs of short fragments ("임곗값: 0.4", "재현율: 0.8197") one
    passage starting at each fragment, packed up to ``max_chars``: a label and its value
    often sit on separate lines, and a fixed packing would cut between them."""
    passages: list[str] = []
    run: list[str] = []

    def flush():
        for start in range(len(run)):
            passage = ""
            labels: set[str] = set()
            for piece in run[start:]:
                label = _label(piece)
                if passage and (len(passage) + len(piece) + 1 > max_chars or label in labels):
                    # a label seen again starts the next record: "임곗값: 0.45" after
                    # "임곗값: 0.4 … 정확도: 0.8212. 정밀도: 0.7042. 재현율: 0.8197"
                    break
                if label:
                    labels.add(label)
                passage = f"{passage} {piece}".strip()
            passages.append(passage)
        run.clear()

    # Short pieces are kept here ("0 405", a table row): packed with their neighbours.
    heading = ""
    headings: list[str] = []
    for sentence, is_heading in _continued(_pieces(text, min_chars=2)):
        if is_heading and not sentence.endswith(":"):
            # A Markdown heading alone is not an answer; its words still count for the
            # passages under it (ExtractiveGenerator.heading).
            flush()
            headings.append(sentence)
            continue
        if heading:
            # A line ending with a colon introduces what follows: keep them together.
            sentence, heading = f"{heading} {sentence}", ""
        if sentence.endswith(":") and len(sentence) < max_chars:
            flush()
            heading = sentence
            continue
        if len(sentence) < FRAGMENT_CHARS and (not _SENTENCE_END.search(sentence) or _label(sentence)):
            run.append(sentence)
            continue
        flush()
        passages.append(sentence)
    flush()
    if heading:  # a title with a colon and nothing under it in this chunk
        headings.append(heading)
    kept = [p for p in dict.fromkeys(passages) if len(p) >= 8]
    return kept or [h for h in dict.fromkeys(headings) if len(h) >= 8]  # a text of headings only


# "정확도: 0.8212." / "Recall: 81.9%": a label and its value, a fragment of a printed record
# even with a full stop after it (a notebook's print("정확도: {0:.4f}. 정밀도: …")).
_LABEL_VALUE = re.compile(r"^([^\s:：][^:：]{0,30})[:：]\s*[-+]?\d[\d.,]*%?\.?$")


def _label(piece: str) -> str | None:
    """The label of a "label: value" fragment, or None."""
    match = _LABEL_VALUE.match(piece)
    return match.group(1).strip().lower() if match else None


_CONTINUATION = re.compile(r"^[a-z\[(`'\"]")
# A line ending with one of these words stops mid-sentence, however short it is ("Use a
# (small) CLIP model like" / "[`openai/clip-vit-base-patch16`]..." in a PDF's wrapped lines).
_DANGLING = frozenset(
    "like as such the a an of to and or with for from by in on at is are was were be than that which "
    "di del della dei delle per come con e o il lo la le gli un una uno da su tra fra al alla nel nella".split())


def _continued(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """A line that stops without sentence punctuation and is followed by one that starts in
    lower case or with a bracket or quote ("... a CLIP model like" / "[`openai/clip-vit...`]")
    is one sentence wrapped by the document: joined again. Long lines and lines ending with
    a word that cannot end a sentence qualify; headings never do."""
    out: list[tuple[str, bool]] = []
    for sentence, heading in pieces:
        if out and not out[-1][1] and not heading:
            last = out[-1][0]
            words = last.split()
            if (not _SENTENCE_END.search(last) and not last.endswith(":") and _CONTINUATION.match(sentence)
                    and (len(last) >= FRAGMENT_CHARS or (words and words[-1].lower() in _DANGLING))):
                out[-1] = (f"{last} {sentence}", False)
                continue
        out.append((sentence, heading))
    return out


# A question for what an abbreviation means: "what does MLM stand for", "full name", "sta per",
# "significa", "全称", "是什么意思", "뜻", "약자".
_ASKS_EXPANSION = re.compile(
    r"\bstands? for\b|\bfull (?:name|form)\b|\bacronym\b|\babbreviat|\bsta per\b|\bsignifica\b|"
    r"\bsigla\b|全称|全名|缩写|代表什么|是什么意思|의 약자|약자|줄임말|뜻", re.IGNORECASE)


def _defines(passage: str, tokens, forms) -> bool:
    """Does ``passage`` hold the question's form of an abbreviation (its ``tokens``) and
    another form of it (one of ``forms``): "Masked Language Modeling (MLM)"?"""
    return set(tokens) <= tokens_of(passage) and any(contains(passage, form) for form in forms)


# Markdown bold around words ("**XLNet**", a cut-off "(PEFT)** |"), not the ** of code ("x**2"):
# the quote reads as text; the citation check still finds it in the source (rag.citations.locate).
_BOLD = re.compile(r"(?<![^\s(\[{,;:|])\*\*(?=\S)|(?<=\S)\*\*(?![^\s)\]},.;:!?|])")


def _quote(text: str) -> str:
    return quote_brackets(_BOLD.sub("", text))

# A passage opening with one of these leans on the sentence before it.
_LEANS = re.compile(
    r"^(?:(?:this|these|that|those|it|its|they|their|such|questo|questa|questi|queste|ciò|tale|tali)\b"
    r"|这些|这种|这一|这个|这|该|它们|它|此类|이는|이러한|이런|이것|이를|그것)", re.IGNORECASE)
ANTECEDENT_CHARS = 300  # a longer sentence before is a paragraph of its own, not an antecedent
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def is_title(passage: str) -> bool:
    """A heading or caption left in the text ("行业大模型应用阶段划分", "ROC 곡선과 AUC
    ROC 곡선", a PDF's running head): short, no sentence end, no label, no value."""
    return (len(passage) < TITLE_CHARS and not _SENTENCE_END.search(passage) and ":" not in passage
            and "：" not in passage and not _NUMBER.search(passage))


def focus_weights(matched: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The question words' rarity weights, scaled by how few of the candidate passages hold
    each (``matched``: passages x words, 0 where a passage lacks the word). The retrieved
    chunks all share the question's topic ("retrieval-augmented generation"); the word that
    tells the answering passage apart is the one few of them hold ("scenarios")."""
    share = (np.asarray(matched) > 0).mean(axis=0)
    return np.asarray(weights) * np.log1p(1.0 / np.maximum(share, 1.0 / max(len(matched), 1)))


class ExtractiveGenerator(Generator):
    name = "extractive"
    model = "extractive"
    is_llm = False

    def candidates(self, request: GenerationRequest) -> list[tuple[str, int, int]]:
        """(passage, 1-based source number, position in the source) of the top sources,
        the passages of a long chunk preselected by the question words they share."""
        evidence = request.evidence
        q_tokens = set(tokenize(request.question))
        scanned = request.sources[:SOURCES_SCANNED]
        per_source = max(4, MAX_CANDIDATES // max(1, len(scanned)))
        out = []
        for number, source in enumerate(scanned, start=1):
            passages = split_passages(source.text)
            if len(passages) > per_source:
                def cheap(i):
                    shared = len(q_tokens & tokens_of(passages[i])) / (len(q_tokens) or 1)
                    return shared + (evidence.quick_coverage(passages[i]) if evidence is not None and len(evidence) else 0)

                keep = sorted(sorted(range(len(passages)), key=lambda i: -cheap(i))[:per_source])
            else:
                keep = range(len(passages))
            out += [(passages[i], number, i) for i in keep]
        return out

    @staticmethod
    def semantic(request: GenerationRequest, candidates: list[tuple[str, int, int]]) -> np.ndarray:
        """Cosine of each passage with the question. With the index's stored sentence windows
        (``request.windows``) a passage takes the cosine of the window that holds it (no
        embedding but the question's); passages no window holds are embedded."""
        if request.embedder is None:
            return np.zeros(len(candidates))
        question = request.embedder.embed_query(request.question)
        semantic = np.full(len(candidates), np.nan)
        if request.windows is not None:
            by_source: dict[int, tuple[list[str], np.ndarray]] = {}
            for i, (passage, number, _) in enumerate(candidates):
                if number not in by_source:
                    texts, vectors = request.windows(request.sources[number - 1])
                    by_source[number] = (["".join(t.split()) for t in texts], np.asarray(vectors) @ question)
                texts, sims = by_source[number]
                squeezed = "".join(passage.split())
                holding = [j for j, t in enumerate(texts) if squeezed in t]
                if not holding:  # a passage across two windows: the windows of its two ends
                    holding = [j for j, t in enumerate(texts) if squeezed[:24] in t or squeezed[-24:] in t]
                if holding:
                    semantic[i] = float(max(sims[j] for j in holding))
        missing = [i for i in range(len(candidates)) if np.isnan(semantic[i])]
        if missing:
            vectors = request.embedder.embed_passages([candidates[i][0] for i in missing])
            semantic[missing] = vectors @ question
        return semantic

    @staticmethod
    def heading(text: str, passage: str) -> str:
        """The nearest heading-like line above ``passage`` in ``text`` ("## RoBERTa:",
        "• T5:", a short line ending with a colon), or ""."""
        position = text.find(passage[:40])
        if position <= 0:
            return ""
        for line in reversed(text[:position].splitlines()[-6:]):
            line = line.strip()
            if line and len(line) < FRAGMENT_CHARS and (line.startswith("#") or line.endswith(":")):
                return line.strip("#*• :")
        return ""

    def scored(self, request: GenerationRequest) -> list[tuple[float, str, int, int]]:
        """(score, passage, source number, position), best first."""
        candidates = self.candidates(request)
        if not candidates:
            return []
        evidence = request.evidence
        q_tokens = set(tokenize(request.question))
        # Words count with the heading above the passage ("RoBERTa:" over "Pretraining
        # objective: MLM"): a section's subject is often only in its heading.
        context = [self.heading(request.sources[number - 1].text, p) + " " + p for p, number, _ in candidates]
        aliased = evidence is not None and bool(evidence.aliased)
        tokens = np.array([len(q_tokens & (tokens_of(c) | (evidence.alias_tokens(c) if aliased else frozenset())))
                           / (len(q_tokens) or 1) for c in context])
        if evidence is not None and len(evidence):
            matched = np.array([evidence.matches(c) for c in context])
            focus = focus_weights(matched, evidence.weights)
            terms = matched @ focus / max(focus.sum(), 1e-9)
        else:
            terms = np.zeros(len(candidates))
        semantic = self.semantic(request, candidates)
        prior = np.array([1.0 / (number + 1) for _, number, _ in candidates])
        kind = np.array([answer_type_match(request.question, p) for p, _, _ in candidates])
        if evidence is not None and len(evidence) and asks_quantity(request.question, metrics=True):
            # Of the passages holding a number, those with the question's words beside it
            # first: "6 x TransformerBlock" answers "how many TransformerBlocks", "~80%" does not.
            kind = np.array([k if k < 1 else (1.0 if bound_value(request.question, p, evidence) else 0.5)
                             for k, (p, _, _) in zip(kind, candidates)])
        defines = np.zeros(len(candidates))
        if evidence is not None and evidence.aliased and _ASKS_EXPANSION.search(request.question):
            # "What does MLM stand for?": the passage that holds the abbreviation with its long
            # form ("Masked Language Modeling (MLM)") is the answer, not one that uses it.
            defines = np.array([float(any(_defines(p, tokens, forms) for tokens, forms in evidence.aliased))
                                for p, _, _ in candidates])
        subject = np.ones(len(candidates))
        if evidence is not None and any(evidence.documents):
            subject = np.array([evidence.subject(request.sources[number - 1].path) for _, number, _ in candidates])
        rest = (TOKEN_WEIGHT * tokens + TERM_WEIGHT * terms + PRIOR_WEIGHT * prior + ANSWER_TYPE_WEIGHT * kind
                + DEFINITION_WEIGHT * defines + SUBJECT_WEIGHT * subject)
        if request.windows is not None and request.embedder is not None and len(candidates) > EMBEDDED:
            # Window cosines ranked every passage; the best EMBEDDED get their own vectors.
            top = np.argsort(-(semantic + rest), kind="stable")[:EMBEDDED]
            vectors = request.embedder.embed_passages([candidates[i][0] for i in top])
            semantic[top] = vectors @ request.embedder.embed_query(request.question)
            semantic[np.setdiff1d(np.arange(len(candidates)), top)] -= 1.0  # never above an embedded one
        score = semantic + rest
        order = np.argsort(-score, kind="stable")
        return [(float(score[i]), *candidates[i]) for i in order]

    def select(self, request: GenerationRequest) -> list[tuple[str, int]]:
        """(passage, 1-based source number) pairs of the answer, best first: the best
        passage, and a second one only if it scores within CLOSE_SCORE of it and at least
        NEW_CONTENT of its content tokens are new."""
        ranked = request.ranked if request.ranked is not None else self.scored(request)
        if not ranked:
            return []
        best_score, best, best_number, _ = lead(ranked)
        picked = [(best, best_number)]
        seen = set(tokens_of(best))
        for score, passage, number, _ in ranked[1:]:
            if len(picked) >= MAX_PASSAGES or score < best_score - CLOSE_SCORE:
                break
            if passage == best or is_title(passage):
                continue
            words = set(tokens_of(passage))
            if not words or len(words - seen) / len(words) < NEW_CONTENT:
                continue  # says what the first already says
            picked.append((passage, number))
            seen |= words
        return picked

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        picked = self.select(request)
        shown = {passage for passage, _ in picked}
        for i, (passage, number) in enumerate(picked):
            before = self.antecedent(request, passage, number)
            text = passage if before is None or before in shown else f"{before} {passage}"
            yield ("\n" if i else "") + f"{_quote(text)} [{number}]"

    @staticmethod
    def antecedent(request: GenerationRequest, passage: str, number: int) -> str | None:
        """The sentence before ``passage`` in its source when ``passage`` leans on it ("This
        approach allows T5 to…", "这些模型…", "Questo metodo…"): quoted with it, the answer
        says what "this" is."""
        if not _LEANS.match(passage) or not 0 < number <= len(request.sources):
            return None
        passages = split_passages(request.sources[number - 1].text)
        at = passages.index(passage) if passage in passages else -1
        if at <= 0:
            return None
        before = passages[at - 1]
        if is_title(before) or len(before) > ANTECEDENT_CHARS or passage in before:
            return None
        return before


def lead(ranked: list[tuple[float, str, int, int]]) -> tuple[float, str, int, int]:
    """The passage of ``ranked`` (rank_passages) an answer starts with: the best one, unless it
    is a title and a passage that says something scores within CLOSE_SCORE of it: a title names
    the topic without saying anything of it ("Widget Manual" over "The calibration interval is
    42 days.")."""
    best = ranked[0]
    if is_title(best[1]):
        for item in ranked[1:]:
            if item[0] < best[0] - CLOSE_SCORE:
                break
            if not is_title(item[1]):
                return item
    return best


def rank_passages(question: str, sources, embedder, evidence, windows=None) -> list[tuple[float, str, int, int]]:
    """The reader's (score, passage, source number, position) ranking of the passages of
    ``sources`` for ``question``, best first: what the extractive generator answers with,
    and, whatever the generator, the passage whose answer type the answerability check reads."""
    request = GenerationRequest(messages=[], question=question, sources=list(sources), embedder=embedder,
                                evidence=evidence, windows=windows)
    return ExtractiveGenerator().scored(request)
