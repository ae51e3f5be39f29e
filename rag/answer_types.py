"""The kind of answer a question asks for, and whether a passage holds one.

"How many layers?" wants a number the question does not already give; "which endpoint?"
wants an address. A passage that holds no such thing does not answer, however close its
words: the extractive reader prefers passages that do, and a reader's best passage
holding none is one of the answerability signals (rag/answerability.py).
"""

from __future__ import annotations

import re

# Answer types a question announces, and what a passage needs to hold one: a question
# for a number wants a number the question does not already give; one for an address
# wants a URL or an IP address.
_ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|long|big|large)|what (value|number|size|percentage)|quant[oaie]|numero|valore)\b"
    r"|몇|얼마|多少|几|百分之",
    re.IGNORECASE)
# A metric's name usually asks for its value ("what recall did it reach?"), but not always
# ("can accuracy be the metric on imbalanced data?"): see answer_type_match's ``metrics``.
_NAMES_METRIC = re.compile(
    r"\b(accuracy|precision|recall|score|rate|size|runtime|accuratezza|precisione)\b|정확도|재현율|정밀도|准确率|召回",
    re.IGNORECASE)
_ASKS_ADDRESS = re.compile(r"\b(url|uri|address|endpoint|indirizzo|link)\b|주소|地址|网址|接口", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ADDRESS = re.compile(r"https?://|\b\d{1,3}(?:\.\d{1,3}){3}\b|\w+\.\w+/\w+")
# A number that names a part of the document ("Exercise 2", "Figure 3", "图2", "第3章",
# a notebook cell "In [31]", a list's "7.") is a label, not a value: it must not pass for the
# number a question asks.
_LABEL_NUMBER = re.compile(
    r"(?i)\b(?:exercises?|esercizi[oa]?|figure|fig\.|table|tabella|chapter|capitolo|section|sezione|"
    r"step|passo|part|parte|cell)\s*[\[(（［]?\s*\d+(?:\.\d+)*|\bin\s*[\[［]\s*\d+|[图表第]\s*\d+|"
    r"^\s*#*\s*\d+\.(?!\d)",
    re.MULTILINE)


def answer_type_match(question: str, passage: str, metrics: bool = True) -> float:
    """1 when ``passage`` holds the kind of answer ``question`` asks for (a new number, an
    address), 0 when it does not, 0.5 when the question announces no type. With ``metrics``
    a metric's name alone ("what recall ...") asks for a number: a fair preference among
    passages, too loose a test for refusing a question (rag/answerability.py)."""
    wants = []
    if _ASKS_ADDRESS.search(question):
        wants.append(bool(_ADDRESS.search(passage)))
    elif _ASKS_QUANTITY.search(question) or (metrics and _NAMES_METRIC.search(question)):
        given = set(_NUMBER.findall(question))
        values = _NUMBER.findall(_LABEL_NUMBER.sub(" ", passage))
        wants.append(any(n not in given for n in values))
    if not wants:
        return 0.5
    return 1.0 if all(wants) else 0.0


__all__ = ["answer_type_match"]
