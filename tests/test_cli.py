"""`rag ask` and `rag chat` on the real corpus indexes: output, --json, exit codes.

Exit codes (rag/cli.py): 0 success, 2 usage error, 3 index or model problem."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from rag.prompts import PROMPTS_DIR
from rag.cli import main

REFUSAL = yaml.safe_load((PROMPTS_DIR / "messages.yaml").read_text(encoding="utf-8"))["refusal"]
CHATBOTS = "Besides ChatGPT, which platforms are mentioned for building chatbots without complex programming?"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_GENERATOR", "RAG_MODEL", "RAG_MIN_SCORE",
                 "RAG_INDEX_DIR", "RAG_PROMPTS_DIR", "RAG_EMBED_MODEL"):
        monkeypatch.delenv(name, raising=False)


PAGES = {
    "chatbots.pdf": [
        "Conversational AI refers to technology that allows machines to understand and respond to human "
        "language. These systems are designed to have interactive conversations, like a chat with a virtual "
        "assistant. ChatGPT is developed by OpenAI and uses natural language processing.",
        "Choosing a platform. The first step is to pick a platform where you can build your conversational AI. "
        "OpenAI, which developed ChatGPT, offers a web-based interface that is easy to use. There are also other "
        "platforms like Dialogflow or Rasa that let you create chatbots without the need for complex programming.",
        "Parameters of the API. Temperature controls the randomness of the output: lower values make the text "
        "more focused. Max tokens limits the length of the response, and stop sequences end the generation.",
    ],
    "metrics.pdf": [
        "Accuracy is the share of correct predictions. On imbalanced labels accuracy should not be used alone.",
        "Precision and recall trade off against each other when the decision threshold moves. At a threshold "
        "of 0.4 the Titanic logistic regression reached a recall of 0.8197.",
    ],
}


@pytest.fixture(scope="module")
def pdf_index(embedder, tmp_path_factory):
    """Two small real PDFs (fpdf2) through the real ingest: answers with pages in seconds.
    (The shared corpus PDFs take a minute to ingest; test_ingest covers their pages.)"""
    from helpers_pdf import make_pdf
    from rag.ingest.pipeline import ingest

    docs = tmp_path_factory.mktemp("cli_pdfs")
    for name, pages in PAGES.items():
        make_pdf(docs / name, pages)
    index = docs.parent / (docs.name + "_index")
    summary = ingest([docs], index, embed_model="use-multilingual", progress=False)
    assert summary.ok
    return index


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def test_ask_prints_the_answer_and_sources_with_file_and_page(pdf_index):
    result = run("ask", CHATBOTS, "--generator", "extractive", "--index", pdf_index, "-k", "3")
    assert result.exit_code == 0, result.output
    answer, _, sources = result.stdout.partition("\nSources:\n")
    assert "Dialogflow or Rasa" in answer and re.search(r"\[\d\]", answer)
    lines = [line for line in sources.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3
    for number, line in enumerate(lines, start=1):
        assert re.match(rf"\s+\[{number}\] (chatbots|metrics)\.pdf p\.[1-3]\s+score -?\d+\.\d{{4}} \(cos ", line), line
    assert lines[0].lstrip().startswith("[1] chatbots.pdf p.2 ")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    assert cited <= set(range(1, len(lines) + 1))


def test_ask_json_output_parses(pdf_index):
    result = run("ask", CHATBOTS, "-g", "extractive", "--index", pdf_index, "--json", "-k", "2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["refused"] is False and "Dialogflow" in data["text"]
    assert 1 <= len(data["sources"]) <= 2
    assert data["sources"][0]["source"] == "chatbots.pdf" and data["sources"][0]["page"] == 2
    assert all(isinstance(s["page"], int) for s in data["sources"])
    assert data["question"] == CHATBOTS and data["generator"] == "extractive"
    assert set(data["timings"]) >= {"retrieval", "total"}


def test_ask_refusal_in_the_question_language(corpus_txt_index):
    result = run("ask", "오늘 서울의 날씨는 어떤가요?", "-g", "extractive", "--index", corpus_txt_index.path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == REFUSAL["ko"]  # and no Sources list


def test_ask_puts_the_low_confidence_note_above_the_answer(corpus_txt_index, tmp_path):
    # Near-topic: the notebook fine-tunes with Adam, but never gives its betas. The installed
    # command, run from another folder, as a user runs it.
    rag = os.path.join(os.path.dirname(sys.executable), "rag")
    done = subprocess.run([rag, "ask", "Quali beta dell'ottimizzatore Adam sono stati usati nel fine-tuning?", "-g", "extractive",
                           "--index", str(corpus_txt_index.path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, rest = done.stdout.split("\n", 1)
    assert re.fullmatch(r"\(Affidabilità bassa: .+ Punteggio 0\.\d\d\.\)", first), first
    assert "[1]" in rest and "\nSources:\n" in rest
    # --caution-score sets the threshold; 0 gives no note.
    quiet = run("ask", "Quali beta dell'ottimizzatore Adam sono stati usati nel fine-tuning?", "-g", "extractive",
                "--index", corpus_txt_index.path, "--caution-score", "0", "--json")
    data = json.loads(quiet.stdout)
    assert data["confidence"] == "high" and data["note"] == ""


def test_index_from_rag_index_dir(corpus_txt_index, monkeypatch):
    monkeypatch.setenv("RAG_INDEX_DIR", str(corpus_txt_index.path))
    result = run("ask", "At which URL was the local scoring service hosted?", "-g", "extractive")
    assert result.exit_code == 0, result.output
    assert "localhost:6789/score" in result.output and "002_57ffee6eaed0676d.txt" in result.output


@pytest.mark.parametrize("args,message", [
    (["ask", "", "-g", "extractive"], "question is empty"),
    (["ask", "   ", "-g", "extractive"], "question is empty"),
    (["ask"], "Missing argument"),
    (["ask", "What is LoRA?", "-g", "extractive", "--temperature", "5"], "temperature=5.0"),
    (["ask", "What is LoRA?", "-g", "extractive", "--top-p", "0"], "top_p=0.0"),
    (["ask", "What is LoRA?", "-g", "extractive", "-k", "0"], "k=0"),
    (["ask", "What is LoRA?", "-g", "extractive", "--temperature", "hot"], "not a valid float"),
    (["ask", "What is LoRA?", "-g", "nope"], "unknown generator 'nope'"),
    (["ask", "What is LoRA?", "--no-such-option"], "No such option"),
])
def test_usage_errors_exit_2(corpus_txt_index, args, message):
    result = run(*args, "--index", corpus_txt_index.path) if args[1:] else run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_question_is_one_line_even_with_json(corpus_txt_index):
    result = run("ask", " ", "--json", "--index", corpus_txt_index.path)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: the question is empty: type a question about your documents\n"


def test_missing_index_exits_3(tmp_path):
    result = run("ask", "What is LoRA?", "-g", "extractive", "--index", tmp_path / "none")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: no index at") and "rag ingest" in result.output


def test_mismatched_or_corrupt_index_exits_3(corpus_txt_index, index_copy):
    copy = index_copy(corpus_txt_index)
    (copy / (copy / "CURRENT").read_text().strip() / "chunks.jsonl").write_text("{not json\n")
    result = run("ask", "What is LoRA?", "-g", "extractive", "--index", copy)
    assert result.exit_code == 3 and "--rebuild" in result.output


def test_openai_without_configuration_exits_3(corpus_txt_index):
    result = run("ask", "What is LoRA?", "-g", "openai", "--index", corpus_txt_index.path)
    assert result.exit_code == 3 and "OPENAI_API_KEY" in result.output


def test_the_installed_command_exits_3_without_an_index(tmp_path):
    rag = os.path.join(os.path.dirname(sys.executable), "rag")
    done = subprocess.run([rag, "ask", "What is LoRA?", "-g", "extractive", "--index", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("error: no index at") and "Traceback" not in done.stderr
    usage = subprocess.run([rag, "ask"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


def test_chat_answers_two_questions_then_quits_on_eof(corpus_txt_index):
    questions = "What pretraining objective does RoBERTa use?\nAnd XLNet?\n"
    result = run("chat", "-g", "extractive", "--index", corpus_txt_index.path, input=questions)
    assert result.exit_code == 0, result.output
    assert result.output.count("rag> ") == 2
    assert result.output.count("\nSources:\n") == 2
    assert result.output.count("you> ") == 3  # the third prompt meets EOF
    first, second = result.output.split("rag> ")[1:]
    assert re.search(r"\[\d\]", first) and "004_7fdd1fabdabed2dd.txt" in second


def test_chat_empty_line_quits_and_bad_question_is_reported(corpus_txt_index):
    long_question = "why " * 1200
    result = run("chat", "-g", "extractive", "--index", corpus_txt_index.path,
                 input=f"{long_question}\nWhat is the boiling point of water on Mars?\n\nnever asked\n")
    assert result.exit_code == 0, result.output
    assert "more than 4000" in result.output  # reported, the chat goes on
    assert REFUSAL["en"] in result.output and "never asked" not in result.output.split("rag> ")[-1]


def test_chat_missing_index_exits_3(tmp_path):
    result = run("chat", "-g", "extractive", "--index", tmp_path / "none", input="What is LoRA?\n")
    assert result.exit_code == 3 and "no index at" in result.output


def test_ingest_option_defaults_are_the_chunkers_defaults():
    from rag.ingest.chunking import ChunkerSettings
    from rag.cli import main

    params = {p.name: p.default for p in main.commands["ingest"].params}
    defaults = ChunkerSettings()
    assert (params["chunk_size"], params["chunk_overlap"], params["window_chars"]) == \
        (defaults.chunk_size, defaults.chunk_overlap, defaults.window_chars)


def test_a_first_ingest_where_every_file_fails_reports_them_and_makes_no_index(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "empty.txt").write_bytes(b"")
    (docs / "data.txt").write_bytes(bytes(range(256)) * 4)

    result = run("ingest", docs, "--index", index, "--quiet")

    assert result.exit_code == 1, result.output
    assert "empty.txt: the file is empty" in result.output and "data.txt: the file looks binary" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    asked = run("ask", "anything?", "--index", index, "--generator", "extractive")
    assert asked.exit_code == 3 and "no index at" in asked.output and "rag ingest" in asked.output


MANUAL = """# Widget Manual

