"""The Gradio chat page: a thin layer around :func:`rag.ask` and :func:`rag.ingest`.

    from rag.ui import create_app, launch
    app = create_app(index=".rag/index")
    launch(app, host="127.0.0.1", port=7860)

Everything a user sees is built from a per-session list of *turns* (``gr.State``), one
per question: ``{"question", "answer", "refused", "error", "sources", "settings", ...}``.
Turn ``t`` is shown as chat messages ``2t`` (question) and ``2t + 1`` (answer), which is
how votes and clicks on a message find their turn. The chat is also an API endpoint,
``/chat`` (gradio_client: ``Client(url).predict(question, api_name="/chat")``), and so
are uploads, ``/upload``.
"""

import html
import logging
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import gradio as gr

import rag
from rag import config
from rag.generators import generator_names
from rag.settings import GenerationSettings, RetrievalSettings
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

from .feedback import append_feedback, default_feedback_path, feedback_record, vote_name
from .uploads import human_size, ingest_uploads, max_upload_bytes, supported_suffixes

log = logging.getLogger(__name__)

TITLE = "Ask your documents"
SUBTITLE = ("Answers grounded in your PDFs, text and markdown files, in the language you ask in. "
            "Every statement cites its source as [n].")
GENERATOR_INFO = "extractive: quotes passages, instant · hf: local model, slow on CPU · openai: API server"
LOGO_SVG = ('<svg viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" stroke-width="1.8" '
            'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
            '<path d="M4 5.5A2.5 2.5 0 0 1 6.5 3H19v15H6.5A2.5 2.5 0 0 0 4 20.5z"/><path d="M4 20.5A2.5 2.5 0 0 0 6.5 23H19v-5"/>'
            '<circle cx="11.5" cy="10" r="3"/><path d="m13.7 12.2 2.3 2.3"/></svg>')
STREAM_INTERVAL_S = 0.04  # at most ~25 chat updates a second while tokens stream in
SNIPPET_CHARS = 320

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Noto Sans",
                "Arial", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]

CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto !important; }
#rag-header { display: flex; gap: 14px; align-items: center; padding: 6px 2px 2px 2px; }
#rag-header .logo { width: 46px; height: 46px; border-radius: 12px; display: flex; align-items: center;
  justify-content: center; font-size: 24px; background: linear-gradient(135deg, #6366f1, #06b6d4); color: white;
  box-shadow: 0 4px 14px rgba(99, 102, 241, .35); flex: none; }
#rag-header h1 { margin: 0; font-size: 1.55rem; font-weight: 700; letter-spacing: -0.01em; }
#rag-header p { margin: 2px 0 0 0; color: var(--body-text-color-subdued); font-size: .95rem; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 12px; padding: 12px 14px;
  background: var(--block-background-fill); }
.rag-card-title { display: flex; justify-content: space-between; align-items: baseline; font-weight: 650;
  font-size: .95rem; margin-bottom: 8px; gap: 8px; }
.rag-card-title .sub { font-weight: 400; font-size: .8rem; color: var(--body-text-color-subdued);
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 65%; }
.rag-muted { color: var(--body-text-color-subdued); font-size: .88rem; line-height: 1.45; }
.rag-src { border-top: 1px solid var(--border-color-primary); padding: 9px 0 7px 0; }
.rag-src:first-of-type { border-top: none; padding-top: 2px; }
.rag-src-head { display: flex; align-items: center; gap: 8px; font-size: .88rem; }
.rag-src-n { flex: none; min-width: 22px; height: 22px; border-radius: 6px; background: var(--color-accent-soft);
  color: var(--color-accent); font-weight: 700; font-size: .78rem; display: inline-flex; align-items: center;
  justify-content: center; padding: 0 4px; }
