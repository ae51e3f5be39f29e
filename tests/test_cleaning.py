"""Text cleaning: what ``clean_text`` does to text extracted from PDFs, shown on small
examples and checked on the real corpus after ingest."""

from __future__ import annotations

import re

import pytest

from rag.ingest.cleaning import clean_text

HAN = "\u4e00-\u9fff\u3400-\u4dbf"


def wrapped(*lines: str) -> str:
    """Lines as a PDF extractor returns them: cut where the page ran out of width."""
    return "\n".join(lines)


# --- Chinese / Japanese / Korean -------------------------------------------------------------


def test_space_between_two_han_characters_is_removed():
    assert clean_text("数 据安全") == "数据安全"
    assert clean_text("重点发展 行业大模型的理念。") == "重点发展行业大模型的理念。"


def test_chinese_line_wrapped_mid_word_is_joined_without_space():
    page = wrapped(
        "对企业而言,大模型应用需要综合考虑专业性、数",
        "据安全、持续迭代和综合成本等多种因素。针对这",
        "些现实情况,腾讯集团提出重点发展行业大模型的",
        "理念。本文基于一线大量实践反馈,做出系统归纳",
        "总结。",
    )
    cleaned = clean_text(page, from_pdf=True)
    assert "数据安全" in cleaned
    assert "\n" not in cleaned
    assert cleaned.startswith("对企业而言") and cleaned.endswith("总结。")


def test_chinese_mixed_with_latin_terms_keeps_the_latin_words_apart():
    cleaned = clean_text("通用人工智能(AGI, Artificial General Intelligence)的新阶段")
    assert "Artificial General Intelligence" in cleaned


def test_korean_keeps_its_word_spaces():
    # Korean separates words with spaces; only Han/kana text loses them.
    text = "불균형한 레이블 데이터 세트에서 정확도를 성능 평가 수치로 사용하면 안된다"
    assert clean_text(text) == text
    assert clean_text(text, from_pdf=True) == text


# --- Latin text --------------------------------------------------------------------------------


def test_wrapped_english_lines_are_joined_with_a_space():
    page = wrapped(
        "The permutation-based training approach helps XLNet generalize better to new,",
        "unseen data compared to other models. This feature makes XLNet a robust choice",
        "for a wide range of applications, from classification to question answering and",
        "summarization of long documents.",
        "# Applications",
        "- Text classification",
        "- Question answering",
    )
    cleaned = clean_text(page, from_pdf=True)
    assert "better to new, unseen data compared" in cleaned
    assert "robust choice for a wide range" in cleaned
    # Headings and list items are short lines: they keep their own lines.
    assert cleaned.splitlines()[-3:] == ["# Applications", "- Text classification", "- Question answering"]


def test_plain_text_files_keep_their_line_breaks():
    text = "first line of a poem\nsecond line of a poem\nthird line\nfourth line"
    assert clean_text(text) == text  # only PDFs get their wraps repaired


def test_hyphen_of_a_word_split_across_lines_is_dropped():
    # The page spells the whole word elsewhere, so "repre-|sentation" was a split word.
    page = wrapped(
        "A learned representation of text is what a retrieval system stores per passage.",
        "The encoder maps each passage of the collection to a single dense repre-",
        "sentation that is compared with the question by cosine similarity at query",
        "time, which is fast even for collections with millions of passages inside.",
    )
    cleaned = clean_text(page, from_pdf=True)
    assert "dense representation that is compared" in cleaned
    assert "repre-" not in cleaned


def test_real_hyphens_at_line_ends_are_kept():
    # Office suites wrap at the hyphen of compound words and names: the hyphen is real.
    page = wrapped(
        "The model was first pre-trained on a large corpus and then it was fine-",
        "tuned on question answering pairs that were taken from the original GPT-",
        "2 paper, which treats every task as a text-to-text problem for the text-",
        "to-text transfer transformer described in the paper by Raffel and others.",
    )
    cleaned = clean_text(page, from_pdf=True)
    assert "fine-tuned on question" in cleaned
    assert "original GPT-2 paper" in cleaned
    assert "for the text-to-text transfer" in cleaned


