"""What the chat page shows, as HTML strings: no gradio here, so every state can be
rendered and checked in a unit test without starting a server.

    from rag.ui.render import render_answer, render_sources
    turn = {"question": "...", "answer": "Hold the button [1].", "sources": [...], "citations": [...]}
    render_answer(turn)        # the answer bubble
    render_sources(turn, 1)    # the sources card beside it

A *turn* is one question and its answer as the app keeps it (see :mod:`rag.ui.app`).

Documents are untrusted input: text from them (and from a model that read them) is only
ever shown as text. :func:`esc` turns every character that HTML, Markdown, autolinks or
LaTeX could act on into a character reference, so ``![s](http://host/x.png)`` or
``<img src=...>`` in a passage, an answer or a question is displayed exactly as written
and never fetched. The only markup on the page is the markup built here.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from rag.errors import (
    BackendNotFoundError,
    ConfigurationError,
    EmbedderMismatchError,
    GeneratorError,
    IndexCorruptError,
    IndexNotFoundError,
    InputError,
    ModelLoadError,
    RagError,
    ServerUnavailableError,
)
from rag.text import cited_numbers as _numbers_in

from .strings import text as _t

SNIPPET_CHARS = 320
QUOTE_CONTEXT_CHARS = 140  # characters shown either side of a highlighted quote

# What the two numbers on a source card are (rag/retrieval.py: fuse).
SCORE_TITLE = ("fused retrieval score: standard deviations above the other candidates, averaged over "
               "the rankers · cosine similarity to the question")

# ------------------------------------------------------------------ escaping

# Characters Markdown, GFM autolinks ("http:", "www.", "@"), Gradio's LaTeX ("$") or HTML
# could turn into markup. Each becomes a numeric character reference: the browser shows
# the character, no parser sees syntax.
_ACTIVE = re.compile(r"""[&<>"'`*_\[\]()!#|~\\$:@{}=+\-.^]""")


def esc(value: Any) -> str:
    """``value`` as inert text for the page: shown exactly, never parsed as HTML or Markdown."""
    return _ACTIVE.sub(lambda m: f"&#{ord(m.group())};", str(value))


def esc_lines(value: Any) -> str:
    """:func:`esc`, with line breaks kept (as ``<br>``: a blank line would end the HTML block)."""
    return "<br>".join(esc(line) for line in str(value).replace("\r\n", "\n").split("\n"))


def attr(value: Any) -> str:
    """A value for an HTML attribute."""
    return esc(value)


# ------------------------------------------------------------------ errors

# Error class -> the title of its notice; the most specific class in an exception's MRO wins.
ERROR_TITLES: dict[type, str] = {
    IndexNotFoundError: "No index yet — upload documents",
    ConfigurationError: "The generator is not configured",
    ServerUnavailableError: "The model server cannot be reached",
    BackendNotFoundError: "Unknown generator",
    EmbedderMismatchError: "Problem with the index",
    IndexCorruptError: "Problem with the index",
    ModelLoadError: "The model could not be loaded",
    GeneratorError: "The generator failed",
    InputError: "Check the settings",
    RagError: "Could not answer",
    BaseException: "Unexpected error",
}
ERROR_HINTS: dict[type, str] = {
    IndexNotFoundError: "Add PDF, text or markdown files with the upload box on the right, then ask again.",
    ConfigurationError: "Or pick the extractive generator under Settings: it needs no model.",
    ServerUnavailableError: "Or pick the extractive generator under Settings: it needs no model.",
    ModelLoadError: "Or pick the extractive generator under Settings: it needs no model.",
}
QUESTION_TOO_LONG = "Question too long"


