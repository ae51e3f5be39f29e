"""Verified citations: every sentence of an answer checked against the sources it cites.

After any generator has answered, :class:`CitationChecker` splits the answer into
sentences and, for each one, measures how well every retrieved source supports it:

- *embedding*: the best sentence window of the source (the ~200-character windows the
  index embedded at ingest, reused here; embedded on the fly when the index has none)
  by cosine with the sentence, which carries meaning across languages;
- *terms*: the share of the sentence's content words found in the source directly or
  through the cross-lingual term expansion of rag/terms.py ("marketing" reaches 营销),
  each word weighted by its rarity in the corpus;
- *tokens*: the share of the sentence's rag.lexical tokens (words, CJK bigrams,
  numbers) found in the source, and of its numbers alone (an invented figure is the
  commonest unsupported claim).

A logistic model over these (weights fitted by ``python bench/calibrate.py`` on
questions whose evidence passage is known) gives a support score in 0..1; a source
supports a sentence when the score reaches :data:`SUPPORT_THRESHOLD`. A sentence
quoted verbatim from the source it cites (the extractive generator's answers) is
supported with score 1 without embedding anything.

The verdict per sentence: cited sources that support it stay; a cited source that
does not is replaced by the best source that does (or dropped when none does); a
sentence that no source supports keeps no citation and is marked ``supported=False``.
The answer's ``[n]`` markers are rewritten to the checked ones.

Questions get the same term evidence (:func:`term_evidence`): which of their words the
corpus knows, and in which retrieved chunk they occur, is one of the answerability
signals of rag/answerability.py and helps the extractive generator pick the sentence
that answers in a document of another language.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .aliases import aliases_of, contains
from .lexical import tokenize
from .terms import EXPANSION_MIN_SIMILARITY, extract_terms, question_terms
from .text import CITATION, CJK_ALL, HANGUL_SYLLABLES, cited_numbers, sentence_windows, split_sentences
from .types import Citation, Source

# --------------------------------------------------------------------------- calibrated constants

# Support model: logistic regression over (best window cosine, term coverage, token
# coverage, number coverage, rarity of the rarest sentence word the source lacks), fitted by `python bench/calibrate.py` on pseudo-claims
# (question + gold answer keywords) of the dev and extra question sets, against the
# retrieved chunks that hold the evidence passage (supporting) and those that hold
# neither it nor the answer (not supporting), over the PDF and the txt corpus.
SUPPORT_WEIGHTS = (3.166, 5.502, 2.236, 1.635, 0.0)
SUPPORT_BIAS = -7.228
# A source supports a sentence from this support score on (the calibration's
# Youden-optimal cut, 0.19: see bench/calibrate.py --json, "support").
SUPPORT_THRESHOLD = 0.2

MIN_TOKENS = 2  # content tokens a sentence needs to be checked
MAX_TERMS = 24  # of one text: a long sentence's first words carry enough evidence
WINDOW_CHARS = 200  # windows embedded on the fly when the index stored none
_CJK_TERM = re.compile(rf"[{CJK_ALL}]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PARTS = re.compile(r"[._'-]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_NAME = re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*(?![A-Za-z0-9])")
_FULLWIDTH_CITATION = re.compile(r"［(\d+(?:\s*[,;]\s*\d+)*)］")


# --------------------------------------------------------------------------- term evidence


@dataclass
class TermEvidence:
    """A text's content words and the corpus words each reaches (itself included).

    ``neighbours[i]`` maps corpus terms to their similarity with ``terms[i]`` (1.0 for
    the word itself); ``weights[i]`` is the word's rarity (inverse document frequency
    of its closest corpus term; a word the corpus does not know weighs the most).
    """

    terms: list[str]
    neighbours: list[dict[str, float]]
    weights: np.ndarray
    in_corpus: np.ndarray | None = None  # per term: does it reach any corpus word
    # The text's tokens that a form the corpus defines stands for, with the other forms
    # of that definition ({"retrieval", "augmented", "generation", ...}, {"rag", "检索增强生成"}):
    # a passage holding "RAG" holds them (rag/aliases.py).
    aliased: list[tuple[frozenset[str], frozenset[str]]] = field(default_factory=list)
    # Per term: for a name ("XLNet", "LabelEncoder"), the documents (file paths) holding a word it
    # reaches; None for other words, and where the index cannot tell (no term index, or the name
    # is an abbreviation whose long form may stand for it instead).
    documents: list[frozenset[str] | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.terms)

    def subject(self, path: str) -> float:
        """Rarity-weighted share of the text's names that the document at ``path`` holds (1.0
        when the text names nothing the corpus knows). "What's the maximum input length XLNet
        supports?" is about XLNet: a document that never names XLNet answers it with another
        model's figure, however close its wording."""
        named = [(docs, w) for docs, w in zip(self.documents, self.weights) if docs]
        if not named:
            return 1.0
        total = sum(w for _, w in named)
        return float(sum(w for docs, w in named if path in docs) / max(total, 1e-9))

    def matches(self, passage: str, passage_terms: set[str] | None = None) -> np.ndarray:
        """Per term, the best similarity of a corpus word it reaches that occurs in ``passage`` (0: none)."""
        if not self.terms:
            return np.zeros(0)
        lowered = passage.lower()
        found = passage_terms if passage_terms is not None else words_of(passage)
        out = np.zeros(len(self.terms))
        for i, reach in enumerate(self.neighbours):
            best = 0.0
            for word, sim in reach.items():
                if sim > best and (word in found or (_CJK_TERM.search(word) and word in lowered)
                                   or (" " in word and contains(passage, word))):
                    best = sim
            out[i] = best
        return out

    def alias_tokens(self, passage: str) -> frozenset[str]:
        """The text's rag.lexical tokens that ``passage`` holds through a defined abbreviation
        or translation ("RAG" for "retrieval-augmented generation")."""
        out: frozenset[str] = frozenset()
        for tokens, forms in self.aliased:
            if any(contains(passage, form) for form in forms):
                out |= tokens
        return out

    def quick_coverage(self, passage: str) -> float:
        """:meth:`coverage` by substring tests only (no word segmentation): a cheap first
        pass over many passages."""
        if not self.terms:
            return 0.0
        lowered = passage.lower()
        flat = lowered.replace("-", " ")
        matched = np.array([max((sim for word, sim in reach.items() if word in (flat if " " in word else lowered)),
                                default=0.0)
                            for reach in self.neighbours])
        return float(np.dot(matched, self.weights) / max(self.weights.sum(), 1e-9))

    def coverage(self, passage: str, passage_terms: set[str] | None = None) -> float:
        """Rarity-weighted share of the terms that ``passage`` holds (similarity-weighted)."""
        if not self.terms:
            return 0.0
        matched = self.matches(passage, passage_terms)
        return float(np.dot(matched, self.weights) / max(self.weights.sum(), 1e-9))

    def missing(self, passage: str, passage_terms: set[str] | None = None) -> float:
        """The rarity of the rarest term ``passage`` lacks, relative to the rarest possible
        (a near-topic question's decisive word is often nowhere in the chunk)."""
        if not self.terms:
            return 0.0
        lacking = self.weights * (1.0 - self.matches(passage, passage_terms))
        return float(lacking.max() / max(self.weights.max(), 1e-9))

    def known(self) -> float:
        """Rarity-weighted share of the terms that reach any corpus word at all."""
        if not self.terms:
            return 0.0
        if self.in_corpus is None:
            return 1.0
        return float(np.dot(self.in_corpus, self.weights) / max(self.weights.sum(), 1e-9))


