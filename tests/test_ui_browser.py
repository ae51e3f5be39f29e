"""The chat page in a real browser (Debian's Chromium driven by Playwright) against a real
server, a real index and the real rag.ask (generator "extractive": no language model).

Screenshots of the main states go to the test's tmp folder and are copied to /tmp/ui_shots/.
Skipped when /usr/bin/chromium or playwright is missing. Never runs `playwright install`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

import rag  # noqa: E402
from helpers_pdf import make_pdf, make_truncated_pdf  # noqa: E402

SHOTS = Path("/tmp/ui_shots")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LOCK_PAGES = [
    "Orion Bicycle Lock, setup guide. Chapter one introduces the lock and its parts: the steel shackle, "
    "the key cylinder and the mounting bracket.",
    "Resetting the combination: hold the reset button for five seconds, turn the dials to the new code, "
    "then release the button. The default factory code is 4-7-1-9.",
]
TIMEOUT_MS = 30_000


class SlowStream:
    """The real AnswerStream, with a pause between pieces so streaming can be watched."""

    def __init__(self, stream, delay: float):
        self._stream, self._delay = stream, delay

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __iter__(self):
        for i, piece in enumerate(self._stream):
            if i:
                time.sleep(self._delay)
            yield piece


class RecordingAsk:
    """ask_fn for the app: records the keyword arguments, then calls the real rag.ask."""

    def __init__(self):
        self.calls: list[dict] = []
        self.delay = 0.0
        self._lock = threading.Lock()

    def __call__(self, question, **kwargs):
        with self._lock:
            self.calls.append({"question": question, **kwargs})
        result = rag.ask(question, **kwargs)
        return SlowStream(result, self.delay) if self.delay and kwargs.get("stream") else result

    def last(self, question: str) -> dict:
        return [c for c in self.calls if c["question"] == question][-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    """A running app over a small real index: (url, recorder, folders)."""
    root = tmp_path_factory.mktemp("ui_site")
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "orion_lock_guide.pdf", LOCK_PAGES)
    (docs / "library_zh.txt").write_text(
        "城东图书馆开放时间：周一至周五上午九点到晚上八点，周末上午十点到下午五点。借书证可以在服务台免费办理。",
        encoding="utf-8")
    summary = rag.ingest([docs], root / "index", progress=False)
    assert summary.ok and summary.files == 2

    from rag.ui import create_app

    recorder = RecordingAsk()
    app = create_app(index=root / "index", docs_dir=docs, upload_dir=root / "uploads",
                     feedback_path=root / "feedback.jsonl", ask_fn=recorder, generator="extractive")
    port = _free_port()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    shots = root / "shots"
    shots.mkdir()
    yield {"url": f"http://127.0.0.1:{port}/", "recorder": recorder, "root": root, "shots": shots}
    app.close(verbose=False)


@pytest.fixture(scope="module")
def browser(site):
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    """A fresh session (its own conversation) on the loaded page; fails if it requested anything non-local."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    outside: list[str] = []

    context.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
               else outside.append(request.url))
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(site["url"])
    tab.wait_for_selector("#rag-question textarea")
    tab.wait_for_selector("#rag-status-card .rag-stat")
    yield tab
    context.close()
    assert not outside, f"the page fetched from outside the machine: {outside}"


def shot(tab, site, name: str) -> Path:
    time.sleep(0.3)  # let transitions settle
    path = site["shots"] / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def ask(tab, question: str) -> None:
    bots_before = tab.locator("#rag-chatbot [data-testid='bot']").count()
    tab.fill("#rag-question textarea", question)
    tab.click("#rag-ask")
    tab.wait_for_function(
        "n => document.querySelectorAll(\"#rag-chatbot [data-testid='bot']\").length > n", arg=bots_before)


def wait_answer_done(tab):
    """The last answer has finished: a citation line, a refusal or an error notice is shown."""
    tab.wait_for_function("""() => {
        const bots = document.querySelectorAll("#rag-chatbot [data-testid='bot']");
        const last = bots[bots.length - 1];
        return last && last.querySelector('.rag-cites, .rag-refusal, .rag-error') !== null;
    }""")
    return tab.locator("#rag-chatbot [data-testid='bot']").last


def test_page_loads(page, site):
    assert page.title() == "Ask your documents"
    assert page.locator("#rag-header h1").inner_text() == "Ask your documents"
    status = page.locator("#rag-status-card").inner_text()
    assert "use-multilingual" in status and "DOCUMENTS" in status.upper()
    assert "Sources" in page.locator("#rag-sources-card").inner_text()
    shot(page, site, "01_loaded")


