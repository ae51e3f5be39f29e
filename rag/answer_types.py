"""The kind of answer a question asks for, and whether a passage holds one.

"How many layers?" wants a number the question does not already give; "which endpoint?"
wants an address. A passage that holds no such thing does not answer, however close its
words: the extractive reader prefers passages that do, and a reader's best passage
holding none is one of the answerability signals (rag/answerability.py).
"""

from __future__ import annotations

import re
from typing import Protocol

# Answer types a question announces, and what a passage needs to hold one: a question
# for a number wants a number the question does not already give; one for an address
# wants a URL or an IP address.
_ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|long|big|large)|what (value|number|size|percentage)|quant[oaie]|numero|valore)\b"
    # 哪几 asks "which ones", 几乎 means "almost": neither asks a number.
    r"|몇|얼마|多少|(?<!哪)几(?!乎)|百分之",
    re.IGNORECASE)
# A metric's name usually asks for its value ("what recall did it reach?"), but not always
# ("can accuracy be the metric on imbalanced data?"): see answer_type_match's ``metrics``.
_NAMES_METRIC = re.compile(
    r"\b(accuracy|precision|recall|score|rate|size|runtime|accuratezza|precisione)\b|정확도|재현율|정밀도|准确率|召回",
    re.IGNORECASE)
_ASKS_ADDRESS = re.compile(r"\b(url|uri|address|endpoint|indirizzo|link)\b|주소|地址|网址|接口", re.IGNORECASE)
# A value answers a question for a number only with some of the question's words beside it:
# at least BOUND_COVERAGE of them (rarity-weighted) within BOUND_WINDOW characters either
# side. Chosen by `python bench/calibrate.py` over 40/60/90 characters and 0.1-0.3: a wider
# window or a higher share fails more answerable questions whose figure sits in a table far
# from its label.
BOUND_WINDOW = 60
BOUND_COVERAGE = 0.15
# A value in a passage: digits; a Chinese numeral with a magnitude ("十亿", "百亿级", "三十":
# reports write sizes in words; "千万", "by all means", and "万一", "in case", are idioms); an
# English or Italian number word before the word it counts ("six hours", "sei ore"; "one" and
# "uno" are mostly articles, "due to" is no number).
_NUMBER_WORDS = (
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
    "hundred hundreds thousand thousands million millions billion billions dozen dozens "
    "tre quattro cinque sei sette otto nove dieci undici dodici quindici venti trenta quaranta "
    "cinquanta cento mille milioni miliardi due").split()
_NUMBER = re.compile(
    r"\d+(?:[.,]\d+)*"
    r"|(?<![一二两三四五六七八九十百千万亿])(?!千万(?![亿元])|万一)[一二两三四五六七八九十百千万亿]*[十百千万亿][一二两三四五六七八九十百千万亿]*"
    r"|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b(?!\s+to\b)(?=\s+[^\W\d_])",
    re.IGNORECASE)
_ADDRESS = re.compile(r"https?://|\b\d{1,3}(?:\.\d{1,3}){3}\b|\w+\.\w+/\w+")
# A number that names a part of the document ("Exercise 2", "Figure 3", "图2", "第3章",
# a notebook cell "In [31]", a list's "7.") is a label, not a value: it must not pass for the
# number a question asks.
_LABEL_NUMBER = re.compile(
    r"(?i)\b(?:exercises?|esercizi[oa]?|figure|fig\.|table|tabella|chapter|capitolo|section|sezione|"
    r"step|passo|part|parte|cell)\s*[\[(（［]?\s*\d+(?:\.\d+)*|\bin\s*[\[［]\s*\d+|[图表第]\s*\d+|"
    r"^\s*#*\s*\d+\.(?!\d)",
    re.MULTILINE)


def asks_quantity(question: str, metrics: bool = False) -> bool:
    """Whether ``question`` asks for a number (with ``metrics``, a metric's name counts)."""
    return bool(_ASKS_QUANTITY.search(question) or (metrics and _NAMES_METRIC.search(question)))


def asks_address(question: str) -> bool:
    """Whether ``question`` asks for a URL or an address."""
    return bool(_ASKS_ADDRESS.search(question))


def new_values(question: str, passage: str) -> list[tuple[int, int]]:
    """The spans of ``passage`` holding a value ``question`` does not already give, labels
    ("Exercise 2", "图2", "In [31]") aside."""
    given = set(_NUMBER.findall(question))
    # Blank the labels out in place, so the spans stay those of ``passage``.
    plain = _LABEL_NUMBER.sub(lambda m: " " * len(m.group()), passage)
    return [m.span() for m in _NUMBER.finditer(plain) if m.group() not in given]


class Evidence(Protocol):
    """What :func:`bound_value` needs of rag.citations.TermEvidence."""

    def coverage(self, passage: str) -> float: ...


def bound_value(question: str, passage: str, evidence: Evidence) -> bool:
    """Whether ``passage`` holds a value ``question`` does not give with the question's words
    beside it: "log loss: 0.45" answers "what log loss…", "accuracy: 0.82" does not."""
    for start, end in new_values(question, passage):
        if evidence.coverage(passage[max(0, start - BOUND_WINDOW):end + BOUND_WINDOW]) >= BOUND_COVERAGE:
            return True
    return False


def answer_type_match(question: str, passage: str, metrics: bool = True) -> float:
    """1 when ``passage`` holds the kind of answer ``question`` asks for (a new number, an
    address), 0 when it does not, 0.5 when the question announces no type. With ``metrics``
    a metric's name alone ("what recall ...") asks for a number: a fair preference among
    passages, too loose a test for refusing a question (rag/answerability.py)."""
    wants = []
    if asks_address(question):
        wants.append(bool(_ADDRESS.search(passage)))
    elif asks_quantity(question, metrics):
        wants.append(bool(new_values(question, passage)))
    if not wants:
        return 0.5
    return 1.0 if all(wants) else 0.0


__all__ = ["answer_type_match", "asks_address", "asks_quantity", "bound_value", "new_values",
           "BOUND_WINDOW", "BOUND_COVERAGE"]
