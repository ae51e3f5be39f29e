"""Read documents into page/section records. One loader per format, chosen by extension.

Every problem with a single file is raised as ``DocumentError(path, reason)`` with a
reason a person can act on; the ingest pipeline reports it and goes on. Documents
are untrusted input: each loader works within :class:`~rag.ingest.limits.Limits`
(file size, pages, characters, decompressed PDF streams), and ``load_document``
turns whatever else a parser raises into that file's ``DocumentError``.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.errors import DocumentError

from .cleaning import clean_text
from .limits import Limits


@dataclass
class Record:
    """A unit of a document: one PDF page, one markdown section, or a whole text file."""

    text: str
    page: int | None = None
    section: str | None = None
    start: int = 0  # offset of this record in the document's cleaned text
    warning: str | None = None  # something the user should know, the file still went in


NOT_REGULAR = "not a regular file (a pipe, socket or device)"


def read_limited(path: Path, limits: Limits) -> bytes:
    """The bytes of a regular file, within the size limit. A pipe would block the
    ingest until someone writes to it, /dev/zero never ends: both are refused, checked
    on the opened file itself (no race with a swap after a check by name)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DocumentError(path, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError(path, NOT_REGULAR)
        limits.check_size(path, info.st_size)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limits.max_file_bytes + 1)  # a file still growing stops at the limit too
    finally:
        os.close(fd)
    limits.check_size(path, len(data))
    return data


def _read_bytes(path: Path, limits: Limits) -> bytes:
    try:
        data = read_limited(path, limits)
    except PermissionError:
        raise DocumentError(path, "cannot read the file (permission denied): fix its permissions") from None
    except IsADirectoryError:
        raise DocumentError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise DocumentError(path, f"cannot read the file ({exc.strerror or exc}): check the path") from None
    if not data.strip():
        raise DocumentError(path, "the file is empty: nothing to index")
    return data


def _looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16: half its bytes are below 32, so look at the characters instead.
        chars = head.decode("utf-16", errors="replace")
        controls = sum(1 for ch in chars if ord(ch) < 32 and ch not in "\t\n\f\r")
        return controls / max(1, len(chars)) > 0.05
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls / max(1, len(head)) > 0.05


# Non-ASCII letters of the Western European languages, one set per language. Latin-1
# and cp1252 bytes of these languages also decode as cp1250 & co. without an error
# ("Caffè latte e città" -> "Caffč latte e cittŕ"), and on short texts a detector
# ranks them alike; a text whose cp1252 reading uses the letters of one of these
# languages is taken as Western. Czech, Polish or Hungarian read as cp1252 mix
# letters of several (Hungarian ő/ű become õ/û beside ö) or get š, ³, ¹: they
# keep the detector's choice.
_WESTERN_LETTERS = [set(letters) for letters in (
    "àèéìíîòóùúºª",  # Italian
    "àâæçéèêëîïôœùûüÿ",  # French
    "äöüßé",  # German (é in loanwords: Café)
    "áéíñóúüºª",  # Spanish
    "àáâãçéêíóôõúºª",  # Portuguese
    "àçèéíïòóúü",  # Catalan
    "áéèëïóöüíú",  # Dutch
    "åäæöøéü",  # Danish, Norwegian, Swedish
)]


# A symbol glued between two letters (the ³ of Polish "ł" read as cp1252): the cp1252
# reading is wrong. Apostrophes, hyphens and the middle dot may stand there (l’élève).
_GLUED_SYMBOL = re.compile(r"(?<=[^\W\d_])[^\x00-\x7f\w'’‘\-‐·\u00ad](?=[^\W\d_])")


def _western_reading(data: bytes) -> str | None:
    """The cp1252 text of ``data`` when it reads as one Western European language.
    (Set and regex work at C speed: a 10-million-character file is checked in well under a second.)"""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:  # five bytes cp1252 leaves undefined
        return None
    letters = {ch.lower() for ch in set(text) if ord(ch) > 127 and ch.isalpha()}
    if not any(letters <= language for language in _WESTERN_LETTERS):
        return None
    return None if _GLUED_SYMBOL.search(text) else text


def _latin_script(text: str) -> bool:
    import unicodedata

    return all(unicodedata.name(ch, "").startswith("LATIN") for ch in set(text) if ord(ch) > 127 and ch.isalpha())


def decode_text(path: Path, data: bytes, limits: Limits | None = None) -> tuple[str, str | None]:
    """Text of a text file and a warning when it was not UTF-8."""
    limits = limits or Limits()
    if _looks_binary(data):
        raise DocumentError(path, "the file looks binary, not text: check that the extension matches its content")
    for encoding in ("utf-8-sig", "utf-16") if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) else ("utf-8",):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        limits.check_chars(path, len(text))
        return text, None
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or _latin_script(str(best)):
        western = _western_reading(data)
        if western is not None:
            limits.check_chars(path, len(western))
            return western, "not UTF-8: decoded as cp1252 (Western European); save it as UTF-8 to be sure"
    if best is None:
        raise DocumentError(path, "the text is not UTF-8 and its encoding could not be detected: save it as UTF-8")
    text = str(best)
    limits.check_chars(path, len(text))
    return text, f"not UTF-8: decoded as {best.encoding}; save it as UTF-8 to be sure"


