"""Text helpers shared by every layer, defined once: script ranges, sentence splitting,
sentence windows and packing, the citation marker pattern, hashing.

This module sits at the bottom of the package (it imports nothing from ``rag``), so
the store, retrieval, generators, ingest and the UI all read the same definitions.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

# --------------------------------------------------------------------------- scripts

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs (+ extension A, compatibility)
KANA = "\u3040-\u30ff"
HANGUL_SYLLABLES = "\uac00-\ud7a3"
HANGUL = HANGUL_SYLLABLES + "\u1100-\u11ff\u3130-\u318f"  # + jamo, compatibility jamo
CJK = KANA + HAN + HANGUL_SYLLABLES  # scripts written without spaces between words (Korean: particles)
CJK_ALL = KANA + HAN + HANGUL
CJK_PUNCT = "\u3000-\u303f\uff00-\uffef"  # 。、「」 and full-width forms

# --------------------------------------------------------------------------- citations

# "[1]", "[1, 2]", "[1; 3]": the answer's references to its numbered sources.
CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """The source numbers cited in ``text``, in order of first appearance, without repeats."""
    seen: list[int] = []
    for group in CITATION.findall(text or ""):
        for number in re.split(r"\s*[,;]\s*", group):
            if number.isdigit() and int(number) not in seen:
                seen.append(int(number))
    return seen


def strip_citations(text: str) -> str:
    return CITATION.sub("", text or "").strip()


def quote_brackets(text: str) -> str:
    """Document text with its own "[15]" (notebook cells, footnotes) in full-width
    brackets, so only an answer's markers read as citations."""
    return CITATION.sub(lambda m: f"［{m.group(1)}］", text)


# --------------------------------------------------------------------------- sentences

# Words after which a period does not end a sentence ("Dr. Ada Moreno", "e.g. the",
# "Fig. 3"). Lower-cased, without the period.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf al fig figs eq eqs no nos vol pp p ca approx "
    "dept univ inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec "
    "sig dott ing avv ecc pag cap es".split()
)
# A sentence ends after 。！？ (no space needed) or after . ! ? ; followed by space, and at
# every line break. A period is then checked against the abbreviations and initials.
_BOUNDARY = re.compile(r"(?<=[。！？])|(?<=[.!?;])\s+|\n+")
# Anchored at the start of a word: unanchored, search retried every position of a long
# token ("x" * 20000 + " ." took 19 s; documents are untrusted input).
_LAST_WORD = re.compile(r"(?<![^\s(\[{\"'“‘])([^\s(\[{\"'“‘]+)\.$")


def _ends_with_abbreviation(piece: str) -> bool:
    match = _LAST_WORD.search(piece)
    if not match:
        return False
    word = match.group(1).lower()
    # A single capital letter is an initial ("J. R. R. Tolkien"); digits are not ("in 2020.").
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (stripped, empty ones dropped), for every script.

    Splits at 。！？, at . ! ? ; followed by whitespace, and at line breaks, but not after an
    abbreviation or an initial ("The payload lead is Dr. Ada Moreno." stays one sentence).
    """
    pieces: list[str] = []
    position = 0
    pending = ""
    for match in _BOUNDARY.finditer(text or ""):
        end = match.start()
        if end == position and match.end() == position:
            continue
        piece = text[position:end]
        separator = text[end:match.end()]
        position = match.end()
        if "\n" not in separator and _ends_with_abbreviation(piece):
            pending += piece + separator
            continue
        piece = (pending + piece).strip()
        pending = ""
        if piece:
            pieces.append(piece)
    tail = (pending + (text or "")[position:]).strip()
    if tail:
        pieces.append(tail)
    return pieces


def pack_sentences(sentences: Iterable[str], max_chars: int) -> list[str]:
    """Consecutive sentences joined into pieces of at most ``max_chars`` characters
    (a longer sentence stays whole)."""
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        sentence = (sentence or "").strip()
        if not sentence:
            continue
        if current and len(current) + len(sentence) + 1 > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


# Windows keep the split rule they were embedded with: an index stores window vectors
# by position, so a change here would shift them (tests/test_text.py pins it).
_WINDOW_SPLIT = re.compile(r"(?<=[。！？!?])|(?<=[.;:])\s+|\n+")


def sentence_windows(text: str, max_chars: int) -> list[str]:
    """Consecutive sentences packed into windows of at most ``max_chars`` characters.

    The multilingual encoder is trained on sentence-length text: a chunk's vector
    blurs its topics, a window's vector keeps them sharp. A chunk that is a single
    window gets none (its own vector already is that window).
    """
    if max_chars <= 0:
        return []
    windows = pack_sentences(_WINDOW_SPLIT.split(text), max_chars)
    return windows if len(windows) > 1 else []


def embedding_text(text: str, section: str | None = None) -> str:
    """What gets embedded for a chunk: the section heading gives a chunk its topic."""
    if section and not text.lstrip().startswith("#"):
        return f"{section}\n{text}"
    return text


def sha256(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()
