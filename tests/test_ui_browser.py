"""The chat page in a real browser (Debian's Chromium driven by Playwright) against a real
server, a real index and a real QA pipeline. One Chromium and one app server for the module.

The page starts on the default generator (rag.config.DEFAULT_GENERATOR unless OpenAI is
configured). Stop and the queue are exercised with ``slow-test``, a registered generator
that really streams a token every 0.1 s and records when its stream is closed (it wraps the
``local`` llama.cpp generator when that one is registered).

Screenshots of every state go to the test's tmp folder and are copied to /tmp/ui_shots/.
Skipped when /usr/bin/chromium or playwright is missing. Never runs `playwright install`.
"""

from __future__ import annotations

import http.server
import json
import os
import re
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
from helpers_pdf import LOCK_PAGES, make_pdf, make_truncated_pdf  # noqa: E402
from rag import config  # noqa: E402
from rag.text import cited_numbers  # noqa: E402
from rag.generators import Generator, generator_names, get_generator, register_generator, unregister_generator  # noqa: E402

SHOTS = Path("/tmp/ui_shots")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 30_000
SLOW = "slow-test"
BOT = "#rag-chatbot [data-testid='bot']"
USER = "#rag-chatbot [data-testid='user']"


# ------------------------------------------------------------------ helpers: generator, listener, recorder


class SlowGenerator(Generator):
    """Streams one token every ``delay`` seconds (up to max_tokens); records what happened.
    With ``inner`` (the local llama.cpp generator), streams that generator's pieces instead."""

    name = SLOW
    model = "slow"
    is_llm = True

    def __init__(self, inner=None, delay: float = 0.1):
        self.inner, self.delay = inner, delay
        self.use_inner = inner is not None  # False: the timed words, however long the local model takes
        self.pace = 0.0  # seconds added before each of the local model's pieces
        self.produced: list[float] = []  # time of each piece
        self.closed_at: float | None = None

    def reset(self) -> None:
        """Forget the last stream: call before asking, so a wait cannot read the previous answer's pieces."""
        self.produced, self.closed_at = [], None

    def stream(self, request):
        self.reset()
        pieces = self.inner.stream(request) if self.use_inner else None
        try:
            for i in range(request.max_tokens):
                if pieces is not None:
                    piece = next(pieces, None)
                    if piece is None:
                        return
                    time.sleep(self.pace)
                else:
                    time.sleep(self.delay)
                    piece = f"word{i} "
                self.produced.append(time.monotonic())
                yield piece
        finally:
            self.closed_at = time.monotonic()
            if pieces is not None:
                pieces.close()  # the local model stops with its stream


class Listener:
    """A loopback HTTP server that records every request: the page must send it none."""

    def __init__(self):
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                listener.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RecordingAsk:
    """ask_fn for the app: records what reaches QA.ask and keeps each stream (for its final Answer)."""

    def __init__(self, qa):
        self.qa = qa
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, question, **kwargs):
        result = self.qa.ask(question, **kwargs)
        with self._lock:
            self.calls.append({"question": question, **kwargs, "result": result})
        return result

    def last(self, question: str) -> dict:
        return [c for c in self.calls if c["question"] == question][-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    """A running app over a small real index: {"url", "recorder", "root", "shots", "listener", "slow"}."""
    root = tmp_path_factory.mktemp("ui_site")
    listener = Listener()
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "orion_lock_guide.pdf", LOCK_PAGES)
    (docs / "library_zh.txt").write_text(
        "城东图书馆开放时间：周一至周五上午九点到晚上八点，周末上午十点到下午五点。借书证可以在服务台免费办理。",
        encoding="utf-8")
    # An untrusted document whose passages carry a remote image and raw HTML.
    (docs / "wren_heater.md").write_text(
        "# Wren heater\n\nThe Wren heater warms a small room in ten minutes "
        f"![s](http://127.0.0.1:{listener.port}/exfil.png?q=1) on its eco setting.\n\n"
        f'The Wren heater switches itself off after two hours <img src="http://127.0.0.1:{listener.port}/img.png?q=2"> '
        "to save energy.\n", encoding="utf-8")
    summary = rag.ingest([docs], root / "index", progress=False)
    assert summary.ok and summary.files == 3

    inner = get_generator("local") if "local" in generator_names() else None
    slow = SlowGenerator(inner)
    register_generator(SLOW, lambda model: slow, "test generator that streams a token every 0.1 s", replace=True)

    from rag.qa import QA
    from rag.ui import create_app

    with pytest.MonkeyPatch.context() as env:
        for name in ("RAG_GENERATOR", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
            env.delenv(name, raising=False)
        env.setenv("GRADIO_TEMP_DIR", str(root / "gradio-tmp"))
        qa = QA(root / "index")
        recorder = RecordingAsk(qa)
        # No generator given: the page starts on the default one. One question at a time, so a
        # second browser queues.
        app = create_app(index=root / "index", docs_dir=docs, upload_dir=root / "uploads",
                         feedback_path=root / "index" / "feedback.jsonl", qa=qa, ask_fn=recorder,
                         concurrency_limit=1, max_upload_mb=1)
        port = _free_port()
        app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        shots = root / "shots"
        shots.mkdir()
        try:
            yield {"url": f"http://127.0.0.1:{port}/", "recorder": recorder, "root": root, "shots": shots,
                   "listener": listener, "slow": slow, "app": app}
        finally:
            app.close(verbose=False)
            listener.close()
            unregister_generator(SLOW)


@pytest.fixture(scope="module")
def browser(site):
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, site):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    outside: list[str] = []
    context.on("request", lambda request: None if request.url.startswith((site["url"], "data:", "blob:"))
               else outside.append(request.url))
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(site["url"])
    tab.wait_for_selector("#rag-question textarea")
    tab.wait_for_selector("#rag-status-card .rag-stat")
    return context, tab, outside