def load_text(path: Path, limits: Limits) -> list[Record]:
    text, warning = decode_text(path, _read_bytes(path, limits), limits)
    cleaned = clean_text(text)
    if not cleaned:
        raise DocumentError(path, "the file has no text: nothing to index")
    return [Record(cleaned, warning=warning)]


# Linear on any line: whitespace then a non-space cannot overlap. The old
# "(.+?)\s*#*\s*$" backtracked cubically on a heading padded with Unicode spaces
# (3000 em spaces: minutes), which clean_text does not collapse.
_HEADING = re.compile(r"^(#{1,6})\s+(\S.*)$")


def _heading_title(raw: str) -> str:
    """The title of an ATX heading: without a closing run of hashes ("## Setup ##"),
    which must follow whitespace ("# C#" keeps its hash); inner spaces collapsed."""
    title = raw.rstrip()
    bare = title.rstrip("#")
    if bare != title and bare and bare[-1].isspace():
        title = bare.rstrip()
    return " ".join(title.split())


def split_markdown_sections(text: str) -> list[Record]:
    """One record per heading; ``section`` is the heading path ("Intro > Setup").

    Headings inside fenced code blocks (``# comment`` lines) are not headings.
    """
    records: list[Record] = []
    trail: list[tuple[int, str]] = []
    current: list[str] = []
    section: str | None = None
    offset = start = 0
    in_fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            if "".join(current).strip():
                records.append(Record("\n".join(current), section=section, start=start))
            level, title = len(match.group(1)), _heading_title(match.group(2))
            trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
            section = " > ".join(t for _, t in trail)
            current, start = [line], offset
        else:
            current.append(line)
        offset += len(line) + 1
    if "".join(current).strip():
        records.append(Record("\n".join(current), section=section, start=start))
    return records


def load_markdown(path: Path, limits: Limits) -> list[Record]:
    text, warning = decode_text(path, _read_bytes(path, limits), limits)
    cleaned = clean_text(text)
    if not cleaned:
        raise DocumentError(path, "the file has no text: nothing to index")
    records = split_markdown_sections(cleaned)
    if records:
        records[0].warning = warning
    return records


def load_pdf(path: Path, limits: Limits) -> list[Record]:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError, PdfReadError

    data = _read_bytes(path, limits)
    if not data.lstrip().startswith(b"%PDF"):
        raise DocumentError(path, "not a PDF (no %PDF header): check the file, or give it its real extension")
    import io
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its own warnings would repeat ours
    try:
        with apply_configuration(**limits.pypdf_configuration()):  # a context variable: this thread only
            pages = _pdf_pages(path, PdfReader(io.BytesIO(data)), limits)
    except DocumentError:
        raise
    except LimitReachedError as exc:
        if "decompress" in str(exc).lower() or "length" in str(exc).lower():
            raise limits.decompression_error(path) from None
        raise DocumentError(path, f"the PDF goes beyond a safety limit of the PDF reader ({str(exc)[:120]}): "
                                  f"check where it came from, or re-export it") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AssertionError, OSError, RecursionError) as exc:
        raise DocumentError(
            path, f"the PDF is damaged or truncated ({type(exc).__name__}): re-export or repair it"
        ) from None
    records, offset = [], 0
    for number, raw in enumerate(pages, start=1):
        cleaned = clean_text(raw, from_pdf=True)
        if cleaned:
            records.append(Record(cleaned, page=number, start=offset))
            offset += len(cleaned) + 2
    if not records:
        raise DocumentError(path, "the PDF has no text layer (scanned images?): run OCR on it first, e.g. `ocrmypdf`")
    return records


def _pdf_pages(path: Path, reader, limits: Limits) -> list[str]:
    """The raw text of each page, within the page and character limits."""
    if reader.is_encrypted:
        try:
            unlocked = reader.decrypt("")
        except Exception:
            unlocked = 0
        if not unlocked:
            raise DocumentError(
                path, "the PDF is encrypted with a password: decrypt it (e.g. `qpdf --decrypt`) and ingest again"
            )
    limits.check_pages(path, len(reader.pages))
    pages, chars = [], 0
    for page in reader.pages:
        text = page.extract_text() or ""
        chars += len(text)
        limits.check_chars(path, chars)  # stop at the limit, not after the last page
        pages.append(text)
    return pages