.rag-src-file { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.rag-src-page { flex: none; font-size: .78rem; padding: 1px 7px; border-radius: 999px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.rag-src-score { margin-left: auto; flex: none; font-size: .75rem; color: var(--body-text-color-subdued);
  font-variant-numeric: tabular-nums; }
.rag-uncited { opacity: .62; }
.rag-uncited .rag-src-file::after { content: "not cited"; margin-left: 6px; font-weight: 400; font-size: .72rem;
  color: var(--body-text-color-subdued); }
.rag-src-snip { margin-top: 5px; font-size: .84rem; line-height: 1.45; color: var(--body-text-color);
  white-space: pre-wrap; word-break: break-word; }
.rag-src-snip details summary { cursor: pointer; color: var(--color-accent); font-size: .78rem; margin-top: 3px; }
.rag-stats { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin-bottom: 8px; }
.rag-stat { background: var(--background-fill-secondary); border-radius: 10px; padding: 8px 10px; }
.rag-stat .num { display: block; font-size: 1.25rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.rag-stat .lbl { font-size: .75rem; color: var(--body-text-color-subdued); text-transform: uppercase;
  letter-spacing: .04em; }
.rag-meta { font-size: .82rem; color: var(--body-text-color-subdued); line-height: 1.6; word-break: break-all; }
.rag-meta b { color: var(--body-text-color); font-weight: 600; }
.rag-docs summary { cursor: pointer; font-size: .82rem; margin-top: 4px; }
.rag-docs ul { margin: 4px 0 0 0; padding-left: 18px; font-size: .82rem; }
.rag-empty { text-align: center; padding: 14px 6px; }
.rag-notice { border-radius: 10px; padding: 10px 12px; font-size: .92rem; line-height: 1.5; }
.rag-refusal { background: #fff7ed; border: 1px solid #fdba74; color: #7c2d12; }
.rag-error { background: #fef2f2; border: 1px solid #fca5a5; color: #7f1d1d; }
.rag-notice .hint { display: block; margin-top: 4px; font-size: .8rem; opacity: .85; word-break: break-word; }
.dark .rag-refusal { background: #431407; border-color: #9a3412; color: #fed7aa; }
.dark .rag-error { background: #450a0a; border-color: #991b1b; color: #fecaca; }
.rag-cites { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 6px; font-size: .78rem; }
.rag-cite { padding: 1px 8px; border-radius: 999px; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); color: var(--body-text-color-subdued); }
.rag-upload-report ul { list-style: none; margin: 6px 0 0 0; padding: 0; font-size: .86rem; }
.rag-upload-report li { padding: 3px 0; line-height: 1.4; word-break: break-word; }
.rag-upload-report li.bad { color: #b91c1c; }
.dark .rag-upload-report li.bad { color: #fca5a5; }
.rag-upload-report li.ok { color: var(--body-text-color); }
.rag-upload-report .mark { display: inline-block; width: 1.2em; font-weight: 700; }
.rag-upload-report li.ok .mark, .rag-upload-report li.same .mark { color: #16a34a; }
.rag-formats { font-size: .8rem; padding: 0 4px; }
#rag-question textarea { font-size: 1rem; }
.rag-placeholder { text-align: center; color: var(--body-text-color-subdued); line-height: 1.6; font-size: .95rem; }
.rag-placeholder b { display: block; font-size: 1.15rem; color: var(--body-text-color); margin-bottom: 4px; }
#rag-chatbot { border-radius: 12px; }
footer { opacity: .75; }
"""


# What the two numbers on a source card are (rag/retrieval.py: fuse).
SCORE_TITLE = ("fused retrieval score: standard deviations above the other candidates, averaged over "
               "the rankers · cosine similarity to the question")


def make_theme() -> gr.themes.Base:
    """Soft, indigo, system fonts only: nothing is fetched from a font CDN."""
    return gr.themes.Soft(
        primary_hue="indigo", secondary_hue="cyan", neutral_hue="slate", radius_size="md",
        font=SYSTEM_FONTS, font_mono=MONO_FONTS,
    )


class RagBlocks(gr.Blocks):
    """gr.Blocks whose ``launch`` applies the app's theme and CSS unless told otherwise.

    Gradio 6 takes ``theme`` and ``css`` in ``launch()``; this keeps a plain
    ``app.launch(...)`` (tests, scripts) looking like ``rag ui``.
    """

    rag_theme: Any = None
    rag_css: str = ""

    def launch(self, *args, **kwargs):
        kwargs.setdefault("theme", self.rag_theme)
        kwargs.setdefault("css", self.rag_css)
        return super().launch(*args, **kwargs)


# ---------------------------------------------------------------- rendering


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _snippet(text: str) -> str:
    flat = " ".join(str(text).split())
    if len(flat) <= SNIPPET_CHARS:
        return _esc(flat)
    cut = flat.rfind(" ", 0, SNIPPET_CHARS)
    cut = cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS
    return (f"{_esc(flat[:cut])}…<details><summary>Full excerpt</summary>{_esc(flat)}</details>")


def _page_label(source: dict) -> str:
    return f"p. {source['page']}" if source.get("page") else ""


def error_title(exc: BaseException) -> str:
    if isinstance(exc, IndexNotFoundError):
        return "No index yet — upload documents"
    if isinstance(exc, ConfigurationError):
        return "The generator is not configured"
    if isinstance(exc, ServerUnavailableError):
        return "The model server cannot be reached"
    if isinstance(exc, (InputError, BackendNotFoundError)):
        return "Check the settings"
    if isinstance(exc, (EmbedderMismatchError, IndexCorruptError)):
        return "Problem with the index"
    if isinstance(exc, ModelLoadError):
        return "The model could not be loaded"
    if isinstance(exc, GeneratorError):
        return "The generator failed"
    if isinstance(exc, RagError):
        return "Could not answer"
    return "Unexpected error"


def error_hint(exc: BaseException) -> str:
    if isinstance(exc, IndexNotFoundError):
        return "Add PDF, text or markdown files with the upload box on the right, then ask again."
    if isinstance(exc, (ConfigurationError, ServerUnavailableError, ModelLoadError)):
        return "Or pick the extractive generator under Settings: it needs no model."
    return ""


def cited_numbers(text: str, n_sources: int) -> set[int]:
    """The source numbers an answer cites with [n] markers (also [1, 3] and [1][2])."""
    from rag.text import cited_numbers as numbers_in

    return {n for n in numbers_in(text) if 1 <= n <= n_sources}


def render_answer(turn: dict) -> str:
    """The chat bubble of an answer: text (with a cursor while streaming), a refusal or an error notice."""
    if turn.get("error"):
        hint = turn.get("error_hint") or ""
        return (f'<div class="rag-notice rag-error"><b>{_esc(turn.get("error_title") or "Error")}</b>'
                f'{"<br>" + _esc(hint) if hint else ""}<span class="hint">{_esc(turn["error"])}</span></div>')
    if turn.get("refused") and not turn.get("streaming"):
        return (f'<div class="rag-notice rag-refusal"><b>Not found in your documents</b>'
                f'<br>{_esc(turn.get("answer") or "")}'
                f'<span class="hint">No source passage was close enough to the question, so nothing was made up.</span></div>')
    text = turn.get("answer") or ""
    if turn.get("streaming"):
        return (text + " ▍") if text else "_Searching your documents…_"
    sources = turn.get("sources") or []
    cited = cited_numbers(text, len(sources)) or set(range(1, len(sources) + 1))
    cites = "".join(
        f'<span class="rag-cite">[{n}] {_esc(s["source"])}{" · " + _page_label(s) if s.get("page") else ""}</span>'
        for n, s in enumerate(sources, start=1) if n in cited
    )
    return text + (f'\n\n<div class="rag-cites">{cites}</div>' if cites else "")


def render_messages(turns: list[dict]) -> list[dict]:
    messages = []
    for turn in turns:
        messages.append({"role": "user", "content": turn["question"]})
        messages.append({"role": "assistant", "content": render_answer(turn)})
    return messages


def render_sources(turn: dict | None, number: int | None = None) -> str:
    """The sources card for one turn (None: the empty state)."""
    if turn is None:
        return ('<div class="rag-card" id="rag-sources-card"><div class="rag-card-title">Sources</div>'
                '<div class="rag-muted rag-empty">The passages each answer is based on appear here, '
                'numbered like the [n] markers in the answer. Click an answer to see its sources again.</div></div>')
    question = turn.get("question", "")
    sub = f'<span class="sub" title="{_esc(question)}">{"Answer " + str(number) + " · " if number else ""}{_esc(question)}</span>'
    head = f'<div class="rag-card" id="rag-sources-card"><div class="rag-card-title"><span>Sources</span>{sub}</div>'
    if turn.get("error"):
        return head + '<div class="rag-muted rag-empty">No sources: the question could not be answered.</div></div>'
    if turn.get("refused") and not turn.get("streaming"):
        return head + ('<div class="rag-notice rag-refusal">No sources: your documents do not cover this question. '
                       'Try other words, or upload a document that does.</div></div>')
    sources = turn.get("sources") or []
    if not sources:
        return head + '<div class="rag-muted rag-empty">Searching…</div></div>'
    cited = cited_numbers(turn.get("answer", ""), len(sources)) if not turn.get("streaming") else set()
    items = []
    for n, s in enumerate(sources, start=1):
        uncited = " rag-uncited" if cited and n not in cited else ""
        page = f'<span class="rag-src-page">{_page_label(s)}</span>' if s.get("page") else ""
        cosine = s.get("dense_score")
        score = f'score {float(s.get("score") or 0):.3f}' + (f" · cos {float(cosine):.2f}" if cosine is not None else "")
        items.append(
            f'<div class="rag-src{uncited}" data-n="{n}"><div class="rag-src-head"><span class="rag-src-n">{n}</span>'
            f'<span class="rag-src-file" title="{_esc(s.get("path") or s["source"])}">{_esc(s["source"])}</span>{page}'
            f'<span class="rag-src-score" title="{SCORE_TITLE}">{score}</span>'
            f'</div><div class="rag-src-snip">{_snippet(s.get("text", ""))}</div></div>'
        )
    return head + "".join(items) + "</div>"


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
    files = manifest.get("files", {})
    return {
        "state": "ok",
        "documents": len(files),
        "chunks": int(manifest.get("n_chunks", 0)),
        "pages": sum(int(meta.get("pages") or 0) for meta in files.values()),
        "embed_model": manifest.get("embedder", {}).get("name", "?"),
        "updated_at": manifest.get("updated_at"),
        "names": sorted(meta.get("source") or Path(path).name for path, meta in files.items()),
    }


def render_status(index: str | os.PathLike, docs_dir: str | os.PathLike | None = None,
                  upload_dir: str | os.PathLike | None = None) -> str:
    status = index_status(index)
    head = '<div class="rag-card" id="rag-status-card"><div class="rag-card-title"><span>Index</span></div>'
    where = f'<div class="rag-meta"><b>Folder</b> {_esc(Path(index).absolute())}'
    if docs_dir:
        where += f'<br><b>Documents folder</b> {_esc(Path(docs_dir).absolute())}'
    where += "</div>"
    if status["state"] == "empty":
        return head + ('<div class="rag-muted rag-empty"><b>No index yet — upload documents</b><br>'
                       'Drop PDF, text or markdown files below; they are indexed on arrival.</div>') + where + "</div>"
    if status["state"] == "error":
        return head + f'<div class="rag-notice rag-error">{_esc(status["message"])}</div>' + where + "</div>"
    stats = "".join(
        f'<div class="rag-stat"><span class="num">{value}</span><span class="lbl">{label}</span></div>'
        for value, label in ((status["documents"], "documents"), (status["chunks"], "chunks"), (status["pages"], "pages"))
    )
    names = "".join(f"<li>{_esc(name)}</li>" for name in status["names"][:200])
    more = f"<li>… {len(status['names']) - 200} more</li>" if len(status["names"]) > 200 else ""
    docs = f'<details class="rag-docs"><summary>Documents</summary><ul>{names}{more}</ul></details>' if names else ""
    meta = (f'<div class="rag-meta"><b>Embedding model</b> {_esc(status["embed_model"])}<br>'
            f'<b>Last ingest</b> {_esc(_format_time(status["updated_at"]))}</div>')
    return head + f'<div class="rag-stats">{stats}</div>' + meta + docs + where + "</div>"


def render_upload_report(result) -> str:
    """HTML list of what happened to each uploaded file."""
    if result is None:
        return ""
    lines = result.lines()
    if not lines and not result.error:
        return ""
    icons = {"ok": "✓", "same": "✓", "bad": "✗"}
    items = "".join(f'<li class="{kind}"><span class="mark">{icons[kind]}</span>{_esc(text)}</li>' for kind, text in lines)
    ok = sum(1 for kind, _ in lines if kind != "bad")
    bad = sum(1 for kind, _ in lines if kind == "bad")
    head = f"{ok} file{'s' if ok != 1 else ''} in the index" + (f", {bad} not added" if bad else "")
    error = f'<div class="rag-notice rag-error">{_esc(result.error)}</div>' if result.error else ""
    return (f'<div class="rag-card rag-upload-report"><div class="rag-card-title"><span>Upload</span>'
            f'<span class="sub">{_esc(head)}</span></div>{error}<ul>{items}</ul></div>')


# ---------------------------------------------------------------- the app


def _settings(generator, model, temperature, top_p, max_tokens, k) -> dict:
    return {
        "generator": (generator or None),
        "model": (str(model).strip() or None) if model else None,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "max_tokens": int(max_tokens),
        "k": int(k),
    }


def _history(turns: list[dict]) -> list[tuple[str, str]]:
    """(question, answer) pairs of the answered turns, for follow-up questions."""
    return [(t["question"], t["answer"]) for t in turns if not t.get("error") and t.get("answer")]


def create_app(
    index: str | os.PathLike | None = None,
    docs_dir: str | os.PathLike | None = None,
    upload_dir: str | os.PathLike | None = None,
    feedback_path: str | os.PathLike | None = None,
    ask_fn: Callable[..., Any] = rag.ask,
    *,
    generator: str | None = None,
    model: str | None = None,
    retrieval: RetrievalSettings | None = None,
    generation: GenerationSettings | None = None,
    embed_model: str | None = None,
    max_upload_mb: float | None = None,
    concurrency_limit: int = 2,
    title: str = TITLE,
    subtitle: str = SUBTITLE,
) -> RagBlocks:
    """Build the chat page (no server is started: see :func:`launch`).

    ``index``: the index folder (default $RAG_INDEX_DIR or ./.rag/index). ``docs_dir``: a folder
    the page can re-scan ("Sync folder"). ``upload_dir``: where uploads are saved (default
    ``<index>/../uploads``). ``feedback_path``: the votes file (default ``<index>/../feedback.jsonl``).
    ``ask_fn``: called as ``ask_fn(question, index=..., k=..., generator=..., model=..., temperature=...,
    top_p=..., max_tokens=..., history=[(q, a), ...], stream=True)``. The keyword defaults set the
    controls' initial values; ``generator`` defaults to :func:`rag.config.generator_name`.
    ``concurrency_limit``: questions answered at the same time (others wait in the queue).
    """
    retrieval = retrieval or RetrievalSettings()
    generation = generation or GenerationSettings()
    temperature, top_p, max_tokens = generation.temperature, generation.top_p, generation.max_tokens
    k, min_score = retrieval.k, retrieval.min_score
    index_path = config.index_dir(index).expanduser().absolute()
    upload_path = Path(upload_dir).expanduser().absolute() if upload_dir else index_path.parent / "uploads"
    feedback_file = Path(feedback_path).expanduser().absolute() if feedback_path else default_feedback_path(index_path)
    docs_path = Path(docs_dir).expanduser().absolute() if docs_dir else None
    max_bytes = max_upload_bytes(max_upload_mb)
    default_generator = config.generator_name(generator)
    choices = generator_names() + ([default_generator] if default_generator not in generator_names() else [])
    extra_options = {"min_score": min_score} if min_score is not None else {}
    if embed_model:
        extra_options["embed_model"] = embed_model

    def status_html() -> str:
        return render_status(index_path, docs_path, upload_path)

    def respond(question, turns, generator, model, temperature, top_p, max_tokens, k):
        """Answer ``question`` with streaming; yields (chat, turns, sources, question box, answer)."""
        question = (question or "").strip()
        turns = [dict(t) for t in (turns or [])]
        if not question:
            latest = turns[-1] if turns else None
            yield render_messages(turns), turns, render_sources(latest, len(turns) or None), "", gr.skip()
            return
        history = _history(turns)
        turn: dict[str, Any] = {"question": question, "answer": "", "refused": False, "error": "", "sources": [],
                                "streaming": True, "settings": {}}
        turns.append(turn)
        number = len(turns)
        try:
            settings = _settings(generator, model, temperature, top_p, max_tokens, k)
            turn["settings"] = settings
            yield render_messages(turns), turns, render_sources(turn, number), "", gr.skip()  # empties the box
            result = ask_fn(question, index=str(index_path), k=settings["k"], generator=settings["generator"],
                            model=settings["model"], temperature=settings["temperature"], top_p=settings["top_p"],
                            max_tokens=settings["max_tokens"], history=history, stream=True, **extra_options)
            if isinstance(result, rag.Answer):  # an ask_fn that does not stream
                pieces, final = [result.text], result
            else:
                pieces, final = result, None
            turn["sources"] = [s.to_dict() for s in getattr(result, "sources", []) or []]
            turn["refused"] = bool(getattr(result, "refused", False))
            # From here on the question box is left alone: the user may be typing the next question.
            yield render_messages(turns), turns, render_sources(turn, number), gr.skip(), gr.skip()
            last = time.monotonic()
            for piece in pieces:
                turn["answer"] += piece
                if time.monotonic() - last >= STREAM_INTERVAL_S:
                    last = time.monotonic()
                    yield render_messages(turns), turns, gr.skip(), gr.skip(), gr.skip()
            answer = final if final is not None else result.answer
            turn.update(answer=answer.text, refused=bool(answer.refused), standalone_question=answer.standalone_question,
                        lang=answer.lang, generator=answer.generator, model=answer.model, score=answer.score,
                        timings={key: round(value, 4) for key, value in answer.timings.items()},
                        sources=[] if answer.refused else [s.to_dict() for s in answer.sources])
        except RagError as exc:
            turn.update(error=str(exc), error_title=error_title(exc), error_hint=error_hint(exc), sources=[])
        except Exception as exc:  # never a stack trace in the page; the log has it
            log.exception("answering %r failed", question)
            turn.update(error=f"{type(exc).__name__}: {exc}", error_title=error_title(exc), sources=[])
        turn["streaming"] = False
        public = {key: turn.get(key) for key in ("question", "answer", "refused", "error", "settings",
                                                 "standalone_question", "lang", "generator", "model", "score")}
        # No "path" keys: gradio would take {"path": ...} for a file to serve.
        public["sources"] = [{"n": n, "file": s["source"], "page": s.get("page"), "score": s.get("score"),
                              "cosine": s.get("dense_score"), "text": s.get("text", "")}
                             for n, s in enumerate(turn.get("sources") or [], start=1)]
        yield render_messages(turns), turns, render_sources(turn, number), gr.skip(), public

    def clear():
        return [], [], render_sources(None), "", None

    def show_sources(turns, event: gr.SelectData):
        index_ = event.index if isinstance(event.index, int) else event.index[0]
        number = index_ // 2
        if not turns or number >= len(turns):
            return gr.skip()
        return render_sources(turns[number], number + 1)

    def vote(turns, event: gr.LikeData):
        index_ = event.index if isinstance(event.index, int) else event.index[0]
        number = index_ // 2
        if not turns or number >= len(turns) or index_ % 2 == 0:
            return
        turn = turns[number]
        if turn.get("error") or turn.get("streaming"):
            gr.Info("Only finished answers can be rated.")
            return
        record = feedback_record(vote_name(event.liked), turn, index=index_path, history=_history(turns[:number]))
        append_feedback(feedback_file, record)
        if record["vote"] != "cleared":
            gr.Info("Thanks — your feedback was saved.")

    def upload(files, progress=gr.Progress()):
        if not files:
            return gr.skip(), status_html(), None
        result = ingest_uploads(files, index_path, upload_path, max_bytes, embed_model=embed_model,
                                progress=lambda fraction, desc: progress(fraction, desc=desc))
        return render_upload_report(result), status_html(), None

    def sync_folder(progress=gr.Progress()):
        from rag.ingest.pipeline import ingest

        if docs_path is None:
            return gr.skip(), status_html()
        progress(0.0, desc=f"Scanning {docs_path.name}")
        try:
            summary = ingest([str(docs_path)], index_path, embed_model=embed_model, progress=False,
                             on_file=lambda report: progress(None, desc=f"Read {Path(report.path).name}"))
        except RagError as exc:
            return f'<div class="rag-notice rag-error">{_esc(exc)}</div>', status_html()
        bad = [r for r in summary.reports if r.status in ("failed", "skipped")]
        items = "".join(f'<li class="bad"><span class="mark">✗</span>{_esc(Path(r.path).name)}: {_esc(r.reason)}</li>' for r in bad)
        line = (f"added {summary.added}, changed {summary.changed}, unchanged {summary.unchanged}, "
                f"removed {summary.removed}, failed {summary.failed}")
        return (f'<div class="rag-card rag-upload-report"><div class="rag-card-title"><span>Folder sync</span>'
                f'<span class="sub">{_esc(line)}</span></div><ul>{items}</ul></div>'), status_html()

    formats = ", ".join(s.lstrip(".") for s in supported_suffixes())
    with RagBlocks(title=title, analytics_enabled=False) as app:
        app.rag_theme = make_theme()
        app.rag_css = CSS
        turns = gr.State([])
        gr.HTML(f'<div id="rag-header"><div class="logo">{LOGO_SVG}</div><div><h1>{_esc(title)}</h1>'
                f'<p>{_esc(subtitle)}</p></div></div>')
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=440):
                chatbot = gr.Chatbot(
                    elem_id="rag-chatbot", label="Conversation", show_label=False, height=580,
                    placeholder=('<div class="rag-placeholder"><b>Ask about your documents</b><br>'
                                 'Answers quote and cite the passages they come from.<br>'
                                 'Upload files on the right if the index is empty.</div>'),
                    feedback_options=("Like", "Dislike"), buttons=["copy"], layout="bubble",
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        elem_id="rag-question", label="Question", show_label=False, scale=8, lines=1, max_lines=6, autofocus=True,
                        placeholder="Ask a question about your documents… (Enter to send)", container=False,
                    )
                    ask_button = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="rag-ask")
                with gr.Row():
                    clear_button = gr.Button("New conversation", size="sm", variant="secondary", elem_id="rag-clear")
                with gr.Accordion("Settings", open=False, elem_id="rag-settings"):
                    with gr.Row():
                        generator_box = gr.Dropdown(choices, value=default_generator, label="Generator",
                                                    info=GENERATOR_INFO, elem_id="rag-generator")
                        model_box = gr.Textbox(value=model or "", label="Model", elem_id="rag-model",
                                               placeholder="default of the generator",
                                               info="Name or path; empty = the generator's default")
                    with gr.Row():
                        temperature_box = gr.Slider(0.0, 2.0, value=temperature, step=0.05, label="Temperature",
                                                    info="0 = always the most likely word", elem_id="rag-temperature")
                        top_p_box = gr.Slider(0.05, 1.0, value=top_p, step=0.05, label="Top-p",
                                              info="Sample from the smallest set of words with this probability",
                                              elem_id="rag-top-p")
                    with gr.Row():
                        max_tokens_box = gr.Slider(16, 4096, value=max_tokens, step=1, label="Max new tokens",
                                                   elem_id="rag-max-tokens")
                        k_box = gr.Slider(1, 20, value=k, step=1, label="Passages retrieved (k)", elem_id="rag-k")
            with gr.Column(scale=2, min_width=340):
                sources_panel = gr.HTML(render_sources(None), elem_id="rag-sources", label="Sources")
                status_panel = gr.HTML(status_html(), elem_id="rag-status", label="Index status")
                with gr.Row():
                    refresh_button = gr.Button("Refresh status", size="sm", variant="secondary",
                                               elem_id="rag-refresh")
                    sync_button = gr.Button(f"Sync {docs_path.name}/" if docs_path else "Sync folder", size="sm",
                                            variant="secondary", visible=docs_path is not None, elem_id="rag-sync")
                files_box = gr.File(label="Add documents", file_count="multiple", elem_id="rag-upload", height=120)
                gr.HTML(f'<div class="rag-muted rag-formats">{_esc(formats)} · up to {_esc(human_size(max_bytes))} '
                        f'per file · indexed on arrival</div>')
                upload_report = gr.HTML("", elem_id="rag-upload-report", label="Upload report")
        answer_json = gr.JSON(visible=False, label="Answer")

        settings_inputs = [generator_box, model_box, temperature_box, top_p_box, max_tokens_box, k_box]
        gr.on(
            triggers=[ask_button.click, question.submit], fn=respond, inputs=[question, turns, *settings_inputs],
            outputs=[chatbot, turns, sources_panel, question, answer_json], api_name="chat",
            concurrency_limit=concurrency_limit, concurrency_id="chat", show_progress="minimal",
        )
        clear_button.click(clear, outputs=[chatbot, turns, sources_panel, question, answer_json],
                           api_visibility="private")
        chatbot.clear(clear, outputs=[chatbot, turns, sources_panel, question, answer_json], api_visibility="private")
        chatbot.select(show_sources, inputs=[turns], outputs=[sources_panel], api_visibility="private")
        chatbot.like(vote, inputs=[turns], outputs=None, api_visibility="private")
        files_box.upload(upload, inputs=[files_box], outputs=[upload_report, status_panel, files_box],
                         api_name="upload", concurrency_limit=1, concurrency_id="ingest")
        refresh_button.click(status_html, outputs=[status_panel], api_visibility="private")
        sync_button.click(sync_folder, outputs=[upload_report, status_panel], api_visibility="private",
                          concurrency_limit=1, concurrency_id="ingest")
        app.load(status_html, outputs=[status_panel], api_visibility="private")

    app.rag_settings = {"index": index_path, "upload_dir": upload_path, "feedback_path": feedback_file,
                        "docs_dir": docs_path, "max_upload_bytes": max_bytes, "generator": default_generator}
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **kwargs):
    """Serve ``app`` on ``host:port`` (local only unless ``share``); returns gradio's (app, local_url, share_url)."""
    kwargs.setdefault("theme", getattr(app, "rag_theme", None))
    kwargs.setdefault("css", getattr(app, "rag_css", None))
    return app.launch(server_name=host, server_port=port, share=bool(share), **kwargs)