@lru_cache(maxsize=8192)
def words_of(text: str) -> frozenset[str]:
    """The terms of a passage (cached: the same chunks come back question after question)."""
    return frozenset(extract_terms(text))


@lru_cache(maxsize=8192)
def tokens_of(text: str) -> frozenset[str]:
    """rag.lexical tokens of a passage (cached like :func:`words_of`)."""
    return frozenset(tokenize(text))


_vocab_lock = threading.Lock()


def _term_ids(terms_index) -> dict[str, int]:
    """Corpus term -> its BM25 token id (cached on the term index)."""
    ids = getattr(terms_index, "_citation_ids", None)
    if ids is None:
        with _vocab_lock:
            ids = getattr(terms_index, "_citation_ids", None)
            if ids is None:
                ids = {term: i + 1 for i, term in enumerate(terms_index.vocab)}
                terms_index._citation_ids = ids
    return ids


def term_evidence(text: str, index, embedder, *, terms: list[str] | None = None) -> TermEvidence:
    """Content words of ``text`` (a question or an answer sentence) with the corpus words
    each reaches through the index's term expansion. Without term vectors in the index
    each word only reaches itself."""
    return term_evidences([text], index, embedder, terms=None if terms is None else [terms])[0]


# Question words and predicate endings that carry no topic in any of the four languages
# (stopword lists miss inflected forms such as 얼마였나요 or 어디인가요).
QUESTION_WORDS = frozenset(
    "what which who whom whose where when why how many much does did do is are was were according "
    "qual quale quali quanto quanta quanti quante come cosa chi dove quando perché perche secondo "
    "多少 什么 哪些 哪个 哪里 哪儿 怎么 怎样 如何 是否 为什么 是什么 一共 根据 "
    "무엇 무엇이 무엇을 무엇인가요 어떤 어디 어디에 언제 얼마 얼마나 몇 누구 누가 왜 어떻게 "
    "뭐 뭐야 뭐라고 뭔가요 뭔지 뭘 "  # the spoken forms of 무엇
    "哪一天 哪天 哪一年 哪年 什么时候 何时 多久 多长 几个 几种 几次 多大 百分之几 几倍 多长时间 "
    "几点 几点钟 几号 几月 几年 几岁 "
    "dura durano".split()
)
# Words for the documents themselves ("according to the report", "nei documenti", "보고서에
# 따르면", "报告中"): they name where to look, not what to find, and the embedder often fails
# to carry them across languages ("report" ~ "举报", to denounce), which made a question
# about the Chinese report look less answerable in English or Italian. "text" and "file" are
# not among them: "text summarization" and "file upload" are what a question is about.
SOURCE_WORDS = frozenset(
    "report reports document documents doc docs notebook notes slides paper article "
    "rapporto report documento documenti articolo appunti slide "
    "报告 报告中 文档 资料 文章 课件 笔记 幻灯片 "
    "보고서 보고서에서 문서 자료 슬라이드 강의 노트".split()
)
_KO_ENDING = re.compile(r"(나요|가요|니까|까요|었어|였어|했어|인지|는지|을까|ㄹ까)$")
_KO_PARTICLES = "에서는|에서|으로|에게|까지|부터|에는|이나|은|는|이|가|을|를|의|에|로|와|과|도|만"
_KO_PARTICLE = re.compile(f"^(.+?)({_KO_PARTICLES})$")
_KO_PARTICLE_ONLY = re.compile(f"^({_KO_PARTICLES})$")  # one list: a particle alone or ending a word
_HANGUL = re.compile(f"[{HANGUL_SYLLABLES}]")
# A Sino-Korean noun made a verb with 하다 / 되다 ("추천한", "사전학습됐", "배포된"): the noun is
# the term. Only after a stem of two syllables or more, all Hangul ("역할", "권한" stay whole).
_KO_VERB = re.compile(f"^([{HANGUL_SYLLABLES}]{{2,}}?)(하였|되었|했|됐|하는|되는|하고|되고|하여|해서|돼서|하면|되면|한|된|할|될|하|되)$")
_KO_QUESTION = ("얼마", "어디", "무엇", "어떤", "어떻", "누구", "누가", "언제", "몇")


