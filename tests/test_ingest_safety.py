"""Untrusted input: documents (and question files) may be malformed or hostile. One bad
file costs one line in the report and the rest goes in; links do not lead ingest out
of the folder; limits stop a huge file early; leftovers of killed ingests go away.

The ``hash`` embedder (instant, no semantics) keeps these ingests fast: none of them
is about what the text means."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_pdf import make_compression_bomb_pdf, make_pdf

from rag.cli import main
from rag.errors import DocumentError, QuestionFileError
from rag.evaluation.questions import load_questions


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


# --- question files ----------------------------------------------------------------------------


def yaml_alias_bomb(path: Path, depth: int = 8) -> Path:
    """A "billion laughs" YAML: each level lists the previous one nine times (9**8 strings)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghijk"[: depth - 1]:
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    lines.append(f"questions: [{{question: *{previous}}}]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_yaml_alias_bomb_in_a_question_file_is_rejected_at_once(tmp_path):
    path = yaml_alias_bomb(tmp_path / "bomb.yaml")
    started = time.process_time()
    with pytest.raises(QuestionFileError) as caught:
        load_questions(path)
    assert time.process_time() - started < 1.0  # it cost 16-32 s of CPU before
    assert f"{path}:2: invalid YAML (aliases (*name) are not accepted in question files" in str(caught.value)


def test_yaml_anchors_without_aliases_still_load(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("questions:\n  - &first {id: q1, question: \"What is LoRA?\"}\n", encoding="utf-8")
    assert [q.question for q in load_questions(path)] == ["What is LoRA?"]


def test_eval_command_reports_the_alias_bomb_with_exit_2(tmp_path):
    path = yaml_alias_bomb(tmp_path / "bomb.yaml")
    result = run("eval", path, "--index", tmp_path / "none", "-g", "extractive")
    assert result.exit_code == 2, result.output
    assert "aliases (*name) are not accepted" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name, text, message", [
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep.yaml", "questions: " + "[" * 5_000 + "]" * 5_000 + "\n", "nested too deeply"),
    ("big.csv", 'question,reference\n"What is LoRA?","' + "x" * 200_000 + '"\n', "bad CSV"),
])
def test_hostile_question_files_get_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QuestionFileError) as caught:
        load_questions(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_a_deeply_nested_json_line_is_one_bad_row(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "What is LoRA?"}\n{"question": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
                    encoding="utf-8")
    questions = load_questions(path)
    assert [q.question for q in questions] == ["What is LoRA?"]
    assert [str(p) for p in questions.problems] == ["line 2: invalid JSON (nested too deeply)"]


# --- settings from the command line --------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "NaN", "inf"])
def test_min_score_nan_is_rejected_by_ask(tmp_path, value):
    """NaN compares false with everything: it would silently turn refusal off."""
    result = run("ask", "What is LoRA?", "-g", "extractive", "--index", tmp_path / "none", "--min-score", value)
    assert result.exit_code == 2, result.output
    assert "min_score" in result.output and "finite" in result.output


# --- one bad file never stops an ingest ------------------------------------------------------------

GOOD = "LoRA is a low-rank adaptation method: it trains two small matrices per layer."


def ingest_cli(*args):
    return run("ingest", *args, "--embed-model", "hash", "--quiet")


def good_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    make_pdf(folder / "good.pdf", ["A real PDF page about FAISS and inner products."])
    return folder


def indexed_sources(index: Path) -> list[str]:
    from rag.store import load_index

    return sorted({chunk.source for chunk in load_index(index).chunks})


def test_malformed_notebook_and_compression_bomb_fail_alone(tmp_path):
    docs = good_docs(tmp_path / "docs")
    (docs / "cells.ipynb").write_text(json.dumps({"cells": "notalist"}), encoding="utf-8")
    make_compression_bomb_pdf(docs / "bomb.pdf", expands_to_mb=100)

    result = ingest_cli(docs, "--index", tmp_path / "index")

    assert result.exit_code == 1, result.output  # some inputs failed, the rest was done
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    failed = [line for line in result.output.splitlines() if line.lstrip().startswith("failed")]
    assert len(failed) == 2
    assert any("cells.ipynb: not a valid Jupyter notebook" in line for line in failed)
    assert any("bomb.pdf: a compressed stream of the PDF expands beyond 75 MB" in line for line in failed)
    assert indexed_sources(tmp_path / "index") == ["good.pdf", "good.txt"]


def test_a_file_over_the_size_limit_fails_before_it_is_read(tmp_path):
    docs = good_docs(tmp_path / "docs")
    with open(docs / "huge.txt", "wb") as huge:  # 200 MB, sparse: costs no disk and no time
        huge.truncate(200 * 1024 * 1024)

    result = ingest_cli(docs, "--index", tmp_path / "index")

    assert result.exit_code == 1, result.output
    assert "huge.txt: the file is 200.0 MB, over the limit of 100 MB per file" in result.output
    assert indexed_sources(tmp_path / "index") == ["good.pdf", "good.txt"]
    # the limit is a setting: raised, the file is read (and found to be zeros: binary)
    again = ingest_cli(docs, "--index", tmp_path / "index", "--max-file-mb", "300")
    assert "huge.txt: the file looks binary" in again.output


def test_limits_from_the_command_line_reach_the_loaders(tmp_path):
    docs = good_docs(tmp_path / "docs")
    make_pdf(docs / "long.pdf", [f"Page {n} of a long manual." for n in range(1, 8)])
    result = ingest_cli(docs, "--index", tmp_path / "index", "--max-pages", "5")
    assert "long.pdf: the PDF has 7 pages, over the limit of 5" in result.output
    bad = ingest_cli(docs, "--index", tmp_path / "index", "--max-chars", "0")
    assert bad.exit_code == 2 and "--max-chars=0: give a positive whole number" in bad.output


def test_a_crash_while_chunking_one_file_fails_that_file_only(tmp_path, monkeypatch):
    """Glue test: whatever a step after loading raises stays that file's failure."""
    import rag.ingest.pipeline as pipeline
    import rag.ingest.run as run  # where the run chunks each file

    real = run.chunk_records

    def chunk_records(records, *, path, **kw):
        if path.endswith("good.txt"):
            raise IndexError("list index out of range")
        return real(records, path=path, **kw)

    monkeypatch.setattr(run, "chunk_records", chunk_records)
    summary = pipeline.ingest([good_docs(tmp_path / "docs")], tmp_path / "index", embed_model="hash", progress=False)
    assert (summary.added, summary.failed) == (1, 1)
    [failed] = [r for r in summary.reports if r.status == "failed"]
    assert failed.reason == "could not be split into chunks (IndexError: list index out of range)"


# --- symbolic links ------------------------------------------------------------------------------------


def test_links_out_of_the_folder_are_skipped_unless_asked(tmp_path):
    docs = good_docs(tmp_path / "docs")
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("The vault code is 4711.", encoding="utf-8")
    (elsewhere / "more.txt").write_text("More private notes.", encoding="utf-8")
    os.symlink(elsewhere / "secret.txt", docs / "secret.txt")
    os.symlink(elsewhere, docs / "private_folder")
    os.symlink(docs / "good.txt", docs / "alias.txt")  # inside the folder: fine

    result = ingest_cli(docs, "--index", tmp_path / "index")

    assert result.exit_code == 0, result.output  # skipped is not failed
    assert (f"skipped  {docs / 'secret.txt'}: a link to {elsewhere / 'secret.txt'}, outside {docs}: "
            f"not followed (--follow-links takes it)") in result.output
    assert "private_folder: a link to the folder" in result.output
    assert indexed_sources(tmp_path / "index") == ["alias.txt", "good.pdf", "good.txt"]

    followed = ingest_cli(docs, "--index", tmp_path / "index", "--follow-links")
    assert followed.exit_code == 0, followed.output
    assert "secret.txt" in indexed_sources(tmp_path / "index")
    assert "more.txt" not in indexed_sources(tmp_path / "index")  # folders behind links are never walked


# --- the report, the lock, leftovers -------------------------------------------------------------------


def test_a_newline_in_a_file_name_does_not_split_the_report_line(tmp_path):
    from rag.ingest.pipeline import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "two\nlines.txt").write_text(GOOD, encoding="utf-8")
    (docs / "forged\n   failed  x.txt").write_bytes(b"")  # empty: it fails, and its name tries to forge a line

    result = run("ingest", docs, "--index", tmp_path / "index", "--embed-model", "hash", "--quiet")

    assert result.output == f"   failed  {docs}/forged\\n   failed  x.txt: the file is empty: nothing to index\n"
    summary = ingest([docs], tmp_path / "index", embed_model="hash", progress=False)
    [added] = [r for r in summary.reports if r.status == "unchanged"]
    assert added.path == f"{docs}/two\nlines.txt"  # the real name, for programs
    assert added.line() == f"unchanged  {docs}/two\\nlines.txt"  # one line, for people


