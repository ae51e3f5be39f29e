"""The Gradio chat page: wiring only. What the page shows is built in :mod:`rag.ui.render`
(plain functions, tested without a browser); colours and the CSP in :mod:`rag.ui.style`.

    from rag.ui import create_app, launch
    app = create_app(index=".rag/index")
    launch(app, host="127.0.0.1", port=7860)
    # or inside another FastAPI app (rag serve): rag.ui.app.mount(server, app, "/ui")

Everything a user sees is built from a per-session list of *turns* (``gr.State``), one
per question: ``{"question", "answer", "refused", "error", "sources", "citations", ...}``.
Turn ``t`` is shown as chat messages ``2t`` (question) and ``2t + 1`` (answer), which is
how votes and clicks on a message find their turn. The chat is also an API endpoint,
``/chat`` (gradio_client: ``Client(url).predict(question, api_name="/chat")``), and so
are uploads, ``/upload``.

One :class:`rag.qa.QA` answers every question of every session (the index is reopened
only after an ingest, models load once). A question runs through stages the page shows:
waiting in the queue (gradio's position), loading the model (first use), searching,
writing; Stop ends the session's running answer and closes the generator's stream.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import gradio as gr

from rag import config
from rag.errors import RagError
from rag.generators import generator_info, generator_names
from rag.language import detect_language
from rag.qa import QA
from rag.retrieval import MAX_QUESTION_CHARS
from rag.settings import GenerationSettings, RetrievalSettings
from rag.text import sha256

from . import render
from .feedback import FeedbackError, append_feedback, default_feedback_path, feedback_record, vote_name
from .render import (error_hint, error_title, esc, index_status, render_messages, render_sources, render_status,
                     render_upload_report, too_long_message)
from .strings import LANGUAGES
from .style import CSP, CSS, LOGO_SVG, make_theme
from .uploads import human_size, ingest_uploads, max_upload_bytes, supported_suffixes

log = logging.getLogger(__name__)

TITLE = "Ask your documents"
SUBTITLE = ("Answers grounded in your PDFs, text and markdown files, in the language you ask in, "
            "citing their sources as [n].")
STREAM_INTERVAL_S = 0.04  # at most ~25 chat updates a second while tokens stream in
POLL_S = 0.1  # how often a waiting stage checks for Stop and refreshes its clock
LOADING_NOTICE_S = 0.4  # a generator that takes longer than this to load gets a "Loading the model" notice
DOCUMENT_ROUTE = "rag-doc"  # PDFs of the index are served under <page>/rag-doc/<token>/<name>

# Labels of the controls (their ranges, defaults and help come from the settings fields).
LABELS = {"temperature": "Temperature", "top_p": "Top-p", "max_tokens": "Max new tokens",
          "k": "Passages retrieved (k)"}
# The settings fields the page has a control for, in order: every non-advanced field of the
# two settings classes. ``respond`` takes them by these names (gradio_client calls use them).
KNOBS: list[tuple[type, Any]] = [(cls, f) for cls in (GenerationSettings, RetrievalSettings)
                                 for f in fields(cls) if not f.metadata.get("advanced")]
KNOB_NAMES = [f.name for _, f in KNOBS]
assert KNOB_NAMES == ["temperature", "top_p", "max_tokens", "k"], (
    f"new UI settings {KNOB_NAMES}: add them to respond()'s parameters")


# ---------------------------------------------------------------- security: CSP and document serving


class SecurityHeaders:
    """ASGI middleware: the page's Content-Security-Policy (see rag.ui.style.CSP) and no referrer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", CSP.encode()))
                headers.append((b"referrer-policy", b"no-referrer"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = dict(message, headers=headers)
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def document_token(path: str) -> str:
    """The public name of an indexed file: no path ever appears in a URL."""
    return sha256(str(path))[:32]


def find_document(index: Path, token: str) -> Path | None:
    """The indexed PDF whose token is ``token``, if it is still the file that was ingested:
    listed in the manifest, a regular file (not a link), same bytes (sha256) as indexed."""
    from rag.store import read_manifest

    try:
        files = read_manifest(index).get("files", {})
    except (RagError, AttributeError):
        return None
    for key, meta in files.items():
        if document_token(key) != token:
            continue
        path = Path(key)
        if path.suffix.lower() != ".pdf" or path.is_symlink() or not path.is_file():
            return None
        if meta.get("hash") and sha256(path.read_bytes()) != meta["hash"]:
            return None  # changed since it was indexed: the page numbers may no longer match
        return path
    return None


def document_routes(index: Path) -> list:
    """Starlette routes serving the index's PDFs (same login as the page)."""
    from starlette.responses import FileResponse, PlainTextResponse
    from starlette.routing import Route

    async def serve(request):
        app = request.app
        if getattr(app, "auth", None) is not None or getattr(app, "auth_dependency", None) is not None:
            if getattr(app, "auth_dependency", None) is not None:
                user = app.auth_dependency(request)
                if hasattr(user, "__await__"):
                    user = await user
            else:
                cookie_id = getattr(app, "cookie_id", "")
                token = (request.cookies.get(f"access-token-{cookie_id}")
                         or request.cookies.get(f"access-token-unsecure-{cookie_id}"))
                user = app.tokens.get(token)
            if user is None:
                return PlainTextResponse("log in first", status_code=401)
        path = find_document(index, request.path_params["token"])
        if path is None:
            return PlainTextResponse("no such document in the index (or it changed since it was indexed)",
                                     status_code=404)
        return FileResponse(path, media_type="application/pdf", content_disposition_type="inline",
                            filename=path.name, headers={"Cache-Control": "no-store"})

    return [Route(f"/{DOCUMENT_ROUTE}/{{token}}/{{name}}", serve, methods=["GET", "HEAD"])]


class RagBlocks(gr.Blocks):
    """gr.Blocks that serves itself the way the app needs unless told otherwise: theme and
    CSS (Gradio 6 takes them in ``launch()``), the upload size limit enforced by gradio
    before a file is stored, the CSP header and the PDF route. ``mount_kwargs`` gives the
    same for ``gr.mount_gradio_app``."""

    rag_theme: Any = None
    rag_css: str = ""
    rag_settings: dict = {}
    rag_routes: list = []

    def serve_kwargs(self, kwargs: dict) -> dict:
        kwargs = dict(kwargs)
        kwargs.setdefault("theme", self.rag_theme)
        kwargs.setdefault("css", self.rag_css)
        if self.rag_settings.get("max_upload_bytes"):
            kwargs.setdefault("max_file_size", self.rag_settings["max_upload_bytes"])
        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        from starlette.middleware import Middleware

        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(SecurityHeaders)]
        app_kwargs["routes"] = [*self.rag_routes, *app_kwargs.get("routes", [])]
        kwargs["app_kwargs"] = app_kwargs
        return kwargs

    def launch(self, *args, **kwargs):
        return super().launch(*args, **self.serve_kwargs(kwargs))


def mount(server, app: RagBlocks, path: str = "/ui", **kwargs):
    """Serve ``app`` inside the FastAPI ``server`` at ``path`` with the page's theme, CSP,
    upload limit and PDF route (``kwargs`` go to ``gr.mount_gradio_app``: auth, ...)."""
    return gr.mount_gradio_app(server, app, path, **app.serve_kwargs(kwargs))


# ---------------------------------------------------------------- controls from the settings


def _control(field, value):
    """A slider for a settings field: range, step and help from its metadata."""
    meta = field.metadata
    return gr.Slider(meta["minimum"], meta["maximum"], value=value, step=meta.get("step", 1),
                     label=LABELS.get(field.name, field.name.replace("_", " ").capitalize()),
                     info=meta.get("help"), elem_id=f"rag-{field.name.replace('_', '-')}")


def why_disabled(generator: str) -> str:
    """Why the sampling controls are off for ``generator`` ("" when they apply)."""
    try:
        info = generator_info(generator)
    except RagError:
        return ""
    if info.is_llm:
        return ""
    names = ", ".join(LABELS.get(n, n).lower() for _, f in KNOBS if f.metadata.get("llm_only") for n in [f.name])
    return (f"{names.capitalize()} have no effect with {generator}: it quotes your documents without a "
            f"language model. Pick a model-based generator to use them.")


def _generator_help(generator: str) -> str:
    try:
        return generator_info(generator).description
    except RagError:
        return ""


# ---------------------------------------------------------------- the app


def _history(turns: list[dict]) -> list[tuple[str, str]]:
    """(question, answer) pairs of the answered turns, for follow-up questions."""
    return [(t["question"], t["answer"]) for t in turns
            if not t.get("error") and not t.get("stopped") and not t.get("pending") and t.get("answer")]


def _ui_lang(question: str) -> str:
    lang = detect_language(question)
    return lang if lang in LANGUAGES else "en"


def _in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, dict]:
    box: dict[str, Any] = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the handler, which shows it
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _close(stream) -> None:
    """End a stream the page no longer reads: its generator (and a local model's work) stops."""
    for target in (stream, getattr(stream, "_pieces", None)):
        close = getattr(target, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing is best effort; the log keeps why
                log.debug("closing the answer stream failed", exc_info=True)


def create_app(
    index: str | os.PathLike | None = None,
    docs_dir: str | os.PathLike | None = None,
    upload_dir: str | os.PathLike | None = None,
    feedback_path: str | os.PathLike | None = None,
    ask_fn: Callable[..., Any] | None = None,
    *,
    qa: QA | None = None,
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
    """Build the chat page (no server is started: see :func:`launch` and :func:`mount`).

    ``index``: the index folder (default $RAG_INDEX_DIR or ./.rag/index). ``docs_dir``: a folder
    the page can re-scan ("Sync folder"). ``upload_dir``: where uploads are saved (default
    ``<index>/../uploads``). ``feedback_path``: the votes file (default ``<index>/feedback.jsonl``).
    ``qa``: the :class:`rag.qa.QA` that answers (default: one built from the other arguments).
    ``generator``/``model``/``retrieval``/``generation``: the controls' initial values
    (``generator`` defaults to :func:`rag.config.generator_name`). ``ask_fn``: instead of
    ``qa.ask``, called as ``ask_fn(question, history=[(q, a), ...], stream=True, generator=...,
    model=..., retrieval=RetrievalSettings, generation=GenerationSettings)``.
    ``concurrency_limit``: questions answered at the same time (others wait in the queue, and see
    their position).
    """
    index_path = config.index_dir(index if index is not None else (qa.index_path if qa else None))
    index_path = index_path.expanduser().absolute()
    default_generator = config.generator_name(generator)
    if qa is None:
        qa = QA(index_path, default_generator, model, retrieval=retrieval, generation=generation,
                embed_model=embed_model)
    retrieval = retrieval or qa.retrieval
    generation = generation or qa.generation
    answer_fn = ask_fn or qa.ask
    upload_path = Path(upload_dir).expanduser().absolute() if upload_dir else index_path.parent / "uploads"
    feedback_file = Path(feedback_path).expanduser().absolute() if feedback_path else default_feedback_path(index_path)
    docs_path = Path(docs_dir).expanduser().absolute() if docs_dir else None
    max_bytes = max_upload_bytes(max_upload_mb)
    choices = generator_names() + ([default_generator] if default_generator not in generator_names() else [])
    stops: dict[str, threading.Event] = {}  # session -> its running answer's Stop signal
    stops_lock = threading.Lock()

    def status_html() -> str:
        return render_status(index_path, docs_path, upload_path)

    def document_url(source: dict) -> str | None:
        path = source.get("path") or ""
        if not path.lower().endswith(".pdf"):
            return None
        return f"{DOCUMENT_ROUTE}/{document_token(path)}/{quote(Path(path).name)}"

    def sources_html(turn, number=None) -> str:
        return render_sources(turn, number, document_url)

    def _stop_event(request) -> threading.Event:
        event = threading.Event()
        key = getattr(request, "session_hash", None)
        if key:
            with stops_lock:
                stops[key] = event
        return event

    # -------------------------------------------------------------- asking

    def accept(question, turns, request: gr.Request = None):
        """Runs at once, outside the queue: shows the question (or why it cannot be sent)."""
        text = (question or "").strip()
        turns = [dict(t) for t in (turns or [])]
        if not text:
            return gr.skip(), gr.skip(), gr.skip(), "", gr.skip()
        if len(text) > MAX_QUESTION_CHARS:  # keep the text in the box, say by how much it is over
            note = f'<div class="rag-box-note" role="alert">{esc(too_long_message(len(text), MAX_QUESTION_CHARS))}</div>'
            return gr.skip(), gr.skip(), gr.skip(), note, gr.skip()
        if turns and turns[-1].get("streaming"):  # one question at a time per conversation; the text stays
            note = ('<div class="rag-box-note" role="alert">The previous answer is still being written: wait for it '
                    'or press Stop, then send this question.</div>')
            return gr.skip(), gr.skip(), gr.skip(), note, gr.skip()
        _stop_event(request)  # Stop works from now on, also while the question waits in the queue
        turns.append({"question": text, "answer": "", "refused": False, "error": "", "sources": [],
                      "streaming": True, "pending": True, "stage": "waiting", "ui_lang": _ui_lang(text),
                      "settings": {}})
        return render_messages(turns), turns, "", "", gr.update(interactive=True)

    def respond(question, turns, generator, model, temperature, top_p, max_tokens, k,
                request: gr.Request = None):
        """Answer with streaming; yields (chat, turns, sources, question box, note, answer JSON)."""
        question = (question or "").strip()
        turns = [dict(t) for t in (turns or [])]
        stop = None
        if turns and turns[-1].get("pending"):  # accepted by the page: answer that one
            turn = turns[-1]
            question = turn["question"]
            with stops_lock:
                stop = stops.get(getattr(request, "session_hash", None))
        else:
            if not question:
                latest = turns[-1] if turns else None
                yield render_messages(turns), turns, sources_html(latest, len(turns) or None), gr.skip(), "", gr.skip()
                return
            if len(question) > MAX_QUESTION_CHARS:
                note = f'<div class="rag-box-note" role="alert">{esc(too_long_message(len(question), MAX_QUESTION_CHARS))}</div>'
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), note, {"question": question, "error": note}
                return
            turn = {"question": question, "ui_lang": _ui_lang(question)}
            turns.append(turn)
        turn.update(answer="", refused=False, error="", sources=[], streaming=True, pending=False,
                    stage="searching", settings={}, note="", confidence="high")
        number = len(turns)
        history = _history(turns[:-1])
        stop = stop or _stop_event(request)
        started = time.monotonic()
        stream = None

        def frame(sources=False, box=gr.skip()):
            turn["elapsed"] = time.monotonic() - started
            return (render_messages(turns), turns, sources_html(turn, number) if sources else gr.skip(), box, "",
                    gr.skip())

        def wait(thread, stage, model_name=""):
            """Show ``stage`` with a clock while ``thread`` works; False when Stop came first."""
            shown = 0.0
            while thread.is_alive():
                thread.join(POLL_S)
                if stop.is_set():
                    return False
                now = time.monotonic() - started
                if stage and now >= LOADING_NOTICE_S and turn.get("stage") != stage:
                    turn.update(stage=stage, stage_model=model_name)
                    shown = now
                    yield frame()
                elif now - shown >= 1.0:
                    shown = now
                    yield frame()
            return True

        try:
            name = (generator or default_generator)
            model_name = (str(model).strip() or None) if model else None
            generator_info(name)  # an unknown name: one clear error, before anything loads
            generation_settings = generation.replace(temperature=float(temperature), top_p=float(top_p),
                                                     max_tokens=int(max_tokens))
            retrieval_settings = retrieval.replace(k=int(k))
            turn["settings"] = {"generator": name, "model": model_name, **generation_settings.to_dict(),
                                "k": retrieval_settings.k}
            turn["settings"]["stop"] = list(turn["settings"]["stop"])
            yield frame(sources=True, box="")  # the question box empties; the clock starts
            if stop.is_set():  # stopped while it waited in the queue
                raise _Stopped

            # 1. the model (loaded once per process; a notice when it takes a while)
            loader, box = _in_background(lambda: qa.generator_for(name, model_name))
            if not (yield from wait(loader, "loading_model", model_name or name)):
                raise _Stopped
            if "error" in box:
                raise box["error"]
            # 2. retrieval (and the follow-up rewrite)
            turn["stage"] = "searching"
            searcher, box = _in_background(lambda: answer_fn(
                question, history=history, stream=True, generator=name, model=model_name,
                retrieval=retrieval_settings, generation=generation_settings))
            if not (yield from wait(searcher, "")):
                raise _Stopped
            if "error" in box:
                raise box["error"]
            result = stream = box["value"]
            turn["sources"] = [s.to_dict() for s in getattr(result, "sources", []) or []]
            turn["refused"] = bool(getattr(result, "refused", False))
            # the low-confidence note is known before generation: shown above the streaming text
            early = getattr(result, "answer", result)
            turn["note"], turn["confidence"] = getattr(early, "note", ""), getattr(early, "confidence", "high")
            turn["stage"] = "generating"
            yield frame(sources=True)
            # 3. generation: pieces come from a reader thread, so Stop is seen between them
            # even while the model computes, and the stream is closed by the thread reading it.
            pieces: queue.Queue = queue.Queue()
            final = result if not hasattr(result, "__iter__") else None

            def read():
                try:
                    for piece in ([result.text] if final is not None else result):
                        if stop.is_set():
                            break
                        pieces.put(("piece", piece))
                except BaseException as exc:
                    pieces.put(("error", exc))
                finally:
                    if stop.is_set() and final is None:
                        _close(result)
                    pieces.put(("end", None))

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            last = time.monotonic()
            while True:
                try:
                    kind, value = pieces.get(timeout=POLL_S)
                except queue.Empty:
                    if stop.is_set():
                        raise _Stopped
                    if time.monotonic() - last >= 1.0 and not turn["answer"]:
                        last = time.monotonic()
                        yield frame()
                    continue
                if kind == "end":
                    break
                if kind == "error":
                    raise value
                turn["answer"] += value
                if stop.is_set():
                    raise _Stopped
                if time.monotonic() - last >= STREAM_INTERVAL_S:
                    last = time.monotonic()
                    yield frame()
            if stop.is_set():
                raise _Stopped
            answer = final if final is not None else result.answer
            turn.update(answer=answer.text, refused=bool(answer.refused), standalone_question=answer.standalone_question,
                        lang=answer.lang, generator=answer.generator, model=answer.model, score=answer.score,
                        confidence=answer.confidence, note=answer.note,
                        timings={key: round(value, 4) for key, value in answer.timings.items()},
                        sources=[] if answer.refused else [s.to_dict() for s in answer.sources],
                        citations=[c.to_dict() for c in getattr(answer, "citations", None) or []])
        except _Stopped:
            turn["stopped"] = True
            if stream is not None and not hasattr(stream, "answer"):
                _close(stream)
        except RagError as exc:
            turn.update(error=str(exc), error_title=error_title(exc), error_hint=error_hint(exc), sources=[])
        except Exception as exc:  # never a stack trace in the page; the log has it
            log.exception("answering %r failed", question)
            turn.update(error=f"{type(exc).__name__}: {exc}", error_title=error_title(exc), sources=[])
        turn["streaming"] = False
        turn.pop("stage", None)
        with stops_lock:  # the session's entry goes with its answer
            key = getattr(request, "session_hash", None)
            if stops.get(key) is stop:
                del stops[key]
        yield (render_messages(turns), turns, sources_html(turn, number), gr.skip(), "", _public(turn))

    def stop_answer(request: gr.Request = None):
        key = getattr(request, "session_hash", None)
        with stops_lock:
            event = stops.get(key)
        if event is not None:
            event.set()

    def clear():
        return [], [], sources_html(None), "", "", None

    def show_sources(turns, event: gr.SelectData):
        index_ = event.index if isinstance(event.index, int) else event.index[0]
        number = index_ // 2
        if not turns or number >= len(turns):
            return gr.skip()
        return sources_html(turns[number], number + 1)

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
        try:
            append_feedback(feedback_file, record)
        except FeedbackError as exc:
            gr.Warning(str(exc))
            return
        if record["vote"] != "cleared":
            gr.Info("Thanks — your feedback was saved.")

    def set_generator(name):
        """Sampling controls only where they do something; the reason where they do not."""
        reason = why_disabled(name)
        llm = not reason
        updates = [gr.update(interactive=llm) if f.metadata.get("llm_only") else gr.skip() for _, f in KNOBS]
        return (gr.update(info=_generator_help(name)), gr.update(value=_why_html(reason)), *updates)

    # -------------------------------------------------------------- documents

    def _forget_temporary(files) -> None:
        """Delete gradio's temporary copies of uploads (they were copied to the upload folder or
        rejected); gradio would otherwise keep them until the server stops."""
        cache = Path(gr.utils.get_upload_folder()).resolve()
        for item in files or []:
            path = Path(item if isinstance(item, (str, os.PathLike)) else getattr(item, "name", item))
            try:
                resolved = path.resolve()
                resolved.relative_to(cache)
            except (ValueError, OSError):
                continue
            resolved.unlink(missing_ok=True)
            try:
                resolved.parent.rmdir()  # gradio's per-upload folder, when now empty
            except OSError:
                pass

    def upload(files, progress=gr.Progress()):
        if not files:
            return gr.skip(), status_html(), None
        try:
            result = ingest_uploads(files, index_path, upload_path, max_bytes, embed_model=embed_model,
                                    progress=lambda fraction, desc: progress(fraction, desc=desc))
        finally:
            _forget_temporary(files)
        status = index_status(index_path)
        return (render_upload_report(result, status.get("documents") if status["state"] == "ok" else None),
                status_html(), None)

    def sync_folder(progress=gr.Progress()):
        from rag.ingest.pipeline import ingest

        if docs_path is None:
            return gr.skip(), status_html()
        progress(0.0, desc=f"Scanning {docs_path.name}")
        try:
            summary = ingest([str(docs_path)], index_path, embed_model=embed_model, progress=False,
                             on_file=lambda report: progress(None, desc=f"Read {Path(report.path).name}"))
        except RagError as exc:
            return f'<div class="rag-notice rag-error">{esc(exc)}</div>', status_html()
        bad = [r for r in summary.reports if r.status in ("failed", "skipped")]
        items = "".join(f'<li class="bad"><span class="mark">✗</span>{esc(Path(r.path).name)}: {esc(r.reason)}</li>'
                        for r in bad)
        line = (f"added {summary.added}, changed {summary.changed}, unchanged {summary.unchanged}, "
                f"removed {summary.removed}, failed {summary.failed}")
        return (f'<div class="rag-card rag-upload-report"><div class="rag-card-title"><h2>Folder sync</h2>'
                f'<span class="sub">{esc(line)}</span></div><ul>{items}</ul></div>'), status_html()

    # -------------------------------------------------------------- layout

    formats = ", ".join(s.lstrip(".") for s in supported_suffixes())
    initial_reason = why_disabled(default_generator)
    values = {**generation.to_dict(), **retrieval.to_dict()}
    with RagBlocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        app.rag_theme = make_theme()
        app.rag_css = CSS
        turns = gr.State([])
        gr.HTML(f'<header id="rag-header"><div class="logo">{LOGO_SVG}</div><div><h1>{esc(title)}</h1>'
                f'<p>{esc(subtitle)}</p></div></header>')
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=440):
                chatbot = gr.Chatbot(
                    elem_id="rag-chatbot", label="Conversation", show_label=False, height=580,
                    placeholder=('<div class="rag-placeholder"><b>Ask about your documents</b><br>'
                                 'Answers quote and cite the passages they come from.<br>'
                                 'Upload files on the right if the index is empty.</div>'),
                    feedback_options=("Like", "Dislike"), buttons=["copy"], layout="bubble",
                    latex_delimiters=[], sanitize_html=True,
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        elem_id="rag-question", label="Question", show_label=False, scale=8, lines=1, max_lines=6,
                        autofocus=True, container=False,
                        placeholder=(f"Ask a question about your documents (up to {MAX_QUESTION_CHARS:,} characters; "
                                     f"Enter sends, Shift+Enter for a new line)"),
                    )
                    ask_button = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="rag-ask")
                    stop_button = gr.Button("Stop", variant="stop", scale=1, min_width=90, elem_id="rag-stop",
                                            interactive=False)  # on while this page has a question running
                note = gr.HTML("", elem_id="rag-box-note")
                with gr.Row():
                    clear_button = gr.Button("New conversation", size="sm", variant="secondary", elem_id="rag-clear")
                with gr.Accordion("Settings", open=False, elem_id="rag-settings"):
                    with gr.Row():
                        generator_box = gr.Dropdown(choices, value=default_generator, label="Generator",
                                                    info=_generator_help(default_generator), elem_id="rag-generator")
                        model_box = gr.Textbox(value=model or "", label="Model", elem_id="rag-model",
                                               placeholder="default of the generator",
                                               info="Name or path; empty = the generator's default")
                    why = gr.HTML(_why_html(initial_reason), elem_id="rag-why")
                    controls = []
                    for start in range(0, len(KNOBS), 2):  # two sliders a row: room for their ranges
                        with gr.Row():
                            for _, field in KNOBS[start:start + 2]:
                                control = _control(field, values[field.name])
                                if field.metadata.get("llm_only") and initial_reason:
                                    control.interactive = False
                                controls.append(control)
            with gr.Column(scale=2, min_width=340):
                sources_panel = gr.HTML(sources_html(None), elem_id="rag-sources", label="Sources")
                status_panel = gr.HTML(status_html(), elem_id="rag-status", label="Index status")
                with gr.Row():
                    refresh_button = gr.Button("Refresh status", size="sm", variant="secondary",
                                               elem_id="rag-refresh")
                    sync_button = gr.Button(f"Sync {docs_path.name}/" if docs_path else "Sync folder", size="sm",
                                            variant="secondary", visible=docs_path is not None, elem_id="rag-sync")
                files_box = gr.File(label="Add documents", file_count="multiple", elem_id="rag-upload", height=120)
                gr.HTML(f'<div class="rag-muted rag-formats">{esc(formats)} · up to {esc(human_size(max_bytes))} '
                        f'per file · indexed on arrival</div>')
                upload_report = gr.HTML("", elem_id="rag-upload-report", label="Upload report")
        answer_json = gr.JSON(visible=False, label="Answer")
        api_button = gr.Button(visible=False)

        chat_outputs = [chatbot, turns, sources_panel, question, note, answer_json]
        chat_inputs = [question, turns, generator_box, model_box, *controls]
        # The page: the question shows at once (outside the queue), then waits for a slot with
        # its queue position shown, then streams. Scripts: the same handler as /chat.
        accepted = gr.on(triggers=[ask_button.click, question.submit], fn=accept, inputs=[question, turns],
                         outputs=[chatbot, turns, question, note, stop_button], queue=False,
                         api_visibility="private")
        answering = accepted.then(respond, inputs=chat_inputs, outputs=chat_outputs, api_visibility="private",
                                  concurrency_limit=concurrency_limit, concurrency_id="chat", show_progress="full",
                                  show_progress_on=[chatbot])  # the queue position, on the conversation only
        api_button.click(respond, inputs=chat_inputs, outputs=chat_outputs, api_name="chat",
                         concurrency_limit=concurrency_limit, concurrency_id="chat")
        stop_button.click(stop_answer, inputs=None, outputs=None, queue=False, api_visibility="private")
        generator_box.change(set_generator, inputs=[generator_box], outputs=[generator_box, why, *controls],
                             queue=False, api_visibility="private")
        clear_button.click(stop_answer, queue=False, api_visibility="private").then(
            clear, outputs=chat_outputs, api_visibility="private")
        chatbot.clear(clear, outputs=chat_outputs, api_visibility="private")
        chatbot.select(show_sources, inputs=[turns], outputs=[sources_panel], api_visibility="private")
        chatbot.like(vote, inputs=[turns], outputs=None, api_visibility="private")
        files_box.upload(upload, inputs=[files_box], outputs=[upload_report, status_panel, files_box],
                         api_name="upload", concurrency_limit=1, concurrency_id="ingest")
        refresh_button.click(status_html, outputs=[status_panel], api_visibility="private")
        sync_button.click(sync_folder, outputs=[upload_report, status_panel], api_visibility="private",
                          concurrency_limit=1, concurrency_id="ingest")
        app.load(status_html, outputs=[status_panel], api_visibility="private")
        answering.then(lambda: gr.update(interactive=False), outputs=[stop_button], queue=False,
                       api_visibility="private")

    app.rag_settings = {"index": index_path, "upload_dir": upload_path, "feedback_path": feedback_file,
                        "docs_dir": docs_path, "max_upload_bytes": max_bytes, "generator": default_generator}
    app.rag_routes = document_routes(index_path)
    app.rag_qa = qa
    return app


class _Stopped(Exception):
    """The user pressed Stop."""


def _why_html(reason: str) -> str:
    return f'<p class="rag-why" role="note">{esc(reason)}</p>' if reason else ""


def _public(turn: dict) -> dict:
    """The /chat result for scripts: the turn without internals. No "path" keys: gradio would
    take {"path": ...} for a file to serve."""
    public = {key: turn.get(key) for key in ("question", "answer", "refused", "error", "settings", "stopped",
                                             "standalone_question", "lang", "generator", "model", "score",
                                             "confidence", "note", "citations")}
    public["sources"] = [{"n": n, "file": s["source"], "page": s.get("page"), "score": s.get("score"),
                          "cosine": s.get("dense_score"), "text": s.get("text", "")}
                         for n, s in enumerate(turn.get("sources") or [], start=1)]
    public["cited"] = sorted(render.cited_sources(turn))
    return public


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **kwargs):
    """Serve ``app`` on ``host:port`` (local only unless ``share``); returns gradio's (app, local_url, share_url)."""
    return app.launch(server_name=host, server_port=port, share=bool(share), **kwargs)