def content_terms(words: Sequence[str]) -> list[str]:
    """``words`` without question words, words for the documents themselves and Korean
    predicate endings; a Korean particle is cut from the word it ends ("t5의" -> "t5",
    "정확도는" -> "정확도"), and a 하다 / 되다 verb ending from its noun ("추천한" -> "추천")."""
    out = []
    for word in words:
        if word in QUESTION_WORDS or word in SOURCE_WORDS or _KO_PARTICLE_ONLY.match(word):
            continue  # (a particle alone: split from a Latin word, "RAG에는" -> "rag", "에는")
        if _HANGUL.search(word) and _KO_ENDING.search(word):
            # "빠른가요" -> "빠른"; "얼마였나요", "있나요" carry nothing
            word = _KO_ENDING.sub("", word)
            if len(word) < 2 or word.startswith(_KO_QUESTION):
                continue
        particle = _KO_PARTICLE.match(word) if _HANGUL.search(word[-1:]) else None
        if particle and len(particle.group(1)) >= 2:
            word = particle.group(1)
        verb = _KO_VERB.match(word)
        if verb:
            word = verb.group(1)
        if word not in QUESTION_WORDS and word not in SOURCE_WORDS:
            out.append(word)
    return list(dict.fromkeys(out))


def names_of(text: str) -> set[str]:
    """The names of ``text``, lowercased: words written with a capital inside or
    throughout ("GPU", "BLEU", "XLNet", "LoRA", "ImageNette"); none in a text typed
    mostly in capitals, where case tells nothing."""
    letters = [c for c in text if c.isascii() and c.isalpha()]
    # (one or two Latin words in a Korean or Chinese question are names whatever their case)
    if len(_LATIN_WORD.findall(text)) > 2 and sum(c.isupper() for c in letters) > 0.5 * len(letters):
        return set()
    return {name.lower() for name in _NAME.findall(text)}