def test_a_second_ingest_says_it_is_waiting_for_the_lock(tmp_path):
    from filelock import FileLock

    from rag.errors import RagError
    from rag.ingest.pipeline import ingest

    docs, index = good_docs(tmp_path / "docs"), tmp_path / "index"
    index.mkdir()
    messages = []
    with FileLock(str(index / ".lock")):  # another ingest is writing
        with pytest.raises(RagError, match="another ingest is writing"):
            ingest([docs], index, embed_model="hash", progress=False, lock_timeout=0.3, on_wait=messages.append)
    assert messages == [f"waiting for another ingest of this index… ({index})"]
    # free: no message
    messages.clear()
    assert ingest([docs], index, embed_model="hash", progress=False, on_wait=messages.append).ok
    assert messages == []


def test_leftovers_of_a_killed_ingest_are_removed_by_the_next_one(tmp_path):
    docs, index = good_docs(tmp_path / "docs"), tmp_path / "index"
    assert ingest_cli(docs, "--index", index).exit_code == 0
    (index / ".staging-v-20260101T000000-abcdef").mkdir()  # as kill -9 during a write leaves them
    (index / ".staging-v-20260101T000000-abcdef" / "vectors.npy").write_bytes(b"half")
    (index / ".CURRENT.v-20260101T000000-abcdef").write_text("v-20260101T000000-abcdef")

    result = ingest_cli(docs, "--index", index)  # nothing changed: no new version is written

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in index.iterdir() if p.name.startswith(".")) == [".lock"]