## Installation

Run `pip install frobnicator`, then set FROB_HOME to /opt/frob.

## Calibration

The calibration interval is 42 days. Calibration must be performed by a certified technician.
"""


@pytest.fixture(scope="module")
def manual_index(embedder, tmp_path_factory):
    from rag.ingest.pipeline import ingest

    docs = tmp_path_factory.mktemp("manual")
    (docs / "manual.md").write_text(MANUAL, encoding="utf-8")
    index = docs.parent / (docs.name + "_index")
    assert ingest([docs], index, embed_model="use-multilingual", progress=False).ok
    return index


def test_sources_name_the_section_they_come_from(manual_index):
    result = run("ask", "How often must the widget be calibrated?", "-g", "extractive", "--index", manual_index)
    assert result.exit_code == 0, result.output
    assert "42 days" in result.stdout
    assert re.search(r"\[1\] manual\.md § Widget Manual > Calibration  score ", result.stdout), result.stdout


def test_ask_quiet_prints_the_answer_only(manual_index):
    result = run("ask", "How often must the widget be calibrated?", "-g", "extractive", "--index", manual_index, "-q")
    assert result.exit_code == 0, result.output
    assert "42 days" in result.stdout and "Sources:" not in result.stdout and "score" not in result.stdout
    assert result.stdout.strip() == json.loads(run("ask", "How often must the widget be calibrated?", "-g",
                                                   "extractive", "--index", manual_index, "--json").stdout)["text"]


def test_a_follow_up_is_answered_not_the_question_before_it(manual_index):
    from rag.qa import QA

    qa = QA(manual_index, generator="extractive")
    first = qa.ask("What is the calibration interval?")
    assert "42 days" in first.text
    for follow_up in ("Who performs the calibration?", "and who performs it?"):
        answer = qa.ask(follow_up, history=[("What is the calibration interval?", first.text)])
        assert "certified technician" in answer.text, (follow_up, answer.text)