def _subword(word: str, other: str) -> bool:
    """Is ``other`` only a piece of ``word`` the embedder's subword tokens share
    ("sentencepiece" ~ "sentence" 0.75, "imagenette" ~ "image" 0.81), not an inflection
    ("models" ~ "model")?"""
    return word.startswith(other) and len(word) - len(other) >= 4 and other.isascii()


def term_evidences(texts: Sequence[str], index, embedder, *,
                   terms: Sequence[list[str]] | None = None) -> list[TermEvidence]:
    """:func:`term_evidence` of several texts, their words embedded in one batch."""
    words_of = [content_terms(question_terms(t) if terms is None else terms[i])[:MAX_TERMS]
                for i, t in enumerate(texts)]
    unique = list(dict.fromkeys(w for words in words_of for w in words))
    term_index = getattr(index, "terms", None) if index is not None else None
    n_docs = max(1, len(index)) if index is not None else 1
    reach: dict[str, dict[str, float]] = {w: {w: 1.0} for w in unique}
    weight: dict[str, float] = {w: math.log(1 + n_docs) for w in unique}
    known: dict[str, bool] = {w: False for w in unique}
    names = {name for t in texts for name in names_of(t)}
    documents: dict[str, frozenset[str]] = {}
    chunk_paths = _chunk_paths(index) if names and index is not None else None
    if unique and term_index is not None and len(term_index) and embedder is not None:
        indptr = term_index.lexical.retriever.scores["indptr"]
        ids = _term_ids(term_index)
        postings = term_index.lexical.retriever.scores["indices"]
        for word, near in zip(unique, term_index.expansions(embedder.embed_queries(unique))):
            # A compound's own parts are terms of their own ("xlnet-large" -> "xlnet",
            # "large"): reaching them again would count "XLNet" twice and make a corpus
            # that only knows XLNet look like it knows XLNet-Large.
            parts = set(_PARTS.split(word)) if _PARTS.search(word) else ()
            near = [(token, sim) for token, sim in near if term_index.vocab[token - 1] not in parts
                    and not _subword(word, term_index.vocab[token - 1])]
            if len(word) <= 2 and word.isascii():
                # Two letters embedded alone land on function words of every language ("de"
                # ~ "cui" 0.91, "dal" 0.87): such a word matches only itself.
                near = [(t, sim) for t, sim in near if term_index.vocab[t - 1] == word]
            elif word in names:
                # A name matches only as written (a plural aside): "GPU" ~ "cpu" 0.79,
                # "MMLU" ~ "lmms" 0.73, "WMT" ~ "mse" 0.81 are look-alikes, and a name is
                # the same in every language, so no translation is lost.
                near = [(t, sim) for t, sim in near if term_index.vocab[t - 1] in (word, word + "s")]
            for token, sim in near:
                term = term_index.vocab[token - 1]
                reach[word][term] = max(reach[word].get(term, 0.0), sim)
            own = ids.get(word)
            if word in names and chunk_paths is not None:
                rows = [postings[indptr[t]:indptr[t + 1]] for t in (ids.get(w) for w in reach[word]) if t is not None]
                documents[word] = frozenset(chunk_paths[r] for part in rows for r in part if r < len(chunk_paths))
            closest = own if own is not None else (near[0][0] if near else None)
            known[word] = closest is not None
            if closest is not None:
                df = int(indptr[closest + 1] - indptr[closest])
                weight[word] = math.log(1 + n_docs / (1 + df))
    aliases = aliases_of(index) if index is not None else None
    out = []
    for text, words in zip(texts, words_of):
        neighbours = [reach[w] for w in words]
        aliased = []
        named = [documents.get(w) for w in words]
        for form, others in (aliases.present(text) if aliases else {}).items():
            # The text's terms the form is made of ("retrieval-augmented" of "retrieval
            # augmented generation") reach the definition's other forms fully.
            parts = set(extract_terms(form))
            inside = [w in parts or bool(_PARTS.search(w) and set(_PARTS.split(w)) <= parts) for w in words]
            neighbours = [{**reach_, **{o: 1.0 for o in others}} if part else reach_
                          for part, reach_ in zip(inside, neighbours)]
            named = [None if part else docs for part, docs in zip(inside, named)]
            form_tokens = set(tokenize(form))
            tokens = frozenset(t for t in tokenize(text) if t in form_tokens
                               or (_PARTS.search(t) and set(_PARTS.split(t)) <= form_tokens))
            if tokens:
                aliased.append((tokens, others))
        out.append(TermEvidence(words, neighbours, np.array([weight[w] for w in words]),
                                np.array([known[w] or neighbours[i] != reach[w] for i, w in enumerate(words)],
                                         dtype=bool), aliased, named))
    return out