def test_ask_streams_an_answer_with_sources(page, site):
    recorder = site["recorder"]
    recorder.delay = 0.6
    try:
        question = "How do I reset the combination?"
        ask(page, question)
        bot = page.locator("#rag-chatbot [data-testid='bot']").last
        # Mid-stream: part of the answer with the typing cursor, no citation line yet.
        page.wait_for_function("""() => {
            const bots = document.querySelectorAll("#rag-chatbot [data-testid='bot']");
            const t = bots[bots.length - 1].innerText;
            return t.includes('[1]') && t.includes('▍');
        }""")
        assert bot.locator(".rag-cites").count() == 0
        # Sources are known before the answer is complete.
        assert "orion_lock_guide.pdf" in page.locator("#rag-sources-card").inner_text()
        shot(page, site, "02_streaming")
        bot = wait_answer_done(page)
    finally:
        recorder.delay = 0.0
    text = bot.inner_text()
    assert "reset button" in text and "[1]" in text and "▍" not in text
    first = page.locator("#rag-sources-card .rag-src").first
    assert first.locator(".rag-src-n").inner_text() == "1"
    assert first.locator(".rag-src-file").inner_text() == "orion_lock_guide.pdf"
    assert first.locator(".rag-src-page").inner_text() == "p. 2"
    assert "score" in first.locator(".rag-src-score").inner_text()
    assert "reset button" in first.locator(".rag-src-snip").inner_text()
    assert "orion_lock_guide.pdf · p. 2" in bot.locator(".rag-cites").inner_text()
    call = recorder.last(question)
    assert call["stream"] is True and call["generator"] == "extractive"
    shot(page, site, "03_answer_with_sources")

    # Thumbs up on the answer: one JSONL line with the question.
    feedback = site["root"] / "feedback.jsonl"
    before = len(feedback.read_text(encoding="utf-8").splitlines()) if feedback.exists() else 0
    page.locator("#rag-chatbot button[aria-label='Like']").last.click()
    deadline = time.time() + 10
    while time.time() < deadline and (not feedback.exists()
                                      or len(feedback.read_text(encoding="utf-8").splitlines()) == before):
        time.sleep(0.1)
    record = json.loads(feedback.read_text(encoding="utf-8").splitlines()[-1])
    assert record["vote"] == "up" and record["question"] == question
    assert record["response_sources"][0]["file"] == "orion_lock_guide.pdf"
    assert record["response_sources"][0]["page"] == 2

    # A follow-up gets the conversation so far.
    ask(page, "and the default code?")
    bot = wait_answer_done(page)
    assert "4-7-1-9" in bot.inner_text()
    assert recorder.last("and the default code?")["history"][0][0] == question
    assert "Answer 2" in page.locator("#rag-sources-card .rag-card-title").inner_text()
    # Clicking an earlier answer shows its sources again.
    page.locator("#rag-chatbot [data-testid='bot']").first.click()
    page.wait_for_function(
        "() => document.querySelector('#rag-sources-card .rag-card-title').innerText.includes('Answer 1')")


def _set_slider(tab, elem_id: str, value: str) -> None:
    box = tab.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")
    box.blur()


def test_settings_reach_ask(page, site):
    page.click("#rag-settings button:has-text('Settings')")
    page.wait_for_selector("#rag-temperature input[type=number]", state="visible")
    _set_slider(page, "rag-temperature", "0.7")
    _set_slider(page, "rag-top-p", "0.55")
    _set_slider(page, "rag-max-tokens", "300")
    _set_slider(page, "rag-k", "3")
    question = "What is the default factory code?"
    ask(page, question)
    bot = wait_answer_done(page)
    assert "4-7-1-9" in bot.inner_text()
    call = site["recorder"].last(question)
    assert call["temperature"] == pytest.approx(0.7) and call["top_p"] == pytest.approx(0.55)
    assert call["max_tokens"] == 300 and call["k"] == 3
    assert page.locator("#rag-sources-card .rag-src").count() <= 3
    shot(page, site, "04_settings")


def test_question_not_covered_is_refused(page, site):
    ask(page, "What is the boiling point of water on Mars?")
    bot = wait_answer_done(page)
    assert bot.locator(".rag-refusal").count() == 1
    assert "Not found in your documents" in bot.inner_text()
    assert bot.locator(".rag-cites").count() == 0
    assert page.locator("#rag-sources-card .rag-src").count() == 0
    assert "No sources" in page.locator("#rag-sources-card").inner_text()
    shot(page, site, "07_refusal")


def _upload(tab, paths: list[Path]) -> str:
    tab.locator("#rag-upload input[type=file]").set_input_files([str(p) for p in paths])
    tab.wait_for_selector("#rag-upload-report .rag-upload-report", timeout=60_000)
    return tab.locator("#rag-upload-report").inner_text()


