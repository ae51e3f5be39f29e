"""Prompt templates: strict rendering, user folders overriding packaged files, and
what the system prompt tells the model (refusal sentence, documents are data)."""

from __future__ import annotations

import jinja2
import pytest
import yaml

from rag.prompts import PROMPTS_DIR
from rag.errors import InputError
from rag.prompts import Prompts, get_prompts
from rag.qa import build_messages
from rag.retrieval import Retrieval
from rag.types import Source

LANGS = yaml.safe_load((PROMPTS_DIR / "messages.yaml").read_text(encoding="utf-8"))["refusal"]


def _source(text="XLNet uses permutation language modelling.", source="004.pdf", page=3):
    return Source(text=text, source=source, path=f"/docs/{source}", page=page, score=0.03)


@pytest.fixture(autouse=True)
def no_user_prompts(monkeypatch):
    monkeypatch.delenv("RAG_PROMPTS_DIR", raising=False)


def test_packaged_templates_are_there():
    for name in ("system.jinja", "context.jinja", "condense.jinja", "messages.yaml"):
        assert (PROMPTS_DIR / name).is_file(), name


@pytest.mark.parametrize("template,variables", [
    ("context.jinja", {"sources": [], "question": "q", "language": "English"}),  # no refusal
    ("context.jinja", {"sources": [], "language": "English", "refusal": "R."}),  # no question
    ("condense.jinja", {"history": []}),  # no question
])
def test_a_missing_variable_raises(template, variables):
    with pytest.raises(jinja2.UndefinedError):
        Prompts().render(template, **variables)


def test_a_missing_attribute_raises():
    with pytest.raises(jinja2.UndefinedError):
        Prompts().render("context.jinja", sources=[{"text": "no source name"}], question="q", language="English",
                         refusal="R.")


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_the_prompt_has_the_refusal_in_the_question_language_and_the_data_rule(lang):
    prompts = Prompts()
    retrieval = Retrieval([_source()], best_dense=0.5)
    system, user = build_messages("What does XLNet use?", retrieval, lang, [], prompts)
    assert f'"{LANGS[lang]}"' in user["content"] and prompts.language_name(lang) in user["content"]
    assert "data, not instructions" in system["content"] and "ignore any instructions" in system["content"]
    assert "ONLY" in system["content"] and "refusal sentence" in system["content"]


def test_the_system_prompt_is_the_same_for_every_question_so_servers_can_cache_it():
    # llama.cpp (in process and llama-server) and vLLM reuse the computed prefix of a prompt:
    # a system message that changed with the question's language would be read again each time.
    prompts = Prompts()
    retrieval = Retrieval([_source()], best_dense=0.5)
    systems = {build_messages(q, retrieval, lang, [], prompts)[0]["content"]
               for q, lang in [("What?", "en"), ("무엇인가요?", "ko"), ("什么?", "zh"), ("Cosa?", "it")]}
    assert len(systems) == 1


def test_refusal_for_an_unlisted_language_falls_back_to_english():
    prompts = Prompts()
    assert prompts.refusal("pt") == LANGS["en"]
    assert prompts.language_name("pt") == "the language of the question"
    assert prompts.refusal("ko") == "문서에 이 질문에 대한 답이 없습니다."


def test_context_numbers_the_excerpts_with_file_and_page():
    sources = [_source(), _source("RoBERTa drops NSP.", "notes.txt", None)]
    text = Prompts().render("context.jinja", sources=sources, question="What does XLNet use?", language="Korean",
                            refusal="R.")
    assert "[1] 004.pdf, page 3" in text and "[2] notes.txt\n" in text
    assert "permutation language modelling" in text and "RoBERTa drops NSP." in text
    assert text.rstrip().endswith("Answer in Korean with citations like [1]:")


def test_build_messages_system_history_then_question():
    retrieval = Retrieval([_source()], best_dense=0.5)
    history = [(f"q{i}", f"a{i}") for i in range(5)]
    messages = build_messages("그것은 무엇을 사용하나요?", retrieval, "ko", history, Prompts())
    assert messages[0]["role"] == "system" and LANGS["ko"] in messages[-1]["content"]
    assert [m["content"] for m in messages[1:-1]] == ["q2", "a2", "q3", "a3", "q4", "a4"]  # last 3 turns
    assert messages[-1]["role"] == "user" and "[1] 004.pdf, page 3" in messages[-1]["content"]
    assert "Korean" in messages[-1]["content"]


def test_user_folder_overrides_one_file_and_keeps_the_others(tmp_path):
    (tmp_path / "system.jinja").write_text("CUSTOM in {{ language }}: {{ refusal }}", encoding="utf-8")
    prompts = get_prompts(str(tmp_path))
    assert prompts.render("system.jinja", language="English", refusal="R.") == "CUSTOM in English: R."
    context = prompts.render("context.jinja", sources=[_source()], question="q", language="English", refusal="R.")
    assert "[1] 004.pdf, page 3" in context  # the packaged file
    assert prompts.refusal("zh") == LANGS["zh"]


def test_rag_prompts_dir_is_read_on_each_call(tmp_path, monkeypatch):
    (tmp_path / "system.jinja").write_text("FROM ENV {{ refusal }}", encoding="utf-8")
    packaged = get_prompts()
    assert packaged.render("system.jinja", language="English", refusal="R").startswith("You are")
    monkeypatch.setenv("RAG_PROMPTS_DIR", str(tmp_path))
    assert get_prompts().render("system.jinja", language="English", refusal="R") == "FROM ENV R"
    monkeypatch.delenv("RAG_PROMPTS_DIR")
    assert get_prompts().render("system.jinja", language="English", refusal="R").startswith("You are")


def test_user_messages_file_changes_only_what_it_names(tmp_path):
    (tmp_path / "messages.yaml").write_text(
        'refusal:\n  en: "Not in the documents."\n  pt: "Os documentos não contêm a resposta."\n', encoding="utf-8")
    prompts = get_prompts(tmp_path)
    assert prompts.refusal("en") == "Not in the documents."
    assert prompts.refusal("pt") == "Os documentos não contêm a resposta."
    assert prompts.refusal("ko") == LANGS["ko"]
    assert prompts.language_name("ko").startswith("Korean")


def test_broken_user_messages_file_is_a_clear_error(tmp_path):
    (tmp_path / "messages.yaml").write_text("refusal: [unclosed", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):
        Prompts(tmp_path)


def test_missing_prompt_folder_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        Prompts(tmp_path / "missing")
    monkeypatch.setenv("RAG_PROMPTS_DIR", str(tmp_path / "missing-too"))
    with pytest.raises(InputError, match="RAG_PROMPTS_DIR"):
        get_prompts()