@pytest.fixture
def page(browser, site):
    """A fresh session (its own conversation) on the loaded page; fails if it requested anything
    but the app itself, or if the document listener was contacted."""
    context, tab, outside = _open(browser, site)
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
    assert not outside, f"the page fetched from outside the app: {outside}"
    assert not dialogs, f"a script ran in the page: {dialogs}"
    assert not site["listener"].requests, f"the browser fetched URLs from a document: {site['listener'].requests}"


def shot(tab, site, name: str) -> Path:
    time.sleep(0.3)  # let transitions settle
    path = site["shots"] / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def ask(tab, question: str) -> None:
    users_before = tab.locator(USER).count()
    tab.fill("#rag-question textarea", question)
    tab.click("#rag-ask")
    tab.wait_for_function("n => document.querySelectorAll(\"#rag-chatbot [data-testid='user']\").length > n",
                          arg=users_before)


def wait_answer_done(tab):
    """The last answer has finished: its citation line, a refusal, an error or Stopped is shown."""
    tab.wait_for_function("""() => {
        const bots = document.querySelectorAll("#rag-chatbot [data-testid='bot']");
        const last = bots[bots.length - 1];
        return last && last.querySelector('.rag-cites, .rag-refusal, .rag-error, .rag-stopped') !== null;
    }""")
    return tab.locator(BOT).last


def choose_generator(tab, name: str) -> None:
    if not tab.locator("#rag-generator input").is_visible():
        tab.click("#rag-settings button:has-text('Settings')")
    tab.locator("#rag-generator input").click()
    tab.locator("ul[role='listbox'] li", has_text=name).first.click()
    tab.wait_for_function("n => document.querySelector('#rag-generator input').value === n", arg=name)


CONTRAST_JS = """() => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const blend = (top, bottom) => { const a = top[3];
    return [top[0] * a + bottom[0] * (1 - a), top[1] * a + bottom[1] * (1 - a), top[2] * a + bottom[2] * (1 - a), 1]; };
  const background = el => { const chain = []; for (let e = el; e; e = e.parentElement) chain.push(e);
    let bg = [255, 255, 255, 1];
    for (const e of chain.reverse()) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c[3] > 0) bg = blend(c, bg); }
    return bg; };
  const opacity = el => { let o = 1; for (let e = el; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity); return o; };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const bad = []; let checked = 0;
  while (walker.nextNode()) {
    const node = walker.currentNode; const text = node.textContent.trim(); const el = node.parentElement;
    if (!text || !el) continue;
    const rect = el.getBoundingClientRect(); if (rect.width === 0 || rect.height === 0) continue;
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    // Text of an inactive control has no contrast requirement (WCAG 1.4.3); its reason is checked.
    if (el.closest('[disabled], [aria-disabled="true"]')) continue;
    const s = getComputedStyle(el); const fg0 = parse(s.color); const bg = background(el);
    const fg = blend([fg0[0], fg0[1], fg0[2], fg0[3] * opacity(el)], bg);
    const l1 = lum(fg), l2 = lum(bg); const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize); const bold = parseInt(s.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5; checked++;
    if (ratio < need) bad.push({text: text.slice(0, 50), ratio: +ratio.toFixed(2), need, color: s.color,
      background: 'rgb(' + bg.slice(0, 3).map(Math.round).join(',') + ')', element: el.tagName + '.' + String(el.className).slice(0, 60)});
  }
  return {checked, bad};
}"""


