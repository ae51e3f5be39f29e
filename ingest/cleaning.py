"""Repair text extracted from PDFs: lines wrapped mid-sentence, spaces that the
layout inserted inside Chinese/Japanese text, hyphenation, runs of whitespace.

Wrapped lines are recognised by width: a line that reaches close to the widest
lines of its page ended because the page did, not because the author ended it.
Short lines (headings, list items, code) keep their line breaks, and a next line
that starts with indentation is a new code line, so code stays readable.
"""

from __future__ import annotations

import re
import unicodedata

from rag.text import CJK_PUNCT as _CJK_PUNCT
from rag.text import HAN, KANA

_CJK = KANA + HAN
_CJK_CHAR = re.compile(f"[{_CJK}{_CJK_PUNCT}]")
# One or more spaces between two CJK characters never belong there in Chinese or Japanese.
_SPACE_IN_CJK = re.compile(f"(?<=[{_CJK}{_CJK_PUNCT}])[ \t]+(?=[{_CJK}{_CJK_PUNCT}])")
# A full-width line followed by one of these starts a new block even after a wrap.
_BLOCK_START = re.compile(r"^\s*([-*•#>|]|\d+[.)]\s|```)")
_SPACE_AFTER_CJK_PUNCT = re.compile(f"(?<=[{_CJK}][,.;:!?)])[ \t]+(?=[{_CJK}])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def display_width(line: str) -> int:
    """Columns a line takes on the page: wide (CJK/Hangul) characters count twice."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def _wrap_width(lines: list[str]) -> float:
    widths = sorted(display_width(line) for line in lines if line.strip())
    if len(widths) < 4:
        return float("inf")  # too few lines to know the page width: join nothing
    return 0.8 * widths[int(0.9 * (len(widths) - 1))]


_WORD = re.compile(r"[^\W\d_]+")
# The lookbehinds start a match only where a run of letters starts: without them
# every position inside a 50 000-letter "word" was tried again (quadratic, ~30 s).
_WORD_AT_END = re.compile(r"(?<![^\W\d_])[^\W\d_]+$")
_HYPHENATED = re.compile(r"(?<![^\W\d_])[^\W\d_]+-[^\W\d_]+")


def _joiner(left: str, right: str, words: frozenset[str] = frozenset(),
            hyphenated: frozenset[str] = frozenset()) -> str | None:
    """How to join a wrapped line to the next one, or None to keep the break."""
    if not left.strip() or not right.strip():
        return None
    if right[0] in " \t":  # indented: a new code line or list level
        return None
    if _BLOCK_START.match(right):
        return None
    # Chinese/Japanese put no spaces between words, nor around Latin terms.
    if _CJK_CHAR.match(left[-1]) or _CJK_CHAR.match(right[0]):
        return ""
    if left.endswith("-") and len(left) > 1 and left[-2].isalnum() and right[0].isalnum():
        # Office suites wrap at real hyphens ("fine-|tuning", "GPT-|2"): keep them. Drop the
        # hyphen only when the text spells the joined word that way elsewhere ("repre-|sentation").
        head, tail = _WORD_AT_END.search(left[:-1]), _WORD.match(right)
        if head and tail and right[0].islower():
            joined = (head.group() + tail.group()).lower()
            if joined in words and f"{head.group()}-{tail.group()}".lower() not in hyphenated:
                return "\x00"  # de-hyphenate: drop the hyphen
        return ""
    return " "


_TAIL = 256  # characters of the line being built that the joiner looks at (its last word)


def join_wrapped_lines(text: str) -> str:
    """Join the lines a PDF page wrapped. The line being built is kept as a list of
    pieces with its display width: rebuilding and re-measuring the whole joined line at
    every step was quadratic (5000 wrapped lines of one paragraph: 290 s)."""
    lines = text.split("\n")
    wrap_at = _wrap_width(lines)
    words = frozenset(w.lower() for w in _WORD.findall(text))
    hyphenated = frozenset(w.lower() for w in _HYPHENATED.findall(text))
    out: list[str] = []
    parts: list[str] = []  # the line being built
    width = 0  # its display width
    for line in lines:
        if parts and width >= wrap_at:
            glue = _joiner(_tail(parts).rstrip(" "), line, words, hyphenated)
            if glue is not None:
                while parts and not parts[-1].rstrip(" "):  # trailing spaces go, as rstrip(" ") did
                    width -= len(parts.pop())
                if parts:
                    kept = parts[-1].rstrip(" ")
                    width -= len(parts[-1]) - len(kept)
                    parts[-1] = kept
                if glue == "\x00":  # de-hyphenate: drop the hyphen
                    parts[-1] = parts[-1][:-1]
                    width -= 1
                else:
                    parts.append(glue)
                    width += len(glue)
                parts.append(line)
                width += display_width(line)
                continue
        if parts or out:
            out.append("".join(parts))
        parts, width = [line], display_width(line)
    out.append("".join(parts))
    return "\n".join(out)


def _tail(parts: list[str]) -> str:
    """The last ``_TAIL`` characters (or more) of the pieces joined."""
    taken, size = [], 0
    for piece in reversed(parts):
        taken.append(piece)
        size += len(piece)
        if size >= _TAIL:
            break
    return "".join(reversed(taken))


def clean_text(text: str, *, from_pdf: bool = False) -> str:
    """Normalized text: NFC, no control characters, repaired wraps (PDF), tidy whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = _CONTROL.sub("", text)
    if from_pdf:
        text = join_wrapped_lines(text)
    text = _SPACE_IN_CJK.sub("", text)
    text = _SPACE_AFTER_CJK_PUNCT.sub("", text)
    # Collapse runs of spaces inside a line but keep leading indentation (code).
    text = "\n".join(_collapse_inner_spaces(line) for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _collapse_inner_spaces(line: str) -> str:
    stripped = line.lstrip(" \t")
    indent = line[: len(line) - len(stripped)]
    return indent + re.sub(r"[ \t]{2,}", " ", stripped).rstrip()
