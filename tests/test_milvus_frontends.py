"""`rag chat` and the chat UI end to end on a Milvus Lite index (``milvus:///file.db#name``).

The index is real: two small documents (an English PDF, a Chinese text) ingested with the
default embedder into a Milvus Lite file. `rag chat` runs as its own process (Milvus Lite
serves one process per file, so this process lets go of the file first); the UI is the
Gradio app of rag.ui driven through its own event handlers, as gradio calls them.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import rag  # noqa: E402
from helpers_pdf import LIBRARY_ZH, LOCK_PAGES, make_pdf  # noqa: E402
from rag import milvus_store  # noqa: E402
from rag.prompts import PROMPTS_DIR  # noqa: E402
from rag.store import read_manifest  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pymilvus") is None or importlib.util.find_spec("milvus_lite") is None,
    reason="pymilvus or milvus-lite not installed: pip install 'rag-docs[milvus]'")

REFUSAL = yaml.safe_load((PROMPTS_DIR / "messages.yaml").read_text(encoding="utf-8"))["refusal"]
FERRY = ("Harbour ferry timetable. The night ferry to Stonehaven leaves pier 3 at 23:40 every Friday; "
         "tickets are sold on board only.")


@pytest.fixture(scope="module")
def milvus_index(tmp_path_factory, embedder) -> str:
    """A Milvus Lite index (a named collection set) of two real documents."""
    root = tmp_path_factory.mktemp("milvus_frontends")
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "orion_lock_guide.pdf", LOCK_PAGES)
    (docs / "library_zh.txt").write_text(LIBRARY_ZH, encoding="utf-8")
    uri = f"milvus://{root}/index.db#frontends"
    summary = rag.ingest([docs], uri, progress=False)
    assert summary.ok and summary.files == 2
    milvus_store.release(uri)
    yield uri
    milvus_store.release(uri)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _endpoint(app, name: str):
    for block_fn in app.fns.values():
        if block_fn.api_name == name or getattr(block_fn.fn, "__name__", "") == name:
            return block_fn.fn
    raise AssertionError(f"no event function {name}")


def test_rag_chat_on_milvus_answers_with_citations_and_refuses(milvus_index):
    milvus_store.release(milvus_index)  # Milvus Lite: the chat process must be the only one on the file
    rag_cli = os.path.join(os.path.dirname(sys.executable), "rag")
    questions = "How do I reset the combination?\nWhat is the boiling point of water on Mars?\n"
    done = subprocess.run([rag_cli, "chat", "-g", "extractive", "--index", milvus_index],
                          input=questions, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split("rag> ")[1:]
    answer, _, sources = first.partition("\nSources:\n")
    assert "hold the reset button" in answer and re.search(r"\[1\]", answer)
    assert re.search(r"\[1\] orion_lock_guide\.pdf p\.2\s+score", sources), sources
    assert REFUSAL["en"] in second and "Sources:" not in second
    assert "Traceback" not in done.stderr


def test_ui_on_milvus_shows_sources_from_the_engine_and_indexes_uploads(milvus_index, tmp_path):
    from rag.ui import create_app
    from rag.ui.app import document_token, find_document

    app = create_app(index=milvus_index, upload_dir=tmp_path / "up", feedback_path=tmp_path / "fb.jsonl",
                     generator="extractive")
    assert str(app.rag_settings["index"]) == milvus_index

    from rag.ui.render import render_status

    status = _text(render_status(milvus_index))  # the index panel names the engine, not a folder
    assert "Milvus" in status and milvus_index in status and "2documents" in status.replace(" ", "")

    chat = _endpoint(app, "chat")
    updates = list(chat("How do I reset the combination?", [], "extractive", "", 0.2, 0.9, 512, 5))
    messages, turns, sources_html, box, note, answer = updates[-1]
    assert not answer["refused"] and "[1]" in _text(messages[-1]["content"])
    indexed = {Path(path).name for path in read_manifest(milvus_index)["files"]}
    assert answer["sources"] and {s["file"] for s in answer["sources"]} <= indexed
    assert answer["sources"][0]["file"] == "orion_lock_guide.pdf" and answer["sources"][0]["page"] == 2
    assert "orion_lock_guide.pdf" in _text(sources_html) and "p. 2" in _text(sources_html)
    # the source card links the PDF page, served from the file the Milvus manifest names
    pdf_key = next(path for path in read_manifest(milvus_index)["files"] if path.endswith(".pdf"))
    assert document_token(pdf_key) in sources_html
    assert find_document(milvus_index, document_token(pdf_key)) == Path(pdf_key)

    refused = list(chat("What is the boiling point of water on Mars?", [], "extractive", "", 0.2, 0.9, 512, 5))[-1]
    assert refused[-1]["refused"] and refused[-1]["sources"] == []

    # an upload is ingested into the Milvus collection, and the next question finds it
    upload = tmp_path / "ferry.txt"
    upload.write_text(FERRY, encoding="utf-8")
    report, status_after, _ = _endpoint(app, "upload")([str(upload)], progress=lambda *a, **k: None)
    assert "ferry.txt" in _text(report) and "3documents" in _text(status_after).replace(" ", "")
    assert any(path.endswith("ferry.txt") for path in read_manifest(milvus_index)["files"])
    *_, answer = list(chat("When does the night ferry to Stonehaven leave?", [], "extractive", "",
                           0.2, 0.9, 512, 5))[-1]
    assert not answer["refused"] and answer["sources"][0]["file"] == "ferry.txt"
    assert "23:40" in answer["answer"]
