"""Cross-lingual term expansion: BM25 over the corpus's words, queried through the
embedder's own bilingual lexicon.

Plain BM25 only matches the question's own words, so it is blind across languages:
an English question about a Chinese report shares no token with it. The
multilingual encoder, though, places single words of different languages close
together ("marketing" ~ "营销" 0.81, "fastest" ~ "最快" 0.84, "정확도" ~ "accuracy"
0.87). So the index keeps one vector per distinct corpus term, and a question's
terms are expanded to their nearest corpus terms in any language; each chunk then
scores, for every question term, the best BM25 score among that term's
neighbours, weighted by their similarity. The same lookup folds morphology and
synonyms (정확도를 ~ 정확도, learning rate ~ learning_rate).

Terms are words for scripts with spaces and dictionary words for Chinese (jieba):
character bigrams, which the plain BM25 uses, are not words and embed as noise.

Layout inside an index version::

    terms/
      vocab.json      the distinct terms, in vector order
      vectors.npy     float32 term embeddings (reused by incremental ingest)
      terms.faiss     nearest-neighbour index over the term vectors
      bm25/           BM25 over each chunk's terms
"""

from __future__ import annotations

import json
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .lexical import STOPWORDS, LexicalIndex, normalize_apostrophes, unelide
from .vectors import build_faiss, choose_index_type, search_few

# A neighbour counts when its cosine with the question term reaches this; each
# question term takes at most EXPANSION_NEIGHBORS of them. A sweep over the 70
# questions of bench/retrieval.py: 0.55-0.65 gave the same hit@5 within one question;
# at 0.7 and above too few translations survive, at 0.5 too much noise comes in.
EXPANSION_MIN_SIMILARITY = 0.6
EXPANSION_NEIGHBORS = 10

from .text import HAN as _HAN
from .text import HANGUL_SYLLABLES
from .text import KANA as _KANA

_TERM = re.compile(rf"([{_HAN}]+)|([{_KANA}]+)|([^\W_{_HAN}{_KANA}]+(?:[._'-][^\W_{_HAN}{_KANA}]+)*)")

_HANGUL = re.compile(f"[{HANGUL_SYLLABLES}]")
_LATIN = re.compile("[a-z0-9]")
_SCRIPT_RUNS = re.compile(f"[{HANGUL_SYLLABLES}]+|[^{HANGUL_SYLLABLES}]+")

_jieba_lock = threading.Lock()
_jieba = None


def _segmenter():
    """jieba, initialized once (it builds its dictionary in ~0.5 s)."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba = jieba
    return _jieba


def extract_terms(text: str) -> list[str]:
    """The words of ``text`` that can carry meaning across languages, lowercased.

    Chinese runs are segmented into dictionary words; single characters, bare
    numbers and function words are dropped (numbers stay exact in the plain BM25).
    """
    terms: list[str] = []
    for han, kana, word in _TERM.findall(normalize_apostrophes(text.lower())):
        word = unelide(word) if word else word
        if han:
            terms.extend(w for w in _segmenter().lcut(han) if len(w) >= 2)
        elif kana:
            if len(kana) >= 2:
                terms.append(kana)
        elif _HANGUL.search(word) and _LATIN.search(word):
            # Korean writes its particles onto a Latin word ("top-p는", "lora를", "gb인가요"):
            # the word and its particle are two words
            for piece in _SCRIPT_RUNS.findall(word):
                terms.extend(_word_terms(piece.strip("._'-")))
        else:
            terms.extend(_word_terms(word))
    return terms


def _word_terms(word: str) -> list[str]:
    if not _is_term(word):
        return []
    if any(sep in word for sep in "._'-"):
        # per_device_train_batch_size also answers to "batch size"
        return [word, *(part for part in re.split(r"[._'-]", word) if _is_term(part))]
    return [word]


def _is_term(word: str) -> bool:
    return len(word) >= 2 and word not in STOPWORDS and not word.replace(".", "").isdigit()


@lru_cache(maxsize=64)
def question_stopwords(lang: str) -> frozenset[str]:
    """Function words of ``lang`` (stopwords-iso lists), never expanded: embedded alone
    they land near random words of every language ("으로" ~ "through" 0.86, "com" 0.91)."""
    import stopwordsiso

    return frozenset(stopwordsiso.stopwords(lang)) if stopwordsiso.has_lang(lang) else frozenset()


# The counter after 몇 with its ending ("몇 시에", at what time; "몇 개인가요", how many is it;
# "몇 번째") is part of the question word, not a topic: "개인가요" read as a word is 개인,
# "individual", and "시에" is a word no English page holds.
_KO_COUNTED = re.compile(r"몇\s*(?:시간|시|개|번째|번|명|년도|년|월|일|분|초|층|살|배|가지|차례|주|달|퍼센트|프로)"
                         r"(?:에서|에는|에|은|는|이|가|을|를|의|나|로|쯤|정도|째|동안|까지|부터|인가요|인가|인지|"
                         r"이야|야|이에요|예요|입니까|일까요|이었나요|였나요|였어|이었어)?(?![\uac00-\ud7a3])")
# So is the noun of "what time / what date / a che ora / in che data": "What time does the bakery
# open?" is about the bakery, and its "time" reached "36 hours" of another passage.
# (only before a verb: "what time series models…" and "what date format…" are about them)
_ASKS_WHEN = re.compile(r"(?i)\b(?:at |on |by )?what (?:time|date|day)(?= (?:does|do|did|is|was|will|are|were|has|had)\b)|"
                        r"\bin (?:che|quale) (?:data|giorno)\b|\ba che ora\b")


def question_terms(question: str) -> list[str]:
    """The question's terms worth expanding, each once."""
    from .language import detect_language

    stop = question_stopwords(detect_language(question))
    plain = _ASKS_WHEN.sub(" ", _KO_COUNTED.sub(" ", question))
    return [t for t in dict.fromkeys(extract_terms(plain)) if t not in stop]