def _chunk_paths(index) -> list[str] | None:
    """The file path of each chunk row of ``index`` (cached on it), None when it has no chunk list."""
    paths = getattr(index, "_chunk_paths", None)
    chunks = getattr(index, "chunks", None)
    if paths is None or len(paths) != len(chunks or ()):
        if chunks is None:
            return None
        paths = [chunk.path for chunk in chunks]
        try:
            index._chunk_paths = paths
        except AttributeError:  # a read-only index: computed each time
            pass
    return paths


# --------------------------------------------------------------------------- spans


def locate(quote: str, text: str, start: int = 0) -> tuple[int, int] | None:
    """Character span of ``quote`` in ``text``, whitespace-insensitive (a packed passage
    joins lines with spaces; windows join 。-sentences with one)."""
    if not quote:
        return None
    exact = text.find(quote, start)
    if exact >= 0:
        return exact, exact + len(quote)
    span = _loose_locate(quote, text, start)
    if span is None and "**" in text:
        # Markdown bold the quote left out ("**XLNet**, **T5**" quoted as "XLNet, T5"): found
        # in the text without its asterisks, the span mapped back to the text as it is.
        kept = [i for i, ch in enumerate(text) if ch != "*"]
        plain = "".join(text[i] for i in kept)
        found = _loose_locate(quote.replace("**", ""), plain, bisect_left(kept, start))
        span = (kept[found[0]], kept[found[1] - 1] + 1) if found else None
    return span


def _loose_locate(quote: str, text: str, start: int) -> tuple[int, int] | None:
    pieces = [re.escape(p) for p in quote.split()]
    if not pieces:
        return None
    # Between words any whitespace and whatever markup the splitter dropped ("- ", "| ",
    # a "```" line), and nothing where it inserted a space after 。！？.
    pattern = r"[\W_]*?".join(pieces)
    match = re.compile(pattern).search(text, start)
    return (match.start(), match.end()) if match else None