class _HTMLText(html.parser.HTMLParser):
    _SKIP = {"script", "style", "head", "noscript", "svg"}
    # A page's furniture: menus and footers repeat on every page and answer nothing ("Home |
    # Menu | Contact us", "Copyright 2024"). A <header> inside <article> or <main> holds the
    # article's title and is kept.
    _FURNITURE = {"nav", "footer"}
    _CONTENT = {"article", "main"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section", "article"}

    def __init__(self, furniture: bool = True):
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0
        self._content = 0
        self._skip = self._SKIP | self._FURNITURE if furniture else self._SKIP
        self._furniture = furniture

    def _skips(self, tag: str) -> bool:
        return tag in self._skip or (self._furniture and tag == "header" and not self._content)

    def handle_starttag(self, tag, attrs):
        if tag in self._CONTENT:
            self._content += 1
        if self._skips(tag):
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and not self._skipping:
            self.parts.append("#" * int(tag[1]) + " ")

    def handle_endtag(self, tag):
        if self._skips(tag) and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag in self._CONTENT and self._content:
            self._content -= 1

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def _html_text(text: str, furniture: bool) -> str:
    parser = _HTMLText(furniture)
    parser.feed(text)
    parser.close()
    return clean_text("".join(parser.parts))


def load_html(path: Path, limits: Limits) -> list[Record]:
    text, warning = decode_text(path, _read_bytes(path, limits), limits)
    # A page whose text is all inside its furniture (or an unclosed <nav>) is read whole.
    cleaned = _html_text(text, furniture=True) or _html_text(text, furniture=False)
    if not cleaned:
        raise DocumentError(path, "the HTML page has no text: nothing to index")
    records = split_markdown_sections(cleaned)
    if records:
        records[0].warning = warning
    return records


# Per cell output: a training log's thousands of progress lines would crowd out the
# notebook's prose, so a longer output keeps its beginning and its end (where results are).
OUTPUT_CHARS = 3000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _notebook_text(value) -> str:
    # nbformat says a string or a list of strings; anything else is kept as text, not trusted
    if value is None:
        return ""
    return "".join(s for s in value if isinstance(s, str)) if isinstance(value, list) else str(value)


def _cell_outputs(cell: dict) -> list[str]:
    """The text a code cell printed or returned: streams, ``text/plain`` results and error
    lines. Images and HTML are left out (their ``text/plain`` twin is kept)."""
    out = []
    outputs = cell.get("outputs")
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        if kind == "stream":
            text = _notebook_text(output.get("text"))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data")
            text = _notebook_text(data.get("text/plain")) if isinstance(data, dict) else ""
        elif kind == "error":
            text = f"{_notebook_text(output.get('ename'))}: {_notebook_text(output.get('evalue'))}"
        else:
            continue
        # A progress bar redraws its line with \r: only the last frame of each line was seen.
        lines = [line.rsplit("\r", 1)[-1] for line in _ANSI.sub("", text).split("\n")]
        text = "\n".join(lines).strip()
        if len(text) > OUTPUT_CHARS:
            half = OUTPUT_CHARS // 2
            text = f"{text[:half].rstrip()}\n…\n{text[-half:].lstrip()}"
        if text and text != ":":
            out.append(text)
    return out


def load_notebook(path: Path, limits: Limits) -> list[Record]:
    data = _read_bytes(path, limits)
    try:
        notebook = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise DocumentError(path, "not a valid Jupyter notebook (bad JSON): open and re-save it in Jupyter") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise DocumentError(path, "not a valid Jupyter notebook (no list of cells): open and re-save it in Jupyter")
    parts = []
    for cell in cells:
        source = _notebook_text(cell.get("source"))
        if source.strip():
            parts.append(f"```\n{source}\n```" if cell.get("cell_type") == "code" else source)
        if cell.get("cell_type") == "code":
            # The answer is often in what a cell printed ("test accuracy: 0.9342"), not in its code.
            parts.extend(_cell_outputs(cell))
    text = "\n\n".join(parts)
    limits.check_chars(path, len(text))
    cleaned = clean_text(text)
    if not cleaned:
        raise DocumentError(path, "the notebook has no text: nothing to index")
    return split_markdown_sections(cleaned)


LOADERS: dict[str, Callable[[Path, Limits], list[Record]]] = {
    ".pdf": load_pdf,
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".ipynb": load_notebook,
}


def load_document(path: str | Path, limits: Limits | None = None) -> list[Record]:
    """Records of one document; ``DocumentError`` when it cannot be used, whatever went wrong.

    ``limits``: :class:`Limits` (default: from the environment, see ``rag.config``).
    """
    path = Path(path)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        known = " ".join(sorted(LOADERS))
        raise DocumentError(path, f"unsupported format '{path.suffix or '(none)'}': supported are {known}")
    if not path.exists():
        raise DocumentError(path, "does not exist: check the path")
    limits = limits or Limits.from_config()
    try:
        return loader(path, limits)
    except DocumentError:
        raise
    except MemoryError:
        raise DocumentError(path, "ran out of memory reading it: split the file, or lower --max-chars") from None
    except Exception as exc:  # a parser's bug or an input nobody foresaw: this file fails, the ingest goes on
        detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}".rstrip(": ")
        raise DocumentError(path, f"could not be read ({detail}): check the file, or convert it to another "
                                  f"format") from None