class TermIndex:
    """Corpus terms, their vectors, and BM25 over each chunk's terms."""

    def __init__(self, vocab: list[str], vectors: np.ndarray, lexical: LexicalIndex, neighbours=None,
                 index_type: str = "flat"):
        self.vocab = vocab
        self.vectors = vectors
        self.lexical = lexical
        self.neighbours = neighbours  # faiss index over ``vectors``, built on first use
        self.index_type = index_type

    def __len__(self) -> int:
        return len(self.vocab)

    def known_vectors(self) -> dict[str, np.ndarray]:
        """Term -> vector, for an incremental ingest to reuse."""
        return {term: self.vectors[i] for i, term in enumerate(self.vocab)}

    @classmethod
    def build(cls, chunk_terms: list[list[str]], term_vectors: dict[str, np.ndarray], dim: int,
              index_type: str = "auto") -> "TermIndex":
        """``chunk_terms``: each chunk's terms; ``term_vectors`` must hold every one of them."""
        vocab = sorted({t for terms in chunk_terms for t in terms})
        vectors = (np.stack([term_vectors[t] for t in vocab]).astype(np.float32) if vocab
                   else np.zeros((0, dim), dtype=np.float32))
        ids = {term: i + 1 for i, term in enumerate(vocab)}  # 0 is the empty token
        lexical = LexicalIndex.from_token_ids([[ids[t] for t in terms] for terms in chunk_terms],
                                              {"": 0, **ids})
        return cls(vocab, vectors, lexical, index_type=choose_index_type(len(vocab), index_type))

    def _neighbour_index(self):
        if self.neighbours is None:  # built on first use: an ingest builds it while writing
            self.neighbours = build_faiss(np.asarray(self.vectors, dtype=np.float32), self.index_type)
        return self.neighbours

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "vectors.npy", np.ascontiguousarray(self.vectors, dtype=np.float32))
        faiss.write_index(self._neighbour_index(), str(folder / "terms.faiss"))
        self.lexical.save(folder / "bm25")

    @classmethod
    def load(cls, folder: Path) -> "TermIndex":
        import faiss

        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        neighbours = faiss.read_index(str(folder / "terms.faiss"))
        lexical = LexicalIndex.load(folder / "bm25")
        if not (len(vocab) == vectors.shape[0] == neighbours.ntotal):
            raise ValueError(f"{len(vocab)} terms but {neighbours.ntotal} term vectors")
        return cls(vocab, vectors, lexical, neighbours)

    def expansions(self, vectors: np.ndarray) -> list[list[tuple[int, float]]]:
        """For each query-term vector, its corpus neighbours as (BM25 token id, similarity)."""
        if not len(self.vocab) or not len(vectors):
            return [[] for _ in range(len(vectors))]
        sims, ids = search_few(self._neighbour_index(), vectors, min(EXPANSION_NEIGHBORS, len(self.vocab)))
        return [[(int(i) + 1, float(s)) for i, s in zip(row_ids, row_sims)
                 if i >= 0 and s >= EXPANSION_MIN_SIMILARITY]
                for row_ids, row_sims in zip(ids, sims)]

    def scores(self, question: str, embed_queries: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Expanded BM25 score of every chunk for ``question``."""
        # Adjacent word pairs ("learning rate" -> learning_rate) changed no ranking on
        # 70 questions: single terms it is.
        terms = question_terms(question)
        if not terms or not len(self.vocab):
            return np.zeros(self.lexical.num_docs, dtype=np.float32)
        return self.scores_of(embed_queries(terms))

    def scores_of(self, term_vectors: np.ndarray) -> np.ndarray:
        """``scores`` from the vectors of ``question_terms(question)``, embedded by the
        caller (retrieval embeds them in one call with the question: one forward pass
        instead of two on the hot path)."""
        total = np.zeros(self.lexical.num_docs, dtype=np.float32)
        if not len(term_vectors) or not len(self.vocab):
            return total
        for neighbours in self.expansions(term_vectors):
            if neighbours:
                # max, not sum: a term with many near-synonyms must not outvote the others
                total += self.lexical.max_weighted_scores(neighbours)
        return total