def plain_sentence(sentence: str) -> str:
    """A sentence without its citation markers, document brackets restored (［15］ -> [15])."""
    text = CITATION.sub("", sentence)
    text = _FULLWIDTH_CITATION.sub(lambda m: f"[{m.group(1)}]", text)
    return re.sub(r"[ \t]+([.。！？])$", r"\1", re.sub(r"[ \t]{2,}", " ", text).strip())


def numbers_of(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, x))))


def support_score(features: Sequence[float]) -> float:
    return _sigmoid(float(np.dot(SUPPORT_WEIGHTS, features)) + SUPPORT_BIAS)


@dataclass
class _Windows:
    texts: list[str]
    vectors: np.ndarray


@dataclass
class SourceView:
    """What the checker knows of one retrieved source: its windows and their vectors,
    its words, tokens and numbers."""

    source: Source
    windows: _Windows
    terms: set[str]
    tokens: set[str]
    numbers: set[str]


def _row_of(index, chunk_id: str) -> int | None:
    rows = getattr(index, "_citation_rows", None)
    if rows is None or len(rows) != len(index.chunks):
        with _vocab_lock:
            rows = {c.id: i for i, c in enumerate(index.chunks)}
            index._citation_rows = rows
    return rows.get(chunk_id)


def source_windows(source: Source, index, embedder) -> _Windows:
    """The source's sentence windows and their vectors: the index's own when it stored
    them for this chunk, else embedded now."""
    if index is not None and source.chunk_id:
        row = _row_of(index, source.chunk_id)
        if row is not None and index.chunks[row].text == source.text:
            start_of = getattr(index, "_window_start", None)
            window_chars = int(index.manifest.get("chunker", {}).get("window_chars", 0) or 0)
            if start_of is not None and window_chars:
                start, end = int(start_of[row]), int(start_of[row + 1])
                texts = sentence_windows(source.text, window_chars)
                if end > start and len(texts) == end - start:
                    return _Windows(texts, np.asarray(index.window_vectors[start:end], dtype=np.float32))
            if not sentence_windows(source.text, window_chars or WINDOW_CHARS):
                # A chunk short enough to be one window: its own vector is that window's.
                return _Windows([source.text], np.asarray(index.vectors[row:row + 1], dtype=np.float32))
    texts = sentence_windows(source.text, WINDOW_CHARS) or [source.text]
    return _Windows(texts, embedder.embed_passages(texts) if embedder is not None
                    else np.zeros((len(texts), 1), dtype=np.float32))


# --------------------------------------------------------------------------- sentences of an answer


@dataclass
class _Piece:
    start: int  # span of the sentence in the answer text, markers included
    end: int
    text: str


def answer_sentences(text: str) -> list[_Piece]:
    """Sentences of an answer with their spans; a piece that is only citation markers
    ("… the end. [2]", "…最快。[1]其次…") belongs to the sentence before it."""
    pieces: list[_Piece] = []
    position = 0
    for sentence in split_sentences(text):
        found = text.find(sentence, position)
        if found < 0:
            continue
        end = found + len(sentence)
        position = end
        leading = re.match(r"^(\s*\[\d+(?:\s*[,;]\s*\d+)*\]\s*)+", sentence)
        if leading and pieces:
            pieces[-1].end = found + len(leading.group(0).rstrip())
            pieces[-1].text = text[pieces[-1].start:pieces[-1].end]
            found += leading.end()
            if found >= end:
                continue
            while found < end and text[found].isspace():
                found += 1
        elif leading is None and pieces and not re.search(r"\w", CITATION.sub("", sentence)):
            pieces[-1].end = end
            pieces[-1].text = text[pieces[-1].start:end]
            continue
        pieces.append(_Piece(found, end, text[found:end]))
    return pieces


def _marker(numbers: list[int]) -> str:
    return f"[{', '.join(str(n) for n in numbers)}]" if numbers else ""


