"""The chat UI without a browser: the app builds, uploads are sanitized and size-limited,
votes land in a JSONL file, and the chat handler streams real answers from a small real
index (generator "extractive": no language model) and shows errors as messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import rag  # noqa: E402
from rag.settings import GenerationSettings, RetrievalSettings  # noqa: E402
from helpers_pdf import LIBRARY_ZH, LOCK_PAGES, make_pdf, make_truncated_pdf  # noqa: E402
from rag.ui.feedback import append_feedback, default_feedback_path, feedback_record, read_feedback, vote_name  # noqa: E402
from rag.ui.uploads import (  # noqa: E402
    destination_for,
    ingest_uploads,
    max_upload_bytes,
    sanitize_filename,
    save_uploads,
)



class RecordingAsk:
    """An ask_fn that records what reaches QA.ask, then asks a real QA over the same index."""

    def __init__(self, index):
        from rag.qa import QA

        self.qa = QA(index)
        self.calls: list[dict] = []

    def __call__(self, question, **kwargs):
        retrieval, generation = kwargs["retrieval"], kwargs["generation"]
        self.calls.append({"question": question, **kwargs, "k": retrieval.k, "temperature": generation.temperature,
                           "top_p": generation.top_p, "max_tokens": generation.max_tokens})
        return self.qa.ask(question, **kwargs)


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, embedder) -> Path:
    """Two real documents (an English PDF, a Chinese text) ingested into a fresh index."""
    root = tmp_path_factory.mktemp("ui_index")
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "orion_lock_guide.pdf", LOCK_PAGES)
    (docs / "library_zh.txt").write_text(LIBRARY_ZH, encoding="utf-8")
    summary = rag.ingest([docs], root / "index", progress=False)
    assert summary.ok and summary.files == 2
    return root / "index"


def _endpoint(app, name: str):
    """The Python function behind an event: by api_name, else by function name."""
    for block_fn in app.fns.values():
        if block_fn.api_name == name or getattr(block_fn.fn, "__name__", "") == name:
            return block_fn.fn
    raise AssertionError(f"no event function {name}")


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, character references decoded."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _run_chat(app, question, turns=None, generator="extractive", model="", temperature=0.2, top_p=0.9,
              max_tokens=512, k=5):
    """Drive the chat handler like gradio does: every streamed update, then the last one."""
    updates = list(_endpoint(app, "chat")(question, turns or [], generator, model, temperature, top_p, max_tokens, k))
    chat, new_turns, sources_html, box, note, answer = updates[-1]
    return updates, chat, new_turns, sources_html, answer


# ------------------------------------------------------------------ the app


def test_create_app_builds_without_a_server(tmp_path):
    import gradio as gr

    from rag.ui import create_app

    app = create_app(index=tmp_path / "index", upload_dir=tmp_path / "up", feedback_path=tmp_path / "fb.jsonl",
                     generator="extractive")
    assert isinstance(app, gr.Blocks)
    assert not app.is_running
    api_names = {fn.api_name for fn in app.fns.values()}
    assert {"chat", "upload"} <= api_names
    assert app.rag_settings["upload_dir"] == tmp_path / "up"
    # Offline: system fonts only, nothing from a font CDN.
    theme = app.rag_theme
    assert "system-ui" in theme.font
    assert not [s for s in theme._stylesheets if "googleapis" in str(s)]
    assert all(type(f).__name__ != "GoogleFont" for f in theme._font + theme._font_mono)


def test_defaults_derive_from_the_index(tmp_path, monkeypatch):
    from rag.ui import create_app

    monkeypatch.delenv("RAG_GENERATOR", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    app = create_app(index=tmp_path / "idx")
    settings = app.rag_settings
    assert settings["upload_dir"] == (tmp_path / "uploads").absolute()
    assert settings["feedback_path"] == (tmp_path / "idx" / "feedback.jsonl").absolute()
    assert settings["generator"] == "openai"  # rag.config.generator_name()
    assert settings["max_upload_bytes"] == 50 * 1024 * 1024


def test_status_without_an_index_says_so(tmp_path):
    from rag.ui.app import render_status

    html = render_status(tmp_path / "nothing-here")
    assert "No index yet — upload documents" in _text(html)


def test_status_of_a_real_index(small_index):
    from rag.ui.app import index_status, render_status

    status = index_status(small_index)
    assert status["state"] == "ok"
    assert status["documents"] == 2 and status["pages"] == 2 and status["chunks"] >= 2
    assert status["embed_model"] == "use-multilingual"
    html = render_status(small_index)
    assert "use-multilingual" in _text(html) and "orion_lock_guide.pdf" in _text(html) and "Last ingest" in _text(html)


# ------------------------------------------------------------------ uploads


@pytest.mark.parametrize("raw, safe", [
    ("../../etc/passwd", "passwd"),
    ("/etc/passwd", "passwd"),
    ("..\\..\\Windows\\system.ini", "system.ini"),
    ("C:\\Users\\me\\Report Final.PDF", "Report_Final.pdf"),
    (".bashrc.md", "bashrc.md"),
    ("..", "upload"),
    ("", "upload"),
    ("notes..txt", "notes.txt"),
    ("$(rm -rf ~).txt", "rm_-rf.txt"),
    ("a\x00b.md", "ab.md"),
    ("会议 纪要.txt", "会议_纪要.txt"),
])
def test_sanitize_filename(raw, safe):
    assert sanitize_filename(raw) == safe


def test_sanitize_filename_limits_the_length():
    name = sanitize_filename("x" * 500 + ".pdf")
    assert name.endswith(".pdf") and len(name) <= 120


def test_collisions_get_a_suffix_and_identical_files_are_reused(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "notes.txt").write_text("first", encoding="utf-8")
    other = tmp_path / "notes.txt"
    other.write_text("second", encoding="utf-8")
    assert destination_for(folder, "notes.txt", other) == (folder / "notes-1.txt", False)
    same = tmp_path / "same" / "notes.txt"
    same.parent.mkdir()
    same.write_text("first", encoding="utf-8")
    assert destination_for(folder, "../../notes.txt", same) == (folder / "notes.txt", True)


def test_save_uploads_keeps_files_inside_the_folder(tmp_path):
    evil_dir = tmp_path / "a" / "b"
    evil_dir.mkdir(parents=True)
    upload = evil_dir / "passwd.txt"
    upload.write_text("root:x:0:0", encoding="utf-8")
    folder = tmp_path / "uploads"
    # The name a browser could send: the path arrives as a file whose name is the last part.
    outcomes = save_uploads([str(evil_dir / ".." / ".." / "a" / "b" / "passwd.txt")], folder)
    assert [o.status for o in outcomes] == ["saved"]
    assert outcomes[0].saved_as == folder / "passwd.txt"
    assert outcomes[0].saved_as.read_text(encoding="utf-8") == "root:x:0:0"
    # Saving a different file under the same name never overwrites.
    upload.write_text("changed", encoding="utf-8")
    again = save_uploads([upload], folder)
    assert again[0].saved_as == folder / "passwd-1.txt"
    assert (folder / "passwd.txt").read_text(encoding="utf-8") == "root:x:0:0"
    assert sorted(p.name for p in folder.iterdir()) == ["passwd-1.txt", "passwd.txt"]


def test_size_limit_and_formats(tmp_path, monkeypatch):
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 3000)
    small = tmp_path / "small.md"
    small.write_text("# Title\n\nSmall enough.", encoding="utf-8")
    binary = tmp_path / "tool.exe"
    binary.write_bytes(b"MZ\x00\x01")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    outcomes = save_uploads([big, small, binary, empty], tmp_path / "uploads", max_bytes=2048)
    by_name = {o.name: o for o in outcomes}
    assert by_name["big.txt"].status == "rejected" and "limit" in by_name["big.txt"].reason
    assert by_name["small.md"].status == "saved"
    assert by_name["tool.exe"].status == "rejected" and "unsupported format '.exe'" in by_name["tool.exe"].reason
    assert by_name["empty.txt"].status == "rejected" and "empty" in by_name["empty.txt"].reason
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["small.md"]
    monkeypatch.setenv("RAG_UI_MAX_UPLOAD_MB", "2")
    assert max_upload_bytes() == 2 * 1024 * 1024
    assert max_upload_bytes(0.5) == 512 * 1024


def test_ingest_uploads_reports_bad_files_and_keeps_the_good(tmp_path, small_index, index_copy):
    index = index_copy(small_index)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = incoming / "kettle.txt"
    good.write_text("The Kestrel kettle must be descaled every forty days with citric acid.", encoding="utf-8")
    broken = make_truncated_pdf(incoming / "broken.pdf")
    noise = incoming / "noise.pdf"
    noise.write_bytes(os.urandom(2048))
    seen = []
    result = ingest_uploads([good, broken, noise], index, tmp_path / "uploads",
                            progress=lambda fraction, desc: seen.append((fraction, desc)))
    assert result.ingested == ["kettle.txt"]
    failed = dict(result.failed)
    assert set(failed) == {"broken.pdf", "noise.pdf"} and all(failed.values())
    # Failed copies are removed again; the good one stays and is in the index.
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["kettle.txt"]
    from rag.store import read_manifest

    assert len(read_manifest(index)["files"]) == 3
    assert seen[0][0] == 0.0 and seen[-1] == (1.0, "Done")
    lines = result.lines()
    assert ("ok", "kettle.txt: added, 1 chunk") in lines
    assert any(kind == "bad" and text.startswith("broken.pdf: ") for kind, text in lines)
    # The same file again: already there, nothing duplicated.
    again = ingest_uploads([good], index, tmp_path / "uploads")
    assert again.lines() == [("same", "kettle.txt: already in the index")]


# ------------------------------------------------------------------ feedback


def test_feedback_writes_jsonl(tmp_path):
    turn = {"question": "How do I reset the combination?", "answer": "Hold the reset button [1]",
            "refused": False, "sources": [{"source": "guide.pdf", "page": 2, "score": 0.03, "dense_score": 0.4,
                                           "path": "/docs/guide.pdf", "chunk_id": "c1", "text": "..."}],
            "settings": {"generator": "extractive", "model": None, "temperature": 0.2, "top_p": 0.9,
                         "max_tokens": 512, "k": 5}}
    path = tmp_path / "sub" / "feedback.jsonl"
    append_feedback(path, feedback_record("up", turn, index="/idx"))
    append_feedback(path, feedback_record(vote_name(False), turn, history=[("q0", "a0")]))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["vote"] == "up" and second["vote"] == "down"
    assert first["question"] == "How do I reset the combination?"
    assert first["response"] == "Hold the reset button [1]"
    assert first["settings"]["temperature"] == 0.2
    assert first["response_sources"][0] == {"file": "guide.pdf", "page": 2, "score": 0.03, "cosine": 0.4,
                                   "path": "/docs/guide.pdf", "chunk_id": "c1"}
    assert first["timestamp"] and second["history"] == [["q0", "a0"]]
    assert read_feedback(path) == [first, second]
    assert [vote_name(v) for v in (True, False, "Like", "Dislike", "", None)] == \
        ["up", "down", "up", "down", "cleared", "cleared"]
    assert default_feedback_path(tmp_path / "index") == tmp_path / "index" / "feedback.jsonl"


def test_feedback_file_is_a_rag_eval_question_file(tmp_path):
    questions = pytest.importorskip("rag.evaluation.questions")
    path = tmp_path / "feedback.jsonl"
    turn = {"question": "How do I reset the combination?", "answer": "Hold the button [1]",
            "sources": [{"source": "guide.pdf", "page": 2, "score": 0.03}], "settings": {"k": 5}}
    append_feedback(path, feedback_record("up", turn))
    append_feedback(path, feedback_record("down", dict(turn, question="What is the default code?")))
    loaded = questions.load_questions(path, strict=True)
    assert [q.question for q in loaded.questions] == ["How do I reset the combination?", "What is the default code?"]
    # The rated answer is not taken for a reference answer or gold sources.
    assert loaded.questions[0].references == [] and loaded.questions[0].sources == []


def test_like_event_appends_a_vote(tmp_path, small_index):
    import gradio as gr

    from rag.ui import create_app

    feedback = tmp_path / "votes.jsonl"
    app = create_app(index=small_index, upload_dir=tmp_path / "up", feedback_path=feedback, generator="extractive")
    _, _, turns, _, _ = _run_chat(app, "How do I reset the combination?", temperature=0.35)
    vote = _endpoint(app, "vote")
    vote(turns, gr.LikeData(None, {"index": 1, "value": "...", "liked": False}))
    vote(turns, gr.LikeData(None, {"index": 0, "value": "question", "liked": True}))  # a question: ignored
    records = read_feedback(feedback)
    assert len(records) == 1
    assert records[0]["vote"] == "down"
    assert records[0]["question"] == "How do I reset the combination?"
    assert records[0]["settings"]["temperature"] == 0.35
    assert records[0]["response_sources"][0]["file"] == "orion_lock_guide.pdf"
    assert records[0]["response_sources"][0]["page"] == 2


# ------------------------------------------------------------------ chat handler with the real rag.ask


def test_chat_streams_a_cited_answer_and_passes_settings(tmp_path, small_index):
    from rag.ui import create_app

    recorder = RecordingAsk(small_index)
    app = create_app(index=small_index, upload_dir=tmp_path / "up", feedback_path=tmp_path / "fb.jsonl",
                     ask_fn=recorder, generator="extractive")
    updates, chat, turns, sources_html, answer = _run_chat(
        app, "How do I reset the combination?", temperature=0.7, top_p=0.55, max_tokens=300, k=4)
    assert len(updates) >= 3  # question shown, sources known, final answer
    call = recorder.calls[-1]
    assert (call["temperature"], call["top_p"], call["max_tokens"], call["k"]) == (0.7, 0.55, 300, 4)
    assert call["generator"] == "extractive" and call["model"] is None and call["stream"] is True
    assert isinstance(call["retrieval"], RetrievalSettings) and isinstance(call["generation"], GenerationSettings)
    assert call["history"] == []
    assert chat[-1]["role"] == "assistant" and "[1]" in _text(chat[-1]["content"])
    assert "orion_lock_guide.pdf" in _text(sources_html) and "p. 2" in _text(sources_html)
    assert answer["sources"][0]["file"] == "orion_lock_guide.pdf" and answer["sources"][0]["page"] == 2
    assert not answer["refused"] and answer["answer"]

    # A follow-up carries the (question, answer) pairs.
    _, chat, turns, _, _ = _run_chat(app, "and the default code?", turns=turns)
    assert recorder.calls[-1]["history"] == [("How do I reset the combination?", answer["answer"])]
    assert len(chat) == 4 and "[" in _text(chat[-1]["content"])


def test_refusal_has_no_sources(tmp_path, small_index):
    from rag.ui import create_app

    app = create_app(index=small_index, upload_dir=tmp_path / "up", generator="extractive")
    _, chat, turns, sources_html, answer = _run_chat(app, "What is the boiling point of water on Mars?")
    assert answer["refused"] and answer["sources"] == []
    assert "rag-refusal" in chat[-1]["content"] and "Not found in your documents" in chat[-1]["content"]
    assert "No sources" in _text(sources_html)


def test_a_low_confidence_answer_shows_its_note_above_the_text(tmp_path, corpus_txt_index):
    from rag.ui import create_app

    app = create_app(index=corpus_txt_index.path, upload_dir=tmp_path / "up", generator="extractive")
    # Near-topic: the notebook fine-tunes with Adam, but never gives its betas.
    _, chat, _, _, answer = _run_chat(app, "Quali beta dell'ottimizzatore Adam sono stati usati nel fine-tuning?")
    assert not answer["refused"] and answer["confidence"] == "low"
    html = chat[-1]["content"]
    assert html.index('class="rag-caution"') < html.index('class="rag-answer"')
    assert "Affidabilità bassa" in _text(html) and answer["note"] in _text(html)


@pytest.mark.parametrize("setup, kwargs, title", [
    ("no-index", {}, "No index yet — upload documents"),
    ("index", {"temperature": 5.0}, "Check the settings"),
    ("index", {"generator": "nonsense"}, "Unknown generator"),
    ("index", {"generator": "openai"}, "The generator is not configured"),
])
def test_errors_become_chat_messages(tmp_path, small_index, monkeypatch, setup, kwargs, title):
    from rag.ui import create_app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    index = small_index if setup == "index" else tmp_path / "missing-index"
    app = create_app(index=index, upload_dir=tmp_path / "up", generator="extractive")
    _, chat, turns, sources_html, answer = _run_chat(app, "How do I reset the combination?", **kwargs)
    assert "rag-error" in chat[-1]["content"] and title in _text(chat[-1]["content"])
    assert "Traceback" not in chat[-1]["content"]
    assert answer["error"] and turns[-1]["error"]
    # The conversation goes on: the next question still works (or fails the same readable way).
    _, chat, turns, _, _ = _run_chat(app, "How do I reset the combination?", turns=turns)
    assert len(chat) == 4
    if setup == "index":
        assert "[1]" in _text(chat[-1]["content"])


# ------------------------------------------------------------------ rendering (no gradio, no server)


def test_document_text_is_shown_as_text_never_as_markup():
    from rag.ui.render import esc, render_answer, render_sources, render_user

    payload = '![s](http://127.0.0.1:9/exfil.png?q=1) <img src="http://127.0.0.1:9/x.png"> <b>b</b> $x$ www.a.io'
    for fragment in (render_user(payload), esc(payload),
                     render_answer({"question": "q", "answer": payload + " [1]", "sources": [{"source": "a.md", "text": payload}]}),
                     render_sources({"question": "q", "answer": payload, "sources": [{"source": "a.md", "text": payload}]}, 1)):
        assert "<img" not in fragment and "<b>" not in fragment and "](" not in fragment and "http:" not in fragment
    assert _text(render_user(payload)) == payload  # shown exactly as written
    assert _text(render_user("line one\nline two")) == "line oneline two" and "<br>" in render_user("a\nb")


def _turn(answer, citations=None, n_sources=3):
    sources = [{"source": f"doc{n}.pdf", "path": f"/docs/doc{n}.pdf", "page": n, "score": 1.0,
                "text": f"Passage {n}. The pump needs a gasket every {n}00 hours. End."} for n in range(1, n_sources + 1)]
    return {"question": "How often?", "answer": answer, "sources": sources, "citations": citations or []}


def test_chips_only_for_sources_the_answer_cites_and_the_check_supports():
    from rag.ui.render import cited_sources, render_answer

    # Without citation-check results: what the text cites, never "all of them".
    assert cited_sources(_turn("Every 100 hours [1].")) == {1}
    assert cited_sources(_turn("No citation here.")) == set()
    assert "rag-cite\"" not in render_answer(_turn("No citation here."))
    # With them: cited and supported only; the unsupported sentence is marked in place.
    citations = [
        {"sentence": "Every 100 hours [1].", "sources": [1], "cited": [1], "supported": True, "quote": "The pump needs a gasket every 100 hours.",
         "quote_source": 1, "quote_start": 11, "quote_end": 51},
        {"sentence": "It is blue [2].", "sources": [2], "cited": [2], "supported": False},
    ]
    turn = _turn("Every 100 hours [1]. It is blue [2].", citations)
    assert cited_sources(turn) == {1}
    html = render_answer(turn)
    assert _text(html).count("[1] doc1.pdf · p. 1") == 1 and "doc2.pdf" not in _text(html)
    assert '<span class="rag-unsupported"' in html and "not supported by the cited source" in _text(html)


def test_source_card_highlights_the_quote_and_links_the_pdf_page():
    from rag.ui.render import render_sources

    citations = [{"sentence": "Every 100 hours [1].", "sources": [1], "supported": True,
                  "quote": "The pump needs a gasket every 100 hours.", "quote_source": 1, "quote_start": 11, "quote_end": 51}]
    turn = _turn("Every 100 hours [1].", citations, n_sources=2)
    html = render_sources(turn, 1, document_url=lambda s: f"rag-doc/x/{s['source']}")
    assert _text(html.split('<mark class="rag-quote">')[1].split("</mark>")[0]) == "The pump needs a gasket every 100 hours."
    assert 'href="rag&#45;doc/x/doc1&#46;pdf#page=1"' in html and 'rel="noopener noreferrer"' in html
    # The uncited source says so in its own element (read apart from the file name).
    assert '<span class="rag-src-flag"><span class="rag-sr">, </span>(not cited)</span>' in html
    assert html.count("rag-src-flag") == 1


@pytest.mark.parametrize("lang, title, hint", [
    ("it", "Non trovato nei tuoi documenti", "non è stato inventato nulla"),
    ("ko", "문서에서 찾을 수 없습니다", "지어내지 않았습니다"),
    ("zh", "文档中未找到", "没有编造任何内容"),
    ("en", "Not found in your documents", "nothing was made up"),
])
def test_refusal_notice_is_in_the_questions_language(lang, title, hint):
    from rag.ui.render import render_answer, render_sources

    turn = {"question": "?", "answer": "…", "refused": True, "lang": lang, "sources": []}
    html = _text(render_answer(turn))
    assert title in html and hint in html
    if lang != "en":
        assert "Not found" not in html and "nothing was made up" not in html
        assert "No sources" not in _text(render_sources(turn, 1))


def test_error_titles_come_from_one_mapping():
    from rag.errors import (BackendNotFoundError, ConfigurationError, IndexNotFoundError, InputError, RagError,
                            ServerUnavailableError)
    from rag.ui.render import error_hint, error_title

    assert error_title(IndexNotFoundError("/x")) == "No index yet — upload documents"
    assert error_title(ConfigurationError("no key")) == "The generator is not configured"
    assert error_title(ServerUnavailableError("http://x")) == "The model server cannot be reached"
    assert error_title(BackendNotFoundError("generator", "nope", ["extractive"])) == "Unknown generator"
    assert error_title(InputError("temperature=5")) == "Check the settings"
    assert error_title(RagError("x")) == "Could not answer" and error_title(KeyError("x")) == "Unexpected error"
    assert "extractive" in error_hint(ServerUnavailableError("http://x"))


def test_too_long_question_is_not_sent_and_keeps_its_text(tmp_path):
    from rag.retrieval import MAX_QUESTION_CHARS
    from rag.ui import create_app

    app = create_app(index=tmp_path / "index", upload_dir=tmp_path / "up")
    long_question = "x" * (MAX_QUESTION_CHARS + 1)
    chat, turns, box, note, stop = _endpoint(app, "accept")(long_question, [])
    assert turns is not None and box is not None  # gr.skip(): nothing shown, the box keeps the text
    assert not isinstance(turns, list) and not isinstance(box, str)
    assert f"limit is {MAX_QUESTION_CHARS:,}" in _text(note) and "still in the box" in _text(note)
    chat, turns, box, note, stop = _endpoint(app, "accept")("How do I reset it?", [])
    assert box == "" and note == "" and turns[-1]["pending"] and turns[-1]["question"] == "How do I reset it?"
    # While that one is answered, the next question waits in the box.
    chat, again, box, note, stop = _endpoint(app, "accept")("And the code?", turns)
    assert not isinstance(box, str) and "still being written" in _text(note)


def test_upload_headline_counts_this_upload_and_the_index(tmp_path, small_index, index_copy):
    from rag.ui.render import upload_headline

    index = index_copy(small_index)
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ")
    result = ingest_uploads([bad], index, tmp_path / "uploads")
    assert upload_headline(result, 2) == "1 not added · the index has 2 documents"


def test_sampling_controls_follow_the_settings_and_the_generator(tmp_path):
    from rag.settings import GenerationSettings
    from rag.ui import create_app
    from rag.ui.app import why_disabled

    app = create_app(index=tmp_path / "index", generator="extractive",
                     generation=GenerationSettings(temperature=0.4))
    sliders = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None) in
               ("rag-temperature", "rag-top-p", "rag-max-tokens", "rag-k")}
    temperature = sliders["rag-temperature"]
    meta = {f.name: f.metadata for f in __import__("dataclasses").fields(GenerationSettings)}
    assert (temperature.minimum, temperature.maximum, temperature.value) == (meta["temperature"]["minimum"],
                                                                            meta["temperature"]["maximum"], 0.4)
    assert temperature.info == meta["temperature"]["help"] and not temperature.interactive
    assert sliders["rag-k"].interactive is not False
    assert "no effect with extractive" in why_disabled("extractive") and why_disabled("openai") == ""


# ------------------------------------------------------------------ feedback file safety


def test_feedback_is_private_and_never_follows_a_link(tmp_path):
    from rag.ui.feedback import FeedbackError

    path = tmp_path / "index" / "feedback.jsonl"
    append_feedback(path, {"vote": "up"})
    assert (path.stat().st_mode & 0o777) == 0o600
    path.chmod(0o644)  # a file from an older version
    append_feedback(path, {"vote": "down"})
    assert (path.stat().st_mode & 0o777) == 0o600 and len(read_feedback(path)) == 2
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n", encoding="utf-8")
    planted = tmp_path / "index" / "planted.jsonl"
    planted.symlink_to(target)
    with pytest.raises(FeedbackError, match="symbolic link"):
        append_feedback(planted, {"vote": "up"})
    assert target.read_text(encoding="utf-8") == "keep\n"


# ------------------------------------------------------------------ rag ui access and document serving


def test_rag_ui_refuses_a_network_address_without_logins(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from rag.ui.command import access, login_checker, ui_command

    monkeypatch.delenv("RAG_UI_AUTH", raising=False)
    monkeypatch.setenv("RAG_KEYS_FILE", str(tmp_path / "no-keys.json"))
    result = CliRunner().invoke(ui_command, ["--index", str(tmp_path / "idx"), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "refusing to serve the chat page on 0.0.0.0 without logins" in result.output
    auth, line = access("0.0.0.0", [("ann", "s3cret")])
    assert auth("ann", "s3cret") and not auth("ann", "wrong") and not auth("bob", "s3cret")
    assert "Login required" in line
    assert access("127.0.0.1", []) == (None, "")
    assert login_checker([("a", "b")])("a", "b")


def test_only_indexed_unchanged_pdfs_are_served(tmp_path, small_index, index_copy):
    from rag.store import read_manifest
    from rag.ui.app import document_token, find_document

    index = index_copy(small_index)
    paths = list(read_manifest(index)["files"])
    pdf = next(p for p in paths if p.endswith(".pdf"))
    text = next(p for p in paths if not p.endswith(".pdf"))
    assert find_document(index, document_token(pdf)) == Path(pdf)
    assert find_document(index, document_token(text)) is None  # only PDFs
    assert find_document(index, document_token("/etc/passwd")) is None
    assert find_document(index, "../../etc/passwd") is None


def test_a_login_guards_the_page_and_its_documents(tmp_path, small_index):
    import socket

    import httpx

    from rag.store import read_manifest
    from rag.ui import create_app, launch
    from rag.ui.app import DOCUMENT_ROUTE, document_token
    from rag.ui.command import login_checker

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(index=small_index, upload_dir=tmp_path / "up", generator="extractive")
    launch(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True,
           auth=login_checker([("ann", "s3cret")]))
    try:
        pdf = next(p for p in read_manifest(small_index)["files"] if p.endswith(".pdf"))
        url = f"http://127.0.0.1:{port}/{DOCUMENT_ROUTE}/{document_token(pdf)}/guide.pdf"
        with httpx.Client(timeout=30) as client:
            assert client.get(url).status_code == 401
            assert "content-security-policy" in client.get(f"http://127.0.0.1:{port}/").headers
            assert client.post(f"http://127.0.0.1:{port}/login", data={"username": "ann", "password": "no"}).status_code == 400
            assert client.post(f"http://127.0.0.1:{port}/login", data={"username": "ann", "password": "s3cret"}).status_code == 200
            response = client.get(url)
            assert response.status_code == 200 and response.content == Path(pdf).read_bytes()
    finally:
        app.close(verbose=False)


def test_mounted_inside_another_server_the_page_keeps_its_csp_limit_and_pdf_route(tmp_path, small_index):
    import fastapi
    from fastapi.testclient import TestClient

    from rag.store import read_manifest
    from rag.ui import create_app, mount
    from rag.ui.app import DOCUMENT_ROUTE, document_token

    server = fastapi.FastAPI()
    app = create_app(index=small_index, upload_dir=tmp_path / "up", generator="extractive", max_upload_mb=2)
    mount(server, app, "/ui")
    pdf = next(p for p in read_manifest(small_index)["files"] if p.endswith(".pdf"))
    with TestClient(server) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "img-src 'self' data: blob:" in page.headers["content-security-policy"]
        response = client.get(f"/ui/{DOCUMENT_ROUTE}/{document_token(pdf)}/guide.pdf")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert app.max_file_size == 2 * 1024 * 1024


def test_progress_lines_follow_the_question_language():
    from rag.ui.render import render_answer

    loading = render_answer({"question": "?", "streaming": True, "stage": "loading_model", "stage_model": "local",
                             "ui_lang": "ko", "elapsed": 3.2})
    assert "모델 local을(를) 불러오는 중입니다" in _text(loading) and "3 s" in _text(loading)
    assert 'role="status"' in loading
    assert "Ricerca nei tuoi documenti" in _text(render_answer({"question": "?", "streaming": True, "ui_lang": "it"}))
    stopped = _text(render_answer({"question": "?", "answer": "Metà", "stopped": True, "ui_lang": "it"}))
    assert "Metà" in stopped and "Interrotto" in stopped