def test_progress_names_the_file_being_loaded_and_what_takes_long(tmp_path):
    """A big file used to sit at "Loading 0/1" with nothing else said."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.txt").write_text("The adapter trains two small matrices per layer.\n" * 6_000, encoding="utf-8")

    result = run("ingest", docs, "--index", tmp_path / "index", "--embed-model", "hash")

    assert result.exit_code == 0, result.output
    assert "big.txt (0.3 MB)" in result.output  # on the Loading bar, while it is read
    assert "big.txt: chunking 293,999 characters" in result.output


def test_a_link_planted_as_the_lock_file_is_refused_not_followed(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me", encoding="utf-8")
    index = tmp_path / "index"
    index.mkdir()
    os.symlink(precious, index / ".lock")

    result = ingest_cli(good_docs(tmp_path / "docs"), "--index", index)

    assert result.exit_code == 3, result.output
    assert one_line_error(result.output) == (f"error: cannot lock {index / '.lock'} (Too many levels of symbolic "
                                             f"links): it is a symbolic link: remove it")
    assert precious.read_text(encoding="utf-8") == "do not truncate me"


def one_line_error(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.strip()]
    return line


def test_a_control_character_in_a_reason_is_escaped_too():
    from rag.ingest.pipeline import FileReport

    line = FileReport("/docs/a.txt", "failed", reason="bad\nforged line").line()
    assert line == "   failed  /docs/a.txt: bad\\nforged line"


# --- text crafted to make a regular expression backtrack -----------------------------------------------


def test_a_heading_padded_with_unicode_spaces_loads_at_once(tmp_path):
    """"# a" + 3000 em spaces + "b" took minutes in the heading pattern (cubic backtracking)."""
    from rag.ingest.loaders import load_document

    path = tmp_path / "padded.md"
    path.write_text("# a" + "\u2003" * 3000 + "b\n\nBody text.\n", encoding="utf-8")
    started = time.process_time()
    [record] = load_document(path)
    assert time.process_time() - started < 2.0
    assert record.section.startswith("a") and record.section.endswith("b")


def test_a_very_long_word_in_a_pdf_page_is_cleaned_at_once():
    """A 50 000-letter "word" took ~30 s per pattern in the de-hyphenation step (quadratic)."""
    from rag.ingest.cleaning import clean_text

    lines = ["x" * 50_000 + " tail", "wrap-", "ping continues here and there", "and", "more lines"] * 2
    started = time.process_time()
    cleaned = clean_text("\n".join(lines), from_pdf=True)
    assert time.process_time() - started < 2.0
    assert cleaned.count("x" * 50_000) == 2


def test_a_very_long_token_before_a_lone_period_splits_at_once():
    """split_sentences (used by chunking) retried every position of the token: 20 000
    characters took 19 s."""
    from rag.text import split_sentences

    started = time.process_time()
    sentences = split_sentences("x" * 50_000 + " . Dr. Ada Moreno leads it. Next one.")
    assert time.process_time() - started < 2.0
    assert sentences[1:] == ["Dr. Ada Moreno leads it.", "Next one."]


def test_a_pdf_page_of_thousands_of_wrapped_lines_is_joined_at_once():
    """Each join rebuilt and re-measured the whole paragraph: 5000 lines took 290 s."""
    from rag.ingest.cleaning import clean_text

    page = "\n".join(["a wrapped line of one endless para-"] + ["graph that goes on and on"] * 5000)
    started = time.process_time()
    cleaned = clean_text(page, from_pdf=True)
    assert time.process_time() - started < 5.0
    assert cleaned.startswith("a wrapped line of one endless para-graph that goes on and on graph that")
    assert "\n" not in cleaned


def test_a_named_pipe_in_the_folder_is_skipped_not_waited_on(tmp_path):
    """Opening a FIFO blocks until someone writes: the ingest hung on it forever."""
    import threading

    from rag.ingest.pipeline import ingest

    docs = good_docs(tmp_path / "docs")
    os.mkfifo(docs / "pipe.txt")
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(summary=ingest(
        [docs], tmp_path / "index", embed_model="hash", progress=False)))
    worker.start()
    worker.join(60)
    if worker.is_alive():  # the bug: release the blocked reader, then fail
        with open(docs / "pipe.txt", "wb"):
            pass
        worker.join()
        pytest.fail("the ingest blocked on a named pipe")
    [pipe] = [r for r in done["summary"].reports if r.path.endswith("pipe.txt")]
    assert (pipe.status, pipe.reason) == ("skipped", "not a regular file (a pipe, socket or device)")
    assert done["summary"].added == 2


def test_a_device_is_refused_even_when_links_are_followed(tmp_path):
    """/dev/zero reports size 0 and never ends: reading it filled the memory."""
    from rag.ingest.loaders import load_document

    os.symlink("/dev/zero", tmp_path / "zeros.txt")
    with pytest.raises(DocumentError, match="not a regular file"):
        load_document(tmp_path / "zeros.txt")
    docs = good_docs(tmp_path / "docs")
    os.symlink("/dev/zero", docs / "zeros.txt")
    result = ingest_cli(docs, "--index", tmp_path / "index", "--follow-links")
    assert result.exit_code == 0, result.output
    assert "zeros.txt: not a regular file (a pipe, socket or device)" in result.output


def test_an_index_path_that_is_a_file_gets_one_line_and_the_file_is_kept(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("my notes", encoding="utf-8")
    for index in (afile, afile / "sub"):
        result = ingest_cli(good_docs(tmp_path / "docs"), "--index", index)
        assert result.exit_code == 3, result.output
        assert one_line_error(result.output).startswith(f"error: cannot create the index folder {index} (")
        assert "--index" in result.output and "Traceback" not in result.output
    asked = run("ask", "What does LoRA train?", "-g", "extractive", "--index", afile)
    assert asked.exit_code == 3, asked.output
    assert one_line_error(asked.output) == (f"error: index at {afile} is unreadable (it is a file, not an index "
                                            "folder): give --index (or RAG_INDEX_DIR) the index folder; "
                                            "`rag ingest` creates a new one")
    assert afile.read_text(encoding="utf-8") == "my notes"


def test_progress_written_to_a_log_is_plain_lines(tmp_path):
    """`rag ingest … 2> ingest.log`: no carriage-return frames or cursor codes in the log."""
    rag = os.path.join(os.path.dirname(sys.executable), "rag")
    log = tmp_path / "ingest.log"
    with open(log, "w", encoding="utf-8") as stderr:
        done = subprocess.run([rag, "ingest", str(good_docs(tmp_path / "docs")), "--index", str(tmp_path / "index"),
                               "--embed-model", "hash"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                              timeout=300)
    assert done.returncode == 0, log.read_text(encoding="utf-8")
    text = log.read_text(encoding="utf-8")
    assert "\r" not in text and "\x1b" not in text
    assert re.search(r"^Loading: 100%.*2/2", text, re.MULTILINE), text
    assert re.search(r"^Embedding: 100%.*chunk/s\]$", text, re.MULTILINE), text
    assert len(re.findall(r"^Embedding: 100%", text, re.MULTILINE)) == 1, text  # not again at close
    assert "added" in done.stdout


def test_a_bar_redrawn_at_close_with_a_new_rate_is_one_line_in_a_log():
    import io

    from rag.progress import _Lines

    log = io.StringIO()
    lines = _Lines(log)
    for frame in ("\rLoading:   0%|          | 0/5 [00:00<?, ?file/s]",
                  "\rLoading:   0%|          | 0/5 [00:07<?, ?file/s, big.pdf (0.3 MB)]",  # new: the file
                  "\rEmbedding: 100%|##########| 143/143 [00:05<00:00, 26.61chunk/s]",
                  "\rEmbedding: 100%|##########| 143/143 [00:05<00:00, 26.60chunk/s]\n"):  # close: the rate only
        lines.write(frame)
    assert log.getvalue().splitlines() == [
        "Loading:   0%|          | 0/5 [00:00<?, ?file/s]",
        "Loading:   0%|          | 0/5 [00:07<?, ?file/s, big.pdf (0.3 MB)]",
        "Embedding: 100%|##########| 143/143 [00:05<00:00, 26.61chunk/s]"]


def test_an_embedding_model_from_the_environment_that_the_index_does_not_use_is_named(tmp_path, monkeypatch):
    docs = good_docs(tmp_path / "docs")
    assert ingest_cli(docs, "--index", tmp_path / "index").exit_code == 0
    (docs / "more.txt").write_text("FAISS ranks by inner product.", encoding="utf-8")
    monkeypatch.setenv("RAG_EMBED_MODEL", "minilm")
    result = run("ingest", docs, "--index", tmp_path / "index")
    assert result.exit_code == 0, result.output
    assert (f"warning: RAG_EMBED_MODEL=minilm is not used: {tmp_path / 'index'} was built with 'hash'; "
            "add --rebuild to embed everything again with 'minilm'") in result.stderr
    assert "added 1" in result.stdout
