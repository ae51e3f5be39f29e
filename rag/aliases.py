"""Abbreviations the documents define, read as the same word as their long forms.

Reports and lecture notes define an abbreviation once and then use it alone:
"检索增强生成(RAG,Retrieval-Augmented Generation)" on one page, "RAG能有效帮助企业…"
on the next. A question that says "retrieval-augmented generation" shares no word with
the second passage, and the embedder does not know that "RAG" is those three words. So
the corpus's own definitions are collected into groups of equivalent forms
({"rag", "retrieval-augmented generation", "检索增强生成"}), and a passage that holds
one form of a group counts as holding the question's words of another
(rag/citations.py ``term_evidences``, the extractive reader's token share).

Definitions read (the patterns of technical writing in the four languages):

- ``Long Form (ABBR)``: "Masked Language Modeling (MLM)";
- ``母语长名(ABBR, Long Form)`` / ``(ABBR)``: the Chinese and Korean convention, the
  abbreviation and often the English long form in brackets after the native term;
- ``한국어 용어(English term)``: a Korean glossary entry, "정확도(Accuracy)".

An abbreviation pairs with a long form only when its letters occur in the long form in
order, the first at the start of a word (the Schwartz-Hearst rule, Schwartz & Hearst
2003: the PyPI ``abbreviations`` package implements it for English only and is
unmaintained since 2019, so the few lines are here). A native-script long form is the
last words before the bracket, one word (jieba's for Chinese) per letter; a run that
does not split that way is left out rather than guessed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Iterable

from .terms import _segmenter
from .text import HAN, HANGUL_SYLLABLES

# An abbreviation: two or more capitals, other letters and digits between ("LoRA",
# "LMMs", "MaaS", "GPT-3" is a name, not an abbreviation of anything here).
_ABBR = r"[A-Z][A-Za-z0-9]{0,8}[A-Z][a-z0-9]{0,2}"
_BRACKET = re.compile(
    rf"[(（]\s*({_ABBR})\s*(?:[,，;；:]\s*([A-Za-z][A-Za-z' -]{{2,80}}?)\s*)?(?:[,，;；][^)）]{{0,40}})?[)）]")
_GLOSS = re.compile(rf"(?<![{HANGUL_SYLLABLES}])([{HANGUL_SYLLABLES}]{{2,20}})[(（]\s*([A-Za-z][A-Za-z -]{{1,40}}?)\s*[)）]")
_LATIN_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")
_HAN_RUN = re.compile(f"[{HAN}]+$")
# Documents are untrusted: every pattern here runs in time linear in what it scans (words are
# separated by exactly one space, so a run of syllables splits one way only).
_HANGUL_WORDS = re.compile(f"((?:[{HANGUL_SYLLABLES}]{{1,20}} )*[{HANGUL_SYLLABLES}]{{1,20}})$")
# A Chinese word belongs to the long form when its embedding is this close to one of the
# English long form's words (term expansion counts a neighbour from 0.6; a translation
# inside a definition is surer than one found anywhere).
NATIVE_SIMILARITY = 0.5
# Long forms longer than this many words are sentences, not names.
MAX_LONG_WORDS = 8


def long_form_matches(abbr: str, long_form: str) -> bool:
    """Schwartz-Hearst: every letter or digit of ``abbr`` occurs in ``long_form`` in order
    (matched right to left), the first at the start of a word."""
    short = [c.lower() for c in abbr if c.isalnum()]
    text = long_form.lower()
    if not short or len(text) < len(short):
        return False
    s, l = len(short) - 1, len(text) - 1
    while s >= 0:
        c = short[s]
        while l >= 0 and (text[l] != c or (s == 0 and l > 0 and text[l - 1].isalnum())):
            l -= 1
        if l < 0:
            return False
        s -= 1
        l -= 1
    return True


def _best_long_form(abbr: str, before: str) -> str | None:
    """The shortest run of the words just before a bracket that ``abbr`` abbreviates
    ("... the Masked Language Modeling" -> "Masked Language Modeling")."""
    words = _LATIN_WORDS.findall(before[-200:])
    letters = sum(c.isupper() for c in abbr) or len(abbr)
    for n in range(1, min(len(words), letters + 3, MAX_LONG_WORDS) + 1):
        candidate = " ".join(words[-n:])
        if candidate[:1].lower() == abbr[:1].lower() and long_form_matches(abbr, candidate):
            return candidate
    return None


def _native_long_form(abbr: str, before: str, latin: str | None, similar) -> str | None:
    """The Chinese or Korean term written right before the bracket. Chinese has no spaces,
    so its words (jieba's) are taken back from the bracket while each one translates a word
    of the English long form (``similar``: the embedder's word similarity, which carries
    检索 ~ retrieval): 通用/人工智能 of "迈向通用人工智能(AGI, Artificial General
    Intelligence)", not 迈向. Korean words are taken one per capital of the abbreviation."""
    han = _HAN_RUN.search(before)
    if han:
        if not latin or similar is None:
            return None
        targets = [part.lower() for w in _LATIN_WORDS.findall(latin) for part in w.split("-") if len(part) > 2]
        taken: list[str] = []
        held = ""  # a one-character word (大 of 大语言模型) joins only inside the term
        matched = 0
        for word in reversed(_segmenter().lcut(han.group(0))):
            if len(word) < 2:
                held = word + held
                continue
            if similar(word, targets) < NATIVE_SIMILARITY:
                break
            taken.insert(0, word + held)
            held = ""
            matched += 1
        # One word of a long form of several ("模型" of Large Multimodal Models) is a
        # generic word, not the term.
        return "".join(taken) if matched >= min(2, len(targets)) else None
    hangul = _HANGUL_WORDS.search(before)
    letters = sum(c.isupper() for c in abbr)
    if hangul:
        words = hangul.group(1).split()
        if len(words) >= letters:
            return " ".join(words[-letters:])
    return None


