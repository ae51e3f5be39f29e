"""BM25 over tokens that work for every script: words for Latin/Cyrillic text,
overlapping character bigrams for Chinese, Japanese and Korean (which have no
spaces, or attach particles to words: 정확도를 must still match 정확도)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .text import CJK as _CJK
from .text import HANGUL_SYLLABLES

_CJK_RUN = rf"[{_CJK}]+"
# Word characters other than CJK: "XLNet은" is "xlnet" + "은", "ChatGPT的" is "chatgpt" + "的".
_WORD = rf"[^\W_{_CJK}]+"
_TOKEN = re.compile(rf"({_CJK_RUN})|({_WORD}(?:[._'-]{_WORD})*)", re.UNICODE)

# Very common function words: they carry no topic and would flood the postings.
STOPWORDS = frozenset(
    "a an and are as at be by for from how in is it of on or that the this to was what when where which who why "
    "with does do did can could should would will you your i we they he she their there these those than then "
    "il lo la i gli le un una uno di da in con su per tra fra e è che non come cosa quale quali quanto quanti del "
    "della dei delle al alla ai alle nel nella nei nelle si sono "
    # elided articles and prepositions, when a typographic apostrophe split them off ("dell’API")
    "dell nell dall sull all quell".split()
)

_HANGUL_ONLY = re.compile(f"[{HANGUL_SYLLABLES}]+")

# Elided articles and prepositions of Italian and French: "dell'API" is the word "API",
# "l'addestramento" is "addestramento", "d'entraînement" is "entraînement". Left joined,
# "dell'api" would be a rare word no document holds, and a question with it would look
# less answerable than the same question in English.
ELIDED = frozenset("l un dell nell all dall sull coll quell quest bell sant d c n s m t j qu lorsqu puisqu jusqu".split())


def unelide(word: str) -> str:
    """``word`` (lowercased) without an elided article or preposition in front ("dell'api"
    -> "api") or an English possessive behind ("distilbert's" -> "distilbert")."""
    while "'" in word:
        head, _, tail = word.partition("'")
        if head in ELIDED and tail:
            word = tail
        elif head and _HANGUL_ONLY.fullmatch(tail):
            # Korean writes no apostrophe inside a word: '삼각형'은 is a quoted word and
            # its particle
            word = head
        elif tail == "s" and head:
            word = head
        else:
            break
    return word


def normalize_apostrophes(text: str) -> str:
    """Typographic apostrophes as ASCII ones, so that "dell’API" reads like "dell'API"."""
    return text.replace("\u2019", "'").replace("\u02bc", "'")


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for cjk, word in _TOKEN.findall(normalize_apostrophes(text.lower())):
        word = unelide(word) if word else word
        if cjk:
            if len(cjk) == 1:
                tokens.append(cjk)
            else:
                tokens.extend(cjk[i:i + 2] for i in range(len(cjk) - 1))
        elif word not in STOPWORDS:
            tokens.append(word)
            if any(sep in word for sep in "._-'"):
                # "per_device_train_batch_size" should also match "batch size"
                tokens.extend(p for p in re.split(r"[._'-]", word) if p and p not in STOPWORDS)
    return tokens


class LexicalIndex:
    """A bm25s index over :func:`tokenize` tokens, saved beside the FAISS index."""

    def __init__(self, retriever, vocab: dict[str, int]):
        self.retriever = retriever
        self.vocab = vocab

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        vocab: dict[str, int] = {"": 0}
        ids = [[vocab.setdefault(tok, len(vocab)) for tok in tokenize(text)] for text in texts]
        return cls.from_token_ids(ids, vocab)

    @classmethod
    def from_token_ids(cls, ids: list[list[int]], vocab: dict[str, int]) -> "LexicalIndex":
        """BM25 over documents already turned into token ids (id 0: the empty token)."""
        import bm25s
        from bm25s.tokenization import Tokenized

        retriever = bm25s.BM25()
        retriever.index(Tokenized(ids=[doc or [0] for doc in ids], vocab=vocab), show_progress=False)
        return cls(retriever, vocab)

    @property
    def num_docs(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(folder), show_progress=False)
        (folder / "tokens.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> "LexicalIndex":
        import bm25s

        retriever = bm25s.BM25.load(str(folder), mmap=mmap, load_vocab=False, show_progress=False)
        vocab = json.loads((folder / "tokens.json").read_text(encoding="utf-8"))
        return cls(retriever, vocab)

    def _token_ids(self, query: str) -> list[int]:
        return sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})

    def _scores_for_ids(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros(int(self.retriever.scores["num_docs"]), dtype=np.float32)
        return self.retriever.get_scores_from_ids(ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no token is known)."""
        return self._scores_for_ids(self._token_ids(query))

    def max_weighted_scores(self, weighted_ids: list[tuple[int, float]]) -> np.ndarray:
        """Per document, the best ``weight * BM25(token)`` among ``weighted_ids``."""
        data = self.retriever.scores
        indptr, indices, values = data["indptr"], data["indices"], data["data"]
        best = np.zeros(self.num_docs, dtype=np.float32)
        for token, weight in weighted_ids:
            start, end = indptr[token], indptr[token + 1]
            docs = indices[start:end]  # unique within one token: plain fancy indexing is safe
            best[docs] = np.maximum(best[docs], weight * values[start:end])
        return best

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk positions, scores) of the ``k`` best chunks with a score above zero."""
        top, scores = self.search_all(query, k)
        return top, scores[top]

    def search_all(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the ``k`` best chunks with a score above zero, every chunk's score)."""
        ids = self._token_ids(query)
        scores = self._scores_for_ids(ids)
        k = min(k, len(scores))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), scores
        top = self._top_k_distinct(scores, ids, k)
        if top is None:
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
        return top[scores[top] > 0], scores

    def _top_k_distinct(self, scores: np.ndarray, ids: list[int], k: int) -> np.ndarray | None:
        """The ``k`` best positive-scoring chunks, best first, without a full-corpus
        argpartition (tens of ms at 1M chunks; bench/scaling.py).

        Returns None, and ``search`` falls back to the full argpartition, whenever
        the answer is not unique: two of the best scores tie, or the k-th ties with
        the next. So whatever this returns is exactly what the fallback returns.
        """
        if not ids:
            return np.zeros(0, dtype=np.int64)  # all scores are zero: nothing is above it
        data = self.retriever.scores
        indptr, indices = data["indptr"], data["indices"]
        tokens = np.asarray(ids, dtype=np.int64)
        df = indptr[tokens + 1] - indptr[tokens]
        enough = np.flatnonzero(df >= k)
        if len(enough):
            # Any k chunks bound the k-th best score from below: take those of the
            # rarest token that has k of them (chunk ids are unique within a list).
            t = tokens[enough[np.argmin(df[enough])]]
            sample = scores[indices[indptr[t]:indptr[t + 1]]]
            floor = np.partition(sample, len(sample) - k)[len(sample) - k]
            if not floor > 0:
                return None
            cand = np.flatnonzero(scores >= floor)
        elif self.retriever.nonoccurrence_array is None:
            # Every token is in fewer than k chunks, and chunks outside their lists score 0.
            cand = np.unique(np.concatenate([indices[indptr[t]:indptr[t + 1]] for t in tokens])).astype(np.intp)
            cand = cand[scores[cand] > 0]
        else:
            return None
        if len(cand) > 4 * k + 64:
            cand = cand[np.argpartition(-scores[cand], k)[:k + 1]]
        cand = cand[np.argsort(-scores[cand], kind="stable")]
        best = scores[cand[:k + 1]]
        if len(best) > 1 and not np.all(best[:-1] > best[1:]):
            return None  # a tie among the best or at the cut: let the full argpartition decide
        return cand[:k]