def test_code_indentation_is_kept():
    page = wrapped(
        "The scoring script below loads both models when the web service starts and then",
        "answers every request with the recommendations of the model that fits the input:",
        "def init():",
        "    global model_s",
        "    model_s = turicreate.load_model(model_s_path)",
        "    if model_s is None:",
        "        raise RuntimeError('no model')",
    )
    cleaned = clean_text(page, from_pdf=True)
    assert "def init():\n    global model_s\n    model_s = turicreate.load_model(model_s_path)\n" in cleaned
    assert "\n        raise RuntimeError('no model')" in cleaned


# --- whitespace and characters --------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("a\r\nb\rc", "a\nb\nc"),                      # Windows and old Mac line ends
    ("word\u00a0word", "word word"),              # no-break space
    ("bell\x07 and\x00 nul", "bell and nul"),       # control characters
    ("many    spaces   here", "many spaces here"),  # runs of spaces inside a line
    ("one\n\n\n\n\ntwo", "one\n\ntwo"),              # at most one blank line
    ("  \n padded \n\n", "padded"),                 # stripped at both ends
    ("e\u0301", "\u00e9"),                          # NFC: e + combining accent -> é
])
def test_whitespace_and_characters_are_normalized(raw, expected):
    assert clean_text(raw) == expected


# --- on the real corpus, after ingest -------------------------------------------------------------


def test_chinese_pdf_has_no_spaces_inside_words(corpus_pdf_index):
    text = "\n".join(c.text for c in corpus_pdf_index.chunks("003"))
    assert "数据安全" in text
    assert "数 据" not in text
    assert not re.search(f"[{HAN}] +[{HAN}]", text), "a space between two Han characters"


def test_chinese_pdf_breaks_only_where_the_text_file_does(corpus_pdf_index, corpus_dir):
    """Every whitespace left between two Han characters in the PDF chunks is a paragraph
    or line break of the original document: the txt version has whitespace there too."""
    original = (corpus_dir / "txt" / "003_53679c8f7bc64ce6.txt").read_text(encoding="utf-8")
    breaks = []
    for chunk in corpus_pdf_index.chunks("003"):
        for match in re.finditer(f"(\\S{{1,6}}[{HAN}])\\s+([{HAN}]\\S{{0,5}})", chunk.text):
            left, right = match.groups()
            in_original = r"\s*".join(map(re.escape, left)) + r"\s+" + r"\s*".join(map(re.escape, right))
            if not re.search(in_original, original):
                breaks.append(f"p. {chunk.page}: {match.group()!r}")
    assert not breaks, f"breaks that the text file does not have: {breaks}"


def test_english_pdf_lines_are_joined_into_sentences(corpus_pdf_index):
    chunks = corpus_pdf_index.chunks("004")
    for sentence in [
        "The permutation-based training approach helps XLNet generalize better to new, unseen data",
        "It treats every task, whether it is classification, translation, or summarization, as a task "
        "where both input and output are in the form of text.",
    ]:
        assert any(sentence in c.text for c in chunks), sentence


def test_hyphens_at_pdf_line_ends_are_kept(corpus_pdf_index):
    english = "\n".join(c.text for c in corpus_pdf_index.chunks("004"))
    assert "as a text-to-text problem" in english
    assert "much like GPT-2 and GPT-3" in english
    assert "textto-text" not in english and "GPT- 2" not in english
    notebook = "\n".join(c.text for c in corpus_pdf_index.chunks("001"))
    assert "finetuning" not in notebook.lower()
    assert "jean-claud van damme" in notebook


def test_code_in_pdf_keeps_its_indentation(corpus_pdf_index):
    code = "\n".join(c.text for c in corpus_pdf_index.chunks("002"))
    assert re.search(r"def init\(\):\n[ ]*\n    global model_s\n    global model_r\n", code)
    assert '\n            print(user_column_name + " found")\n' in code