def assert_contrast(tab, where: str) -> int:
    for _ in range(6):  # components fade while gradio updates them: measure once they settle
        result = tab.evaluate(CONTRAST_JS)
        if not result["bad"]:
            break
        time.sleep(0.5)
    assert not result["bad"], f"text under WCAG AA contrast ({where}): {json.dumps(result['bad'], ensure_ascii=False, indent=1)}"
    return result["checked"]


# ------------------------------------------------------------------ tests


def test_first_question_on_a_fresh_page_gives_the_default_generators_answer_with_only_cited_chips(page, site):
    assert page.title() == "Ask your documents"
    shot(page, site, "01_loaded")
    page.click("#rag-settings button:has-text('Settings')")
    assert page.locator("#rag-generator input").input_value() == config.DEFAULT_GENERATOR
    page.click("#rag-settings button:has-text('Settings')")
    question = "How do I reset the combination?"
    ask(page, question)
    bot = wait_answer_done(page)
    answer = site["recorder"].last(question)["result"].answer
    assert answer.generator == config.DEFAULT_GENERATOR and not answer.refused
    assert "reset button" in bot.inner_text() and "[1]" in bot.inner_text()
    # Chips: exactly the sources the answer cites and the citation check supports.
    if answer.citations:
        expected = {n for c in answer.citations if c.supported for n in c.sources}
    else:
        expected = set(cited_numbers(answer.text))
    chips = [int(re.match(r"\[(\d+)\]", t).group(1)) for t in bot.locator(".rag-cite").all_inner_texts()]
    assert chips and set(chips) == expected and len(chips) == len(set(chips))
    assert all(n in set(cited_numbers(answer.text)) for n in chips)
    cards = page.locator("#rag-sources-card .rag-src")
    assert cards.count() == len(answer.sources)
    for i in range(cards.count()):
        n = int(cards.nth(i).get_attribute("data-n"))
        flagged = cards.nth(i).locator(".rag-src-flag").count() == 1
        assert flagged == (n not in expected), f"source {n}: 'not cited' shown wrongly"
    first = page.locator("#rag-sources-card .rag-src[data-n='1']")
    assert first.locator(".rag-src-file").inner_text() == "orion_lock_guide.pdf"
    assert first.locator(".rag-src-page").inner_text() == "p. 2"
    # The supporting quote is highlighted inside the excerpt when the check found one.
    quoted = [c for c in answer.citations if c.supported and c.quote_source == 1 and c.quote]
    if quoted:
        assert first.locator("mark.rag-quote").count() == 1
        assert " ".join(first.locator("mark.rag-quote").inner_text().split()) in " ".join(answer.sources[0].text.split())
    # The PDF opens at the cited page, served from the index's file (and nothing else is served).
    link = first.locator("a.rag-open")
    href = link.get_attribute("href")
    assert href.endswith("#page=2") and link.get_attribute("rel") == "noopener noreferrer"
    response = page.request.get(site["url"] + href.split("#")[0])
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.body() == (site["root"] / "docs" / "orion_lock_guide.pdf").read_bytes()
    assert page.request.get(site["url"] + "rag-doc/" + "0" * 32 + "/x.pdf").status == 404
    assert page.request.get(site["url"] + "rag-doc/..%2F..%2Fetc/passwd").status == 404
    shot(page, site, "02_answer_with_cited_chips")

    # Thumbs up: one JSONL line, mode 0600, inside the index folder.
    feedback = site["root"] / "index" / "feedback.jsonl"
    page.locator("#rag-chatbot button[aria-label='Like']").last.click()
    deadline = time.time() + 10
    while time.time() < deadline and not feedback.exists():
        time.sleep(0.1)
    record = json.loads(feedback.read_text(encoding="utf-8").splitlines()[-1])
    assert record["vote"] == "up" and record["question"] == question
    assert (feedback.stat().st_mode & 0o777) == 0o600

    # A follow-up gets the conversation so far; clicking an earlier answer shows its sources again.
    ask(page, "and the default code?")
    bot = wait_answer_done(page)
    assert "orion_lock_guide.pdf" in bot.locator(".rag-cites").inner_text()
    assert site["recorder"].last("and the default code?")["history"][0][0] == question
    assert "Answer 2" in page.locator("#rag-sources-card .rag-card-title").inner_text()
    page.locator(BOT).first.click()
    page.wait_for_function(
        "() => document.querySelector('#rag-sources-card .rag-card-title').innerText.includes('Answer 1')")