def _lookup(table: dict[type, str], exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return ""


def error_title(exc: BaseException) -> str:
    return _lookup(ERROR_TITLES, exc)


def error_hint(exc: BaseException) -> str:
    return _lookup(ERROR_HINTS, exc)


def too_long_message(length: int, limit: int) -> str:
    return (f"Your question has {length:,} characters; the limit is {limit:,}. "
            f"Shorten it by {length - limit:,} and send it again: your text is still in the box.")


# ------------------------------------------------------------------ citations


def cited_sources(turn: dict) -> set[int]:
    """Source numbers the finished answer cites *and* the citation check supports.

    With the check's results (``turn["citations"]``), a source counts when a supported
    sentence cites it; without them, when the answer text cites it with ``[n]``. Never
    "all of them" for an answer that cites nothing.
    """
    n_sources = len(turn.get("sources") or [])
    citations = turn.get("citations") or []
    if citations:
        numbers = {n for c in citations if c.get("supported") for n in (c.get("sources") or [])}
    else:
        numbers = set(_numbers_in(turn.get("answer") or ""))
    return {n for n in numbers if 1 <= n <= n_sources}


def _answer_body(text: str, citations: list[dict], lang: str | None) -> str:
    """The answer as text, each unsupported sentence visibly marked (in place, in order)."""
    marks = []  # (start, end) of unsupported sentences in ``text``
    position = 0
    for citation in citations:
        sentence = (citation.get("sentence") or "").strip()
        if not sentence:
            continue
        start = text.find(sentence, position)
        if start < 0:
            continue
        position = start + len(sentence)
        if not citation.get("supported"):
            marks.append((start, position))
    label = _t("unsupported", lang)
    out, last = [], 0
    for start, end in marks:
        out.append(esc_lines(text[last:start]))
        out.append(f'<span class="rag-unsupported" title="{attr(label)}">{esc_lines(text[start:end])}</span>'
                   f'<span class="rag-unsupported-tag"> ⚠ {esc(label)}</span>')
        last = end
    out.append(esc_lines(text[last:]))
    return "".join(out)


def _page_label(source: dict) -> str:
    return f"p. {source['page']}" if source.get("page") else ""


def _chip(n: int, source: dict) -> str:
    page = f" · {_page_label(source)}" if source.get("page") else ""
    return f'<span class="rag-cite">[{n}] {esc(source.get("source", ""))}{esc(page)}</span>'


# ------------------------------------------------------------------ chat bubbles


def render_user(question: str) -> str:
    """The user's bubble: exactly what was typed."""
    return f'<div class="rag-user-text">{esc_lines(question)}</div>'


def _stage(turn: dict) -> str:
    lang = turn.get("ui_lang")
    stage = turn.get("stage") or "searching"
    label = _t(stage, lang, model=turn.get("stage_model") or "")
    elapsed = turn.get("elapsed")
    seconds = f' <span class="rag-elapsed">{int(elapsed)} s</span>' if elapsed and elapsed >= 1 else ""
    return f'<div class="rag-stage" role="status"><span class="rag-spinner" aria-hidden="true"></span>{esc(label)}{seconds}</div>'


def render_answer(turn: dict) -> str:
    """The answer bubble: progress, streamed text with a cursor, the finished answer with its
    cited sources, a refusal or an error notice."""
    lang = turn.get("ui_lang") or turn.get("lang")
    if turn.get("error"):
        hint = turn.get("error_hint") or ""
        return (f'<div class="rag-notice rag-error" role="alert"><b>{esc(turn.get("error_title") or "Error")}</b>'
                f'{"<br>" + esc(hint) if hint else ""}<span class="hint">{esc_lines(turn["error"])}</span></div>')
    if turn.get("refused") and not turn.get("streaming"):
        return (f'<div class="rag-notice rag-refusal" lang="{attr(lang or "en")}"><b>{esc(_t("refusal_title", lang))}</b>'
                f'<br>{esc_lines(turn.get("answer") or "")}'
                f'<span class="hint">{esc(_t("refusal_hint", lang))}</span></div>')
    text = turn.get("answer") or ""
    # A low answerability score (Answer.note): the reader is told to check the quotes.
    note = (f'<div class="rag-caution" role="note" lang="{attr(lang or "en")}">{esc(turn["note"])}</div>'
            if turn.get("note") else "")
    if turn.get("streaming"):
        if not text:
            return _stage(turn)
        return (f'{note}<div class="rag-answer">{esc_lines(text)}'
                f'<span class="rag-cursor" aria-hidden="true"> ▍</span></div>')
    if turn.get("stopped"):
        body = esc_lines(text) if text else esc(_t("stopped_empty", lang))
        return (f'{note}<div class="rag-answer">{body}</div>'
                f'<div class="rag-stopped" role="status">■ {esc(_t("stopped", lang))}</div>')
    sources = turn.get("sources") or []
    body = _answer_body(text, turn.get("citations") or [], lang)
    cited = cited_sources(turn)
    chips = "".join(_chip(n, s) for n, s in enumerate(sources, start=1) if n in cited)
    return note + f'<div class="rag-answer">{body}</div>' + (f'<div class="rag-cites">{chips}</div>' if chips else
                                                     '<div class="rag-cites rag-cites-none"></div>')


def render_messages(turns: list[dict]) -> list[dict]:
    """Chat messages for gradio's Chatbot: turn ``t`` is messages ``2t`` and ``2t + 1``."""
    messages = []
    for turn in turns:
        messages.append({"role": "user", "content": render_user(turn["question"])})
        messages.append({"role": "assistant", "content": render_answer(turn)})
    return messages


# ------------------------------------------------------------------ sources card


def _excerpt(text: str, quote: tuple[int, int] | None) -> str:
    """The passage as text: around the highlighted quote when there is one, else its start;
    the whole passage behind "Full excerpt" when it is longer."""
    if quote is not None:
        start, end = quote
        before_start = max(0, start - QUOTE_CONTEXT_CHARS)
        cut = text.rfind(" ", before_start, start)
        before_start = cut + 1 if cut > before_start else before_start
        after_end = min(len(text), end + QUOTE_CONTEXT_CHARS)
        cut = text.find(" ", end + QUOTE_CONTEXT_CHARS // 2, after_end)
        after_end = cut if cut > 0 else after_end

        def marked(a: int, b: int) -> str:
            return (esc(text[a:start]) + f'<mark class="rag-quote">{esc(text[start:end])}</mark>' + esc(text[end:b]))

        short = ("…" if before_start > 0 else "") + marked(before_start, after_end) + ("…" if after_end < len(text) else "")
        if before_start == 0 and after_end == len(text):
            return short
        return f'{short}<details><summary>Full excerpt</summary>{marked(0, len(text))}</details>'
    flat = text
    if len(flat) <= SNIPPET_CHARS:
        return esc(flat)
    cut = flat.rfind(" ", 0, SNIPPET_CHARS)
    cut = cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS
    return f"{esc(flat[:cut])}…<details><summary>Full excerpt</summary>{esc(flat)}</details>"


def _quote_span(turn: dict, n: int, text: str) -> tuple[int, int] | None:
    """Where the citation check found the supporting quote for source ``n`` (first supported one)."""
    for citation in turn.get("citations") or []:
        if citation.get("quote_source") != n or not citation.get("supported"):
            continue
        start, end = citation.get("quote_start", -1), citation.get("quote_end", -1)
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            return start, end
        quote = citation.get("quote") or ""
        found = text.find(quote) if quote else -1
        if found >= 0:
            return found, found + len(quote)
    return None


def render_sources(turn: dict | None, number: int | None = None,
                   document_url: Callable[[dict], str | None] | None = None) -> str:
    """The sources card for one turn (None: the empty state). ``document_url(source)`` gives
    the link that opens a PDF at its page (None: no link)."""
    if turn is None:
        return ('<div class="rag-card" id="rag-sources-card"><div class="rag-card-title"><h2>Sources</h2></div>'
                '<div class="rag-muted rag-empty">The passages each answer is based on appear here, '
                'numbered like the [n] markers in the answer. Click an answer to see its sources again.</div></div>')
    lang = turn.get("ui_lang") or turn.get("lang")
    question = turn.get("question", "")
    sub = (f'<span class="sub" title="{attr(question)}">{"Answer " + str(number) + " · " if number else ""}'
           f'{esc(" ".join(question.split()))}</span>')
    head = f'<div class="rag-card" id="rag-sources-card"><div class="rag-card-title"><h2>Sources</h2>{sub}</div>'
    if turn.get("error"):
        return head + '<div class="rag-muted rag-empty">No sources: the question could not be answered.</div></div>'
    if turn.get("refused") and not turn.get("streaming"):
        return head + f'<div class="rag-notice rag-refusal" lang="{attr(lang or "en")}">{esc(_t("refusal_sources", lang))}</div></div>'
    sources = turn.get("sources") or []
    if not sources:
        message = "Stopped." if turn.get("stopped") else "Searching…"
        return head + f'<div class="rag-muted rag-empty">{message}</div></div>'
    done = not turn.get("streaming") and not turn.get("stopped")
    cited = cited_sources(turn) if done else set()
    items = []
    for n, s in enumerate(sources, start=1):
        text = " ".join(str(s.get("text", "")).split()) if not turn.get("citations") else str(s.get("text", ""))
        quote = _quote_span(turn, n, text) if done else None
        uncited = done and n not in cited
        # Its own element, after a hidden comma: read as "file.pdf, not cited", never "file.pdfnot cited".
        flag = (f'<span class="rag-src-flag"><span class="rag-sr">, </span>({esc(_t("not_cited", lang))})</span>'
                if uncited else "")
        page = f'<span class="rag-src-page">{_page_label(s)}</span>' if s.get("page") else ""
        cosine = s.get("dense_score")
        score = f'score {float(s.get("score") or 0):.3f}' + (f" · cos {float(cosine):.2f}" if cosine is not None else "")
        url = document_url(s) if document_url and s.get("page") else None
        link = (f'<a class="rag-open" href="{attr(url)}#page={int(s["page"])}" target="_blank" '
                f'rel="noopener noreferrer">{esc(_t("open_pdf", lang, page=s["page"]))}</a>') if url else ""
        items.append(
            f'<div class="rag-src{" rag-uncited" if uncited else " rag-cited" if done else ""}" data-n="{n}">'
            f'<div class="rag-src-head"><span class="rag-src-n">{n}</span>'
            f'<span class="rag-src-file" title="{attr(s.get("path") or s.get("source", ""))}">{esc(s.get("source", ""))}</span>'
            f'{flag}{page}<span class="rag-src-score" title="{SCORE_TITLE}">{score}</span></div>'
            f'<div class="rag-src-snip">{_excerpt(text, quote)}</div>{link}</div>'
        )
    return head + "".join(items) + "</div>"


# ------------------------------------------------------------------ index status and uploads


def _format_time(stamp: str | None) -> str:
    if not stamp:
        return "—"
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def index_status(index: str | os.PathLike) -> dict:
    """Counts for the status panel: {"state": "ok" | "empty" | "error", documents, chunks, pages, ...}."""
    from rag.store import read_manifest

    try:
        manifest = read_manifest(Path(index))
    except IndexNotFoundError:
        return {"state": "empty"}
    except RagError as exc:
        return {"state": "error", "message": str(exc)}
    files = manifest.get("files", {}) if isinstance(manifest, dict) else {}
    return {
        "state": "ok",
        "documents": len(files),
        "chunks": int(manifest.get("n_chunks", 0)),
        "pages": sum(int(meta.get("pages") or 0) for meta in files.values()),
        "embed_model": (manifest.get("embedder") or {}).get("name", "?"),
        "updated_at": manifest.get("updated_at"),
        "names": sorted(meta.get("source") or Path(path).name for path, meta in files.items()),
    }


def render_status(index: str | os.PathLike, docs_dir: str | os.PathLike | None = None,
                  upload_dir: str | os.PathLike | None = None) -> str:
    status = index_status(index)
    head = '<div class="rag-card" id="rag-status-card"><div class="rag-card-title"><h2>Index</h2></div>'
    from rag.locations import is_milvus, parse

    # a milvus:// index is shown as its URI (a Path would mangle it into a local folder)
    where = (f'<div class="rag-meta"><b>Milvus</b> {esc(str(parse(index)))}' if is_milvus(index)
             else f'<div class="rag-meta"><b>Folder</b> {esc(Path(index).absolute())}')
    if docs_dir:
        where += f'<br><b>Documents folder</b> {esc(Path(docs_dir).absolute())}'
    where += "</div>"
    if status["state"] == "empty":
        return head + ('<div class="rag-muted rag-empty"><b>No index yet — upload documents</b><br>'
                       'Drop PDF, text or markdown files below; they are indexed on arrival.</div>') + where + "</div>"
    if status["state"] == "error":
        return head + f'<div class="rag-notice rag-error">{esc(status["message"])}</div>' + where + "</div>"
    stats = "".join(
        f'<div class="rag-stat"><span class="num">{value}</span><span class="lbl">{label}</span></div>'
        for value, label in ((status["documents"], "documents"), (status["chunks"], "chunks"), (status["pages"], "pages"))
    )
    names = "".join(f"<li>{esc(name)}</li>" for name in status["names"][:200])
    more = f"<li>… {len(status['names']) - 200} more</li>" if len(status["names"]) > 200 else ""
    docs = f'<details class="rag-docs"><summary>Documents</summary><ul>{names}{more}</ul></details>' if names else ""
    meta = (f'<div class="rag-meta"><b>Embedding model</b> {esc(status["embed_model"])}<br>'
            f'<b>Last ingest</b> {esc(_format_time(status["updated_at"]))}</div>')
    return head + f'<div class="rag-stats">{stats}</div>' + meta + docs + where + "</div>"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def upload_headline(result, documents: int | None = None) -> str:
    """What the upload did, counted per file of *this* upload, plus the index total:
    "1 added, 1 not added · the index has 6 documents"."""
    lines = result.lines()
    parts = []
    for kind, label in (("ok", "added"), ("same", "already in the index"), ("bad", "not added")):
        n = sum(1 for k, _ in lines if k == kind)
        if n:
            parts.append(f"{n} {label}")
    head = ", ".join(parts) or "nothing uploaded"
    if documents is not None:
        head += f" · the index has {_count(documents, 'document')}"
    return head


def render_upload_report(result, documents: int | None = None) -> str:
    """HTML list of what happened to each uploaded file."""
    if result is None:
        return ""
    lines = result.lines()
    if not lines and not result.error:
        return ""
    icons = {"ok": "✓", "same": "✓", "bad": "✗"}
    items = "".join(f'<li class="{kind}"><span class="mark" aria-hidden="true">{icons[kind]}</span>{esc(text)}</li>'
                    for kind, text in lines)
    error = f'<div class="rag-notice rag-error">{esc(result.error)}</div>' if result.error else ""
    return (f'<div class="rag-card rag-upload-report"><div class="rag-card-title"><h2>Upload</h2>'
            f'<span class="sub">{esc(upload_headline(result, documents))}</span></div>{error}<ul>{items}</ul></div>')


__all__ = ["esc", "esc_lines", "ERROR_TITLES", "error_title", "error_hint", "cited_sources", "render_user",
           "render_answer", "render_messages", "render_sources", "index_status", "render_status",
           "render_upload_report", "upload_headline", "too_long_message", "SCORE_TITLE"]
