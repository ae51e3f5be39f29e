"""Untrusted input: documents (and question files) may be malformed or hostile. One bad
file costs one line in the report and the rest goes in; links do not lead ingest out
of the folder; limits stop a huge file early; leftovers of killed ingests go away.

The ``hash`` embedder (instant, no semantics) keeps these ingests fast: none of them
is about what the text means."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_pdf import make_compression_bomb_pdf, make_pdf

from rag.cli import main
from rag.errors import QuestionFileError
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


# --- settings from the command line --------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "NaN", "inf"])
def test_min_score_nan_is_rejected_by_ask(tmp_path, value):
    """NaN compares false with everything: it would silently turn refusal off."""
    result = run("ask", "What is LoRA?", "-g", "extractive", "--index", tmp_path / "none", "--min-score", value)
    assert result.exit_code == 2, result.output
    assert "min_score" in result.output and "finite" in result.output