def _wait_streaming(tab, slow, pieces: int) -> bool:
    """The slow generator has produced ``pieces`` pieces and the page shows them behind a cursor
    (the first use of the local model loads it: up to a few minutes on a busy machine).
    False when the generator's answer ended on its own before the page showed the cursor."""
    deadline = time.monotonic() + 240
    while len(slow.produced) < pieces and slow.closed_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(slow.produced) >= pieces or slow.closed_at is not None, "the generator produced nothing"
    cursor = tab.locator(BOT).last.locator(".rag-cursor")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if slow.closed_at is not None:
            return False
        if cursor.count():
            return True
        time.sleep(0.05)
    raise AssertionError("the page never showed the streaming answer's cursor")


def _stop_and_measure(tab, slow) -> tuple[float, float, list[float]]:
    """Click Stop; (seconds until the page shows Stopped, until the stream was closed, gaps between pieces)."""
    clicked = time.monotonic()
    tab.click("#rag-stop")
    tab.locator(BOT).last.locator(".rag-stopped").wait_for()
    shown = time.monotonic() - clicked
    deadline = time.monotonic() + 10
    while slow.closed_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.closed_at is not None, "the generator's stream was never closed"
    produced = len(slow.produced)
    time.sleep(0.5)
    assert len(slow.produced) == produced, "the generator kept producing after Stop"
    assert all(t <= slow.closed_at for t in slow.produced)
    gaps = [b - a for a, b in zip(slow.produced, slow.produced[1:])]
    return shown, slow.closed_at - clicked, gaps


def test_stop_cancels_a_running_generation_within_a_second(page, site):
    slow = site["slow"]
    choose_generator(page, SLOW)
    # 1. A stream of a piece every 0.1 s: Stop shows and closes the stream within a second.
    slow.use_inner = False
    try:
        slow.reset()
        ask(page, "How do I reset the combination?")
        assert _wait_streaming(page, slow, 4)
        shot(page, site, "03_streaming")
        shown, closed, _ = _stop_and_measure(page, slow)
    finally:
        slow.use_inner = slow.inner is not None
    assert shown < 1.0 and closed < 1.0, f"Stopped shown after {shown:.2f} s, stream closed after {closed:.2f} s"
    text = page.locator(BOT).last.inner_text()
    assert "word3" in text and "Stopped" in text and "▍" not in text
    shot(page, site, "04_stopped")
    # 2. The local llama.cpp model (when registered): the page shows Stopped within a second; the
    # stream closes at the next token boundary (a token cannot be interrupted mid-way: on this
    # shared 2-core machine under load one took up to ~4 s), and no token follows.
    if slow.inner is not None:
        # Warm, the model writes ~100 tokens/s and may end its answer within 0.3 s, before a
        # click could land: its pieces are paced, and an answer that ends on its own is asked again.
        slow.pace = 0.2
        try:
            for _ in range(3):
                slow.reset()
                ask(page, "How do I reset the combination?")
                if _wait_streaming(page, slow, 3):
                    break
                wait_answer_done(page)
            else:
                raise AssertionError("the local model ended each of 3 answers before Stop could be clicked")
            shown, closed, gaps = _stop_and_measure(page, slow)
        finally:
            slow.pace = 0.0
        assert shown < 1.0, f"Stopped shown after {shown:.2f} s"
        assert closed < 1.0 + max(gaps), (
            f"the local stream closed {closed:.2f} s after Stop; its tokens came every {[round(g, 2) for g in gaps[-8:]]} s")
        shot(page, site, "04b_stopped_local_model")
    # The conversation goes on.
    choose_generator(page, config.DEFAULT_GENERATOR)
    ask(page, "What is the default factory code?")
    assert "orion_lock_guide.pdf" in wait_answer_done(page).locator(".rag-cites").inner_text()