def rewrite_markers(sentence: str, numbers: list[int]) -> str:
    """``sentence`` with its markers replaced by ``numbers`` (one marker, where the first
    one stood; before the final punctuation when it had none)."""
    marker = _marker(numbers)
    if CITATION.search(sentence):
        first = True

        def replace(match):
            nonlocal first
            out = marker if first else ""
            first = False
            return out

        out = CITATION.sub(replace, sentence)
    elif marker:
        body = sentence.rstrip()
        tail = re.search(r"[.!?。！？]+$", body)
        cut = tail.start() if tail else len(body)
        out = f"{body[:cut].rstrip()} {marker}{body[cut:]}"
    else:
        out = sentence
    out = re.sub(r"[ \t]{2,}", " ", out)
    return re.sub(r"[ \t]+([.,;:!?。，；：！？])", r"\1", out).strip()


# --------------------------------------------------------------------------- the checker


@dataclass
class CheckResult:
    text: str  # the answer with checked markers
    citations: list[Citation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        """Sentences whose citations the check changed."""
        return sum(1 for c in self.citations if c.sources != c.cited)


class CitationChecker:
    """Checks an answer's sentences against its sources: see the module docstring.

        checker = CitationChecker(index, embedder)
        result = checker.check(answer_text, sources)
        result.text          # markers rewritten: moved to the supporting source, or removed
        result.citations     # one rag.types.Citation per sentence
    """

    def __init__(self, index=None, embedder=None, threshold: float | None = None):
        self.index = index
        self.embedder = embedder
        self.threshold = SUPPORT_THRESHOLD if threshold is None else float(threshold)

    def views(self, sources: Sequence[Source]) -> list[SourceView]:
        return [SourceView(s, source_windows(s, self.index, self.embedder), words_of(s.text),
                           tokens_of(s.text), numbers_of(s.text)) for s in sources]

    def features(self, sentence: str, evidence: TermEvidence, vector: np.ndarray | None,
                 view: SourceView) -> tuple[tuple[float, float, float, float, float], int]:
        """(window cosine, term coverage, token coverage, number coverage, rarest missing
        term), best window."""
        if vector is not None and view.windows.vectors.shape[1] == vector.shape[0]:
            sims = view.windows.vectors @ vector
            best = int(np.argmax(sims))
            cosine = float(sims[best])
        else:
            best, cosine = 0, 0.0
        tokens = set(tokenize(sentence))
        token_cov = len(tokens & view.tokens) / len(tokens) if tokens else 0.0
        numbers = numbers_of(sentence)
        number_cov = len(numbers & view.numbers) / len(numbers) if numbers else 1.0
        term_cov = evidence.coverage(view.source.text, view.terms) if len(evidence) else token_cov
        missing = evidence.missing(view.source.text, view.terms) if len(evidence) else 1.0 - token_cov
        return (cosine, term_cov, token_cov, number_cov, missing), best

    def check(self, text: str, sources: Sequence[Source]) -> CheckResult:
        import time

        started = time.perf_counter()
        pieces = answer_sentences(text or "")
        if not pieces:
            return CheckResult(text or "", [], time.perf_counter() - started)
        plain = [plain_sentence(p.text) for p in pieces]
        cited = [[n for n in cited_numbers(p.text)] for p in pieces]
        n = len(sources)

        # Fast path: a sentence quoted from a source it cites needs no model.
        verbatim: dict[int, tuple[int, tuple[int, int]]] = {}
        # A quote of several sentences with one marker at its end ("정확도: 0.8212. 정밀도:
        # 0.7042. 재현율: 0.8197 [2]", the extractive generator's lines): the marker cites
        # every sentence of the quote, and no marker is added inside it.
        for j in range(1, len(pieces)):
            if not cited[j]:
                continue
            i = j
            while i > 0 and not cited[i - 1] and "\n" not in text[pieces[i - 1].end:pieces[i].start]:
                i -= 1
            if i == j:
                continue
            quote = plain_sentence(text[pieces[i].start:pieces[j].end])
            for number in cited[j]:
                span = locate(quote, sources[number - 1].text) if 1 <= number <= n else None
                if span:
                    for k in range(i, j):
                        own = locate(plain[k], sources[number - 1].text, span[0])
                        if own:
                            verbatim[k] = (number, own)
                            cited[k] = [number]
                    break
        for i, sentence in enumerate(plain):
            for number in cited[i]:
                if 1 <= number <= n and len(sentence) >= 8:
                    span = locate(sentence, sources[number - 1].text)
                    if span:
                        verbatim[i] = (number, span)
                        break
        # A sentence of fewer than MIN_TOKENS content tokens ("More.", "Yes, it is.") makes no
        # claim to check: it is left as it is.
        todo = [i for i, s in enumerate(plain) if i not in verbatim and len(set(tokenize(s))) >= MIN_TOKENS]
        views = self.views(sources) if todo and sources else []
        vectors = (self.embedder.embed_queries([plain[i] for i in todo])
                   if todo and views and self.embedder is not None else None)
        evidences = dict(zip(todo, term_evidences([plain[i] for i in todo], self.index, self.embedder,
                                                  terms=[extract_terms(plain[i]) for i in todo])))

        citations: list[Citation] = []
        for i, piece in enumerate(pieces):
            valid = [c for c in cited[i] if 1 <= c <= n]
            if i in verbatim:
                number, (start, end) = verbatim[i]
                citations.append(Citation(plain[i], valid, cited[i], 1.0, True, sources[number - 1].text[start:end],
                                          number, start, end))
                continue
            if i not in todo or not views:
                # Nothing to check ("Sure.", a heading), or nothing to check it against.
                citations.append(Citation(plain[i], [] if not views and i in todo else valid, cited[i],
                                          0.0, i not in todo))
                continue
            vector = vectors[todo.index(i)] if vectors is not None else None
            evidence = evidences[i]
            scored = []
            for j, view in enumerate(views):
                feats, window = self.features(plain[i], evidence, vector, view)
                scored.append((support_score(feats), window))
            supports = [s for s, _ in scored]
            keep = [c for c in valid if supports[c - 1] >= self.threshold]
            ranked = [j + 1 for j in np.argsort(-np.asarray(supports)) if supports[j] >= self.threshold]
            for c in valid:
                if c not in keep:
                    # Moved to the best supporting source not cited yet, else removed.
                    spare = next((r for r in ranked if r not in keep), None)
                    if spare is not None:
                        keep.append(spare)
            if not valid and ranked:
                keep = [ranked[0]]  # a claim without a citation gets the source that supports it
            keep = sorted(dict.fromkeys(keep))
            quote_from = max(keep, key=lambda c: supports[c - 1]) if keep else int(np.argmax(supports)) + 1
            window_text = views[quote_from - 1].windows.texts[scored[quote_from - 1][1]]
            span = locate(window_text, sources[quote_from - 1].text) or (-1, -1)
            quote = sources[quote_from - 1].text[span[0]:span[1]] if span[0] >= 0 else window_text
            best = supports[quote_from - 1]
            citations.append(Citation(plain[i], keep, cited[i], round(float(best), 4), bool(keep), quote,
                                      quote_from, span[0], span[1]))

        # Rewrite the markers, sentence by sentence, keeping the text between sentences.
        out, position = [], 0
        for piece, citation in zip(pieces, citations):
            out.append(text[position:piece.start])
            if citation.sources != citation.cited:
                out.append(rewrite_markers(piece.text, citation.sources))
            else:
                out.append(piece.text)
            position = piece.end
        out.append(text[position:])
        return CheckResult("".join(out).strip(), citations, time.perf_counter() - started)


def check_citations(text: str, sources: Sequence[Source], index=None, embedder=None,
                    threshold: float | None = None) -> CheckResult:
    """One-call form of :meth:`CitationChecker.check`."""
    return CitationChecker(index, embedder, threshold).check(text, sources)


__all__ = ["CitationChecker", "CheckResult", "TermEvidence", "term_evidence", "check_citations", "locate",
           "answer_sentences", "rewrite_markers", "plain_sentence", "support_score", "SUPPORT_THRESHOLD"]