def test_upload_a_file_and_ask_about_it(page, site, tmp_path):
    documents_before = int(page.locator("#rag-status-card .rag-stat .num").first.inner_text())
    note = tmp_path / "kestrel clock care.txt"  # saved as kestrel_clock_care.txt
    note.write_text("Kestrel clock care. The Kestrel wall clock needs a new battery every forty days. "
                    "Never hang the clock above a radiator.", encoding="utf-8")
    report = _upload(page, [note])
    assert "kestrel clock care.txt: added" in report
    assert (site["root"] / "uploads" / "kestrel_clock_care.txt").is_file()
    page.wait_for_function(
        "n => parseInt(document.querySelector('#rag-status-card .rag-stat .num').innerText) > n",
        arg=documents_before)
    question = "How often does the Kestrel clock need a new battery?"
    ask(page, question)
    bot = wait_answer_done(page)
    assert "forty days" in bot.inner_text()
    assert page.locator("#rag-sources-card .rag-src-file").first.inner_text() == "kestrel_clock_care.txt"
    shot(page, site, "05_uploaded_file_answer")


def test_corrupt_pdf_is_reported_while_the_good_file_goes_in(page, site, tmp_path):
    broken = make_truncated_pdf(tmp_path / "broken_report.pdf")
    noise = tmp_path / "noise.pdf"
    noise.write_bytes(os.urandom(4096))
    good = tmp_path / "heron_pump.md"
    good.write_text("# Heron pump\n\nThe Heron garden pump needs a new gasket every 500 operating hours.\n",
                    encoding="utf-8")
    report = _upload(page, [broken, noise, good])
    lines = {line.split(":")[0].lstrip("✓✗ ").strip(): line for line in report.splitlines() if ":" in line}
    assert "added" in lines["heron_pump.md"]
    assert lines["broken_report.pdf"].startswith("✗") and len(lines["broken_report.pdf"]) > 30
    assert lines["noise.pdf"].startswith("✗")
    assert page.locator("#rag-upload-report li.bad").count() == 2
    uploads = sorted(p.name for p in (site["root"] / "uploads").iterdir())
    assert "heron_pump.md" in uploads and "broken_report.pdf" not in uploads and "noise.pdf" not in uploads
    assert "heron_pump.md" in page.locator("#rag-status-card .rag-docs").text_content()
    shot(page, site, "06_upload_report")
    ask(page, "How often does the Heron pump need a new gasket?")
    wait_answer_done(page)
    assert page.locator("#rag-sources-card .rag-src-file").first.inner_text() == "heron_pump.md"


def test_gradio_client_calls_the_chat_like_a_script(site, monkeypatch):
    from gradio_client import Client

    client = Client(site["url"], verbose=False)
    chat, sources_html, box, answer = client.predict("How do I reset the combination?", api_name="/chat")
    assert answer["sources"][0]["file"] == "orion_lock_guide.pdf" and answer["sources"][0]["page"] == 2
    assert "[1]" in answer["answer"] and not answer["refused"]
    assert "orion_lock_guide.pdf" in sources_html
    # Settings by name; the session keeps the conversation for follow-ups.
    *_, answer = client.predict("and the default code?", generator="extractive", temperature=0.4, top_p=0.8,
                                max_tokens=200, k=2, api_name="/chat")
    call = site["recorder"].last("and the default code?")
    assert (call["temperature"], call["top_p"], call["max_tokens"], call["k"]) == (0.4, 0.8, 200, 2)
    assert len(call["history"]) == 1 and "4-7-1-9" in answer["answer"]
    # A generator that is not configured: a readable error, and the server keeps answering.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    *_, answer = client.predict("How do I reset the combination?", generator="openai", api_name="/chat")
    assert answer["error"] and "OPENAI" in answer["error"]
    *_, answer = client.predict("What is the default factory code?", api_name="/chat")
    assert "4-7-1-9" in answer["answer"]


def test_sessions_are_separate_and_concurrent_questions_do_not_mix(site):
    from gradio_client import Client

    first, second = Client(site["url"], verbose=False), Client(site["url"], verbose=False)
    jobs = [first.submit("What is the default factory code?", api_name="/chat"),
            second.submit("How do I reset the combination?", api_name="/chat")]
    answers = [job.result(timeout=60)[-1] for job in jobs]
    assert answers[0]["question"] == "What is the default factory code?" and "4-7-1-9" in answers[0]["answer"]
    assert answers[1]["question"] == "How do I reset the combination?" and "reset button" in answers[1]["answer"]
    # Each session's follow-up sees only its own conversation.
    chat, *_ = first.predict("and where is the reset button?", api_name="/chat")
    history = site["recorder"].last("and where is the reset button?")["history"]
    assert [q for q, _ in history] == ["What is the default factory code?"]
    assert len(chat) == 4


def test_error_shows_in_the_chat(page, site, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    page.click("#rag-settings button:has-text('Settings')")
    page.locator("#rag-generator input").click()
    page.locator("ul[role='listbox'] li", has_text="openai").click()
    ask(page, "How do I reset the combination?")
    bot = wait_answer_done(page)
    assert bot.locator(".rag-error").count() == 1
    assert "The generator is not configured" in bot.inner_text()
    assert "Traceback" not in page.content()
    shot(page, site, "08_error")