def test_a_second_browser_sees_its_queue_position(page, browser, site):
    site["slow"].use_inner = False  # 0.1 s a word for up to 512 words: the first answer outlasts the check
    choose_generator(page, SLOW)
    site["slow"].reset()
    ask(page, "How do I reset the combination?")
    assert _wait_streaming(page, site["slow"], 2)
    context, other, _ = _open(browser, site)
    try:
        ask(other, "What is the default factory code?")
        # Its question shows at once, with its place in the queue.
        other.wait_for_function("() => /queue[^0-9]*1\\s*\\/\\s*\\d/i.test(document.querySelector('#rag-chatbot').innerText)"
                                " || /queue[^0-9]*1\\s*\\/\\s*\\d/i.test(document.body.innerText)")
        assert "What is the default factory code?" in other.locator(USER).last.inner_text()
        assert "Waiting" in other.locator(BOT).last.inner_text()
        shot(other, site, "05_second_browser_queued")
        page.click("#rag-stop")
        assert "orion_lock_guide.pdf" in wait_answer_done(other).locator(".rag-cites").inner_text()
        shot(other, site, "06_second_browser_answered")
    finally:
        site["slow"].use_inner = site["slow"].inner is not None
        context.close()


def test_sampling_controls_are_disabled_under_extractive_and_say_why(page, site):
    page.click("#rag-settings button:has-text('Settings')")
    page.wait_for_selector("#rag-temperature input[type=number]", state="visible")
    for elem in ("rag-temperature", "rag-top-p", "rag-max-tokens"):
        assert page.locator(f"#{elem} input[type=number]").is_disabled(), elem
    assert page.locator("#rag-k input[type=number]").is_enabled()
    why = page.locator("#rag-why").inner_text()
    assert "no effect with extractive" in why and "Temperature" in why
    # Ranges and help come from the settings fields.
    assert page.locator("#rag-temperature input[type=number]").get_attribute("max") == "2"
    assert "most likely word" in page.locator("#rag-temperature").inner_text()
    assert_contrast(page, "settings open, extractive")
    shot(page, site, "07_controls_disabled_extractive")
    choose_generator(page, SLOW)
    page.wait_for_function("() => !document.querySelector('#rag-temperature input[type=number]').disabled")
    assert page.locator("#rag-why").inner_text().strip() == ""
    # The values set reach the pipeline.
    for elem, value in (("rag-temperature", "0.7"), ("rag-top-p", "0.55"), ("rag-max-tokens", "16"), ("rag-k", "3")):
        box = page.locator(f"#{elem} input[type=number]")
        box.fill(value)
        box.press("Enter")
        box.blur()
    question = "What is the default factory code?"
    site["slow"].use_inner = False  # 16 timed words: the settings are the point here
    try:
        ask(page, question)
        wait_answer_done(page)
    finally:
        site["slow"].use_inner = site["slow"].inner is not None
    call = site["recorder"].last(question)
    assert call["generation"].temperature == pytest.approx(0.7) and call["generation"].top_p == pytest.approx(0.55)
    assert call["generation"].max_tokens == 16 and call["retrieval"].k == 3
    shot(page, site, "08_controls_enabled_llm")


def test_a_refusal_is_wholly_in_the_questions_language(page, site):
    ask(page, "Qual è il punto di ebollizione dell'acqua su Marte?")
    bot = wait_answer_done(page)
    notice = bot.locator(".rag-refusal")
    assert notice.count() == 1
    text = notice.inner_text()
    assert "Non trovato nei tuoi documenti" in text
    assert "I documenti non contengono la risposta" in text
    assert "non è stato inventato nulla" in text
    assert not re.search(r"\b(Not found|No source|nothing was made up|documents do not)\b", text)
    sources = page.locator("#rag-sources-card .rag-refusal").inner_text()
    assert "Nessuna fonte" in sources and "No sources" not in sources
    assert_contrast(page, "Italian refusal")
    shot(page, site, "09_refusal_italian")
    # Korean too (CJK fonts render in the screenshot).
    ask(page, "화성에서 물의 끓는점은 몇 도입니까?")
    text = wait_answer_done(page).locator(".rag-refusal").inner_text()
    assert "문서에서 찾을 수 없습니다" in text and "Not found" not in text
    shot(page, site, "09b_refusal_korean")