def definitions(text: str, similar=None) -> list[tuple[str, ...]]:
    """The abbreviation definitions and glossary pairs of ``text``, each as its forms.
    ``similar(word, words)``: how well a Chinese word translates any of ``words``
    (0..1); without it Chinese long forms are not read."""
    out: list[tuple[str, ...]] = []
    for match in _BRACKET.finditer(text):
        abbr, inner = match.group(1), match.group(2)
        before = text[max(0, match.start() - 200):match.start()]
        forms = [abbr]
        latin = None
        if inner and len(inner.split()) <= MAX_LONG_WORDS and long_form_matches(abbr, inner):
            latin = inner.strip()
        elif before[-1:].isascii():
            latin = _best_long_form(abbr, before.rstrip())
        if latin:
            forms.append(latin)
        # A native term is written against its bracket: "检索增强生成(RAG", "정확도(Accuracy)";
        # "... 변할 때 (TPR" is a sentence that goes on into a bracket.
        native = None if before[-1:].isascii() or before[-1:].isspace() else \
            _native_long_form(abbr, before, latin, similar)
        if native:
            forms.append(native)
        if len(forms) > 1:
            out.append(tuple(forms))
    for match in _GLOSS.finditer(text):
        term, gloss = match.group(1), match.group(2).strip()
        if len(gloss.split()) <= 3 and not re.fullmatch(_ABBR, gloss):
            out.append((term, gloss))
    return out


def _key(form: str) -> str:
    """A form as compared: lowercase, hyphens and runs of spaces as one space."""
    return " ".join(form.lower().replace("-", " ").split())


@dataclass
class Aliases:
    """Groups of forms the corpus defines as the same thing, compared by :func:`_key`."""

    groups: list[frozenset[str]] = field(default_factory=list)
    _of: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for i, group in enumerate(self.groups):
            for form in group:
                self._of.setdefault(form, []).append(i)

    def __len__(self) -> int:
        return len(self.groups)

    @classmethod
    def from_texts(cls, texts: Iterable[str], similar=None) -> "Aliases":
        """Every definition in ``texts``; a form defined twice joins its groups.
        ``similar``: as for :func:`definitions`."""
        groups: list[set[str]] = []
        where: dict[str, int] = {}
        for text in texts:
            for forms in definitions(text, similar):
                keys = {_key(f) for f in forms if len(_key(f)) >= 2}
                if len(keys) < 2:
                    continue
                hits = sorted({where[k] for k in keys if k in where})
                if hits:
                    target = hits[0]
                    for other in hits[1:]:  # merge groups this definition joins
                        groups[target] |= groups[other]
                        groups[other] = set()
                    groups[target] |= keys
                else:
                    target = len(groups)
                    groups.append(set(keys))
                for k in groups[target]:
                    where[k] = target
        return cls([frozenset(g) for g in groups if g])

    def present(self, text: str) -> dict[str, frozenset[str]]:
        """The forms of ``text`` that belong to a group, each with the group's other forms."""
        if not self.groups:
            return {}
        flat = " " + _key(text) + " "
        out: dict[str, frozenset[str]] = {}
        for form, ids in self._of.items():
            if _contains(flat, form):
                others = frozenset().union(*(self.groups[i] for i in ids)) - {form}
                if others:
                    out[form] = others
        return out


def _contains(flat: str, form: str) -> bool:
    """Is ``form`` in the compared text ``flat``? A Latin form as whole words, a Chinese or
    Korean one anywhere (no spaces between words, particles written on)."""
    if form.isascii():
        return re.search(rf"(?<![a-z0-9]){re.escape(form)}s?(?![a-z0-9])", flat) is not None
    return form in flat


def contains(text: str, form: str) -> bool:
    """Does ``text`` hold ``form`` (a form of :class:`Aliases`)?"""
    return _contains(" " + _key(text) + " ", form)


_lock = threading.Lock()


def _term_similarity(index):
    """Word similarity from the index's stored term vectors (rag/terms.py), which hold every
    word of its chunks: nothing is embedded. None for an index without term vectors."""
    terms = getattr(index, "terms", None)
    if terms is None or not len(terms):
        return None
    import numpy as np

    row = {term: i for i, term in enumerate(terms.vocab)}

    def similar(word: str, targets: list[str]) -> float:
        ids = [row[t] for t in targets if t in row]
        if word not in row or not ids:
            return 0.0
        vectors = np.asarray(terms.vectors[ids], dtype=np.float32)
        return float((vectors @ np.asarray(terms.vectors[row[word]], dtype=np.float32)).max())

    return similar


def aliases_of(index) -> Aliases:
    """The definitions of an index's chunks, read once per loaded index (a regular
    expression pass, ~10 ms per thousand chunks) and kept on it."""
    found = getattr(index, "_aliases", None)
    if found is None:
        with _lock:
            found = getattr(index, "_aliases", None)
            if found is None:
                chunks = getattr(index, "chunks", None) or []
                found = Aliases.from_texts((chunk.text for chunk in chunks), _term_similarity(index))
                try:
                    index._aliases = found
                except AttributeError:  # an index that takes no attributes: read each time
                    pass
    return found