def test_a_near_topic_answer_shows_the_low_confidence_note_above_it(page, site):
    # The heater notes say it warms "a small room", not which room sizes it is made for. (Asked
    # without "on its eco setting" the question shares too few words with them and is refused.)
    ask(page, "Which room sizes does the Wren heater warm on its eco setting?")
    bot = wait_answer_done(page)
    note = bot.locator(".rag-caution")
    assert note.count() == 1 and note.is_visible()
    assert note.inner_text().startswith("Low confidence: the documents may not state this directly")
    top = note.bounding_box()["y"]
    assert top < bot.locator(".rag-answer").bounding_box()["y"]  # read before the answer
    assert_contrast(page, "low-confidence note")
    shot(page, site, "09c_low_confidence_note")
    # A question the documents answer outright has no note.
    ask(page, "How do I reset the combination?")
    assert wait_answer_done(page).locator(".rag-caution").count() == 0


def test_a_question_with_html_is_shown_exactly_as_typed(page, site):
    typed = (f"<img src=x onerror=alert(1)> and <b>bold</b> ![s](http://127.0.0.1:{site['listener'].port}/q.png) "
             "$x^2$ *not italic* [1]")
    ask(page, typed)
    bubble = page.locator(USER).last
    assert bubble.inner_text().strip() == typed
    assert bubble.locator("img, b, em, strong, a, .katex").count() == 0
    wait_answer_done(page)
    shot(page, site, "10_html_question_verbatim")


def test_an_over_long_question_keeps_its_text_and_says_the_limit(page, site):
    from rag.retrieval import MAX_QUESTION_CHARS

    placeholder = page.locator("#rag-question textarea").get_attribute("placeholder")
    assert f"{MAX_QUESTION_CHARS:,}" in placeholder
    long_question = "How do I reset the combination? " * 150  # ~4,800 characters
    users = page.locator(USER).count()
    page.fill("#rag-question textarea", long_question)
    page.click("#rag-ask")
    note = page.locator("#rag-box-note .rag-box-note")
    note.wait_for()
    assert f"limit is {MAX_QUESTION_CHARS:,}" in note.inner_text() and "still in the box" in note.inner_text()
    assert page.locator("#rag-question textarea").input_value() == long_question
    assert page.locator(USER).count() == users  # nothing was sent
    shot(page, site, "11_too_long_kept")
    # Shortened, it goes through and the note goes away.
    page.fill("#rag-question textarea", "How do I reset the combination?")
    page.click("#rag-ask")
    wait_answer_done(page)
    assert page.locator("#rag-box-note .rag-box-note").count() == 0


def test_document_content_never_makes_the_browser_fetch(page, site):
    listener = site["listener"]
    question = "How quickly does the Wren heater warm a room, and when does it switch off?"
    ask(page, question)
    bot = wait_answer_done(page)
    answer = site["recorder"].last(question)["result"].answer
    assert "wren_heater.md" in [s.source for s in answer.sources]
    shown = bot.inner_text() + page.locator("#rag-sources-card").inner_text()
    assert f"127.0.0.1:{listener.port}" in shown  # the payload is displayed as text ...
    assert page.locator("#rag-chatbot img[src*='127.0.0.1'], #rag-sources-card img").count() == 0  # ... not as images
    time.sleep(1.0)
    assert listener.requests == []
    # The CSP stops what escaping alone would not: a script-made image or request to another origin.
    response = page.request.get(site["url"])
    csp = response.headers.get("content-security-policy", "")
    assert "img-src 'self' data: blob:" in csp and "connect-src 'self'" in csp
    context, probe, _ = _open(page.context.browser, site)  # its own context: the attempts are the point here
    probe.evaluate("""port => { const img = new Image(); img.src = `http://127.0.0.1:${port}/csp-img.png`;
        document.body.appendChild(img); fetch(`http://127.0.0.1:${port}/csp-fetch`).catch(() => {}); }""",
                   listener.port)
    time.sleep(1.0)
    context.close()
    assert listener.requests == [], "the CSP let the page contact another origin"
    shot(page, site, "12_document_payload_as_text")


def test_every_visible_text_meets_wcag_aa(page, site):
    checked = assert_contrast(page, "fresh page")
    ask(page, "How do I reset the combination?")
    wait_answer_done(page)
    checked += assert_contrast(page, "answer with sources")
    ask(page, "What is the boiling point of water on Mars?")
    wait_answer_done(page)
    checked += assert_contrast(page, "refusal")
    assert checked > 40
    # "not cited" is its own text, separated from the file name for screen readers.
    flag = page.locator(".rag-src-flag")
    if flag.count():
        assert flag.first.text_content() == ", (not cited)"
        name = page.locator(".rag-src-head").filter(has=flag.first).first
        assert re.search(r"\.(pdf|md|txt),\s*\(not cited\)", name.text_content())
    shot(page, site, "13_contrast_checked")


def _upload(tab, paths: list[Path]) -> str:
    tab.locator("#rag-upload input[type=file]").set_input_files([str(p) for p in paths])
    tab.wait_for_selector("#rag-upload-report .rag-upload-report", timeout=60_000)
    return tab.locator("#rag-upload-report").inner_text()


def test_upload_reports_each_file_counts_right_and_leaves_no_temporary_copies(page, site, tmp_path):
    documents_before = int(page.locator("#rag-status-card .rag-stat .num").first.inner_text())
    good = tmp_path / "heron_pump.md"
    good.write_text("# Heron pump\n\nThe Heron garden pump needs a new gasket every 500 operating hours.\n",
                    encoding="utf-8")
    broken = make_truncated_pdf(tmp_path / "broken_report.pdf")
    report = _upload(page, [broken, good])
    head = page.locator("#rag-upload-report .rag-card-title .sub").inner_text()
    assert head == f"1 added, 1 not added · the index has {documents_before + 1} documents"
    assert "heron_pump.md: added" in report and page.locator("#rag-upload-report li.bad").count() == 1
    temp = site["root"] / "gradio-tmp"
    leftovers = [p.name for p in temp.rglob("*") if p.is_file() and p.name in ("heron_pump.md", "broken_report.pdf")]
    assert leftovers == [], f"gradio's temporary copies were kept: {leftovers}"
    shot(page, site, "14_upload_report")
    ask(page, "How often does the Heron pump need a new gasket?")
    wait_answer_done(page)
    assert page.locator("#rag-sources-card .rag-src-file").first.inner_text() == "heron_pump.md"


def test_an_upload_over_the_limit_is_refused_before_it_is_stored(site):
    import httpx

    big = b"a" * (1024 * 1024 + 10)  # the module's app allows 1 MB
    response = httpx.post(site["url"] + "gradio_api/upload", files={"files": ("big.txt", big)}, timeout=30)
    assert response.status_code == 413
    temp = site["root"] / "gradio-tmp"
    assert not [p for p in temp.rglob("big.txt")], "the over-size upload was stored"


def test_gradio_client_calls_the_chat_like_a_script(site, monkeypatch):
    from gradio_client import Client

    client = Client(site["url"], verbose=False)
    chat, sources_html, box, note, answer = client.predict("How do I reset the combination?", api_name="/chat")
    assert answer["sources"][0]["file"] == "orion_lock_guide.pdf" and answer["sources"][0]["page"] == 2
    assert "[1]" in answer["answer"] and not answer["refused"] and 1 in answer["cited"]
    *_, answer = client.predict("and the default code?", generator="extractive", temperature=0.4, top_p=0.8,
                                max_tokens=200, k=2, api_name="/chat")
    call = site["recorder"].last("and the default code?")
    assert call["retrieval"].k == 2 and call["generation"].temperature == pytest.approx(0.4)
    assert len(call["history"]) == 1 and answer["answer"] and not answer["error"]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    *_, answer = client.predict("How do I reset the combination?", generator="openai", api_name="/chat")
    assert answer["error"] and "OPENAI" in answer["error"]


def test_error_shows_in_the_chat(page, site, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    choose_generator(page, "openai")
    ask(page, "How do I reset the combination?")
    bot = wait_answer_done(page)
    assert bot.locator(".rag-error").count() == 1
    assert "The generator is not configured" in bot.inner_text()
    assert "Traceback" not in page.content()
    assert_contrast(page, "error notice")
    shot(page, site, "15_error")
