"""Loading documents: ``load_document(path)`` gives page/section records, or raises
``DocumentError(path, reason)`` with a reason a person can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_pdf import (make_compression_bomb_pdf, make_encrypted_pdf, make_image_only_pdf, make_pdf,
                         make_truncated_pdf)

from rag.errors import DocumentError, InputError
from rag.ingest.limits import Limits
from rag.ingest.loaders import LOADERS, load_document

KOREAN = "불균형한 레이블 데이터 세트에서 정확도를 성능 평가 수치로 사용하면 안된다. 정밀도와 재현율을 함께 봐야 한다."
CHINESE = "对企业而言,大模型应用需要综合考虑专业性、数据安全、持续迭代和综合成本等多种因素。"


# --- PDF ---------------------------------------------------------------------------------------------


def test_pdf_gives_one_record_per_page_numbered_from_one(tmp_path):
    path = make_pdf(tmp_path / "guide.pdf", ["Installing the tool.", "Configuring it.", "Running it."])
    records = load_document(path)
    assert [r.page for r in records] == [1, 2, 3]
    assert [r.text for r in records] == ["Installing the tool.", "Configuring it.", "Running it."]


def test_pdf_record_offsets_point_into_the_whole_document_text(tmp_path):
    records = load_document(make_pdf(tmp_path / "guide.pdf", ["First page.", "Second page.", "Third page."]))
    document = "\n\n".join(r.text for r in records)  # pages are joined by a blank line
    for record in records:
        assert document[record.start:record.start + len(record.text)] == record.text


def test_blank_pdf_pages_are_left_out_but_keep_the_numbering(tmp_path):
    records = load_document(make_pdf(tmp_path / "gaps.pdf", ["Page one.", "", "Page three."]))
    assert [(r.page, r.text) for r in records] == [(1, "Page one."), (3, "Page three.")]


# --- text, markdown, html, notebooks ------------------------------------------------------------


def test_text_file_is_one_record_without_page(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Line one.\nLine two.\n", encoding="utf-8")
    [record] = load_document(path)
    assert (record.text, record.page, record.section, record.warning) == ("Line one.\nLine two.", None, None, None)


def test_markdown_headings_become_section_paths(tmp_path):
    path = tmp_path / "manual.md"
    path.write_text(
        "Preface text.\n\n"
        "# Intro\nWhat it is.\n\n"
        "## Setup\nInstall it:\n\n```bash\n# not a heading: a shell comment\npip install rag\n```\n\n"
        "### Linux\napt install it.\n\n"
        "## Usage\nRun it.\n\n"
        "# Reference\nAll options.\n",
        encoding="utf-8",
    )
    sections = [(r.section, r.text.splitlines()[0]) for r in load_document(path)]
    assert sections == [
        (None, "Preface text."),
        ("Intro", "# Intro"),
        ("Intro > Setup", "## Setup"),
        ("Intro > Setup > Linux", "### Linux"),
        ("Intro > Usage", "## Usage"),
        ("Reference", "# Reference"),
    ]
    setup = load_document(path)[2]
    assert "# not a heading: a shell comment" in setup.text


@pytest.mark.parametrize("heading, section", [
    ("## Setup ##", "Setup"),  # a closing sequence is not part of the title
    ("# C#", "C#"),  # a hash inside the last word is
    ("#   Spaced   title  ", "Spaced title"),
    ("###### Six", "Six"),
])
def test_markdown_heading_titles(tmp_path, heading, section):
    path = tmp_path / "h.md"
    path.write_text(f"{heading}\nText.\n", encoding="utf-8")
    assert load_document(path)[0].section == section


def test_html_headings_become_sections_and_scripts_are_dropped(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>t</title><script>var x = 1;</script></head><body>"
        "<h1>Intro</h1><p>Hello.</p><h2>Setup</h2><p>Install it.</p></body></html>",
        encoding="utf-8",
    )
    records = load_document(path)
    assert [r.section for r in records] == ["Intro", "Intro > Setup"]
    assert "var x" not in " ".join(r.text for r in records)


def test_notebook_code_cells_are_fenced(tmp_path):
    path = tmp_path / "lab.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["# Lab\n", "Train a model."]},
        {"cell_type": "code", "source": "# a comment, not a heading\nmodel.fit(X, y)"},
    ]}), encoding="utf-8")
    [record] = load_document(path)
    assert record.section == "Lab"
    assert "```\n# a comment, not a heading\nmodel.fit(X, y)\n```" in record.text


def test_a_page_s_menus_and_footer_are_left_out_but_an_article_header_is_kept(tmp_path):
    path = tmp_path / "bakery.html"
    path.write_text(
        "<html><body><nav><a href='/'>Home</a> | <a href='/menu'>Menu</a></nav>"
        "<header>Zephyr Bakery since 1987</header>"
        "<main><article><header><h1>Our sourdough</h1></header>"
        "<p>Each loaf ferments for 36 hours.</p></article></main>"
        "<footer>Copyright 2024 Zephyr Bakery. Cookie policy.</footer></body></html>",
        encoding="utf-8",
    )
    text = " ".join(r.text for r in load_document(path))
    assert "Each loaf ferments for 36 hours." in text and "Our sourdough" in text
    assert "Menu" not in text and "Copyright" not in text and "since 1987" not in text


def test_a_page_whose_text_is_all_furniture_is_read_whole(tmp_path):
    path = tmp_path / "links.html"
    path.write_text("<html><body><nav><p>Opening hours: 6:30 to 14:00.</p>", encoding="utf-8")  # never closed
    assert "Opening hours: 6:30 to 14:00." in " ".join(r.text for r in load_document(path))


def test_notebook_outputs_are_indexed_with_their_cell(tmp_path):
    path = tmp_path / "penguins.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": "# Penguins"},
        {"cell_type": "code", "source": "print('rows:', len(df))", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["rows: 344\n"]}]},
        {"cell_type": "code", "source": "df['flipper'].mean()", "outputs": [
            {"output_type": "execute_result", "data": {"text/plain": ["189.95"], "image/png": "iVBOR..."}}]},
        {"cell_type": "code", "source": "train()", "outputs": [
            {"output_type": "stream", "name": "stderr", "text": "epoch 1  10%\repoch 1 100%\n\x1b[32mdone\x1b[0m\n"},
            {"output_type": "error", "ename": "ValueError", "evalue": "bad shape", "traceback": ["\x1b[31m..."]}]},
    ]}), encoding="utf-8")
    [record] = load_document(path)
    assert "```\nprint('rows:', len(df))\n```\n\nrows: 344" in record.text
    assert "189.95" in record.text and "iVBOR" not in record.text
    # a progress bar's last frame only, without its colour codes
    assert "epoch 1 100%\ndone" in record.text and "10%" not in record.text and "\x1b" not in record.text
    assert "ValueError: bad shape" in record.text


def test_a_long_cell_output_keeps_its_beginning_and_its_end(tmp_path):
    from rag.ingest.loaders import OUTPUT_CHARS

    log = "".join(f"step {i} loss 0.{i:04d}\n" for i in range(2000)) + "test accuracy: 0.9342\n"
    path = tmp_path / "train.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "fit()", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": log}]}]}), encoding="utf-8")
    [record] = load_document(path)
    assert "step 0 loss" in record.text and "test accuracy: 0.9342" in record.text
    assert len(record.text) < OUTPUT_CHARS + 200 and "step 1000 loss" not in record.text


# --- encodings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, encoding", [(KOREAN, "cp949"), (CHINESE, "gbk")])
def test_legacy_encoded_text_is_decoded_with_a_warning(tmp_path, text, encoding):
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    [record] = load_document(path)
    assert record.text == text
    assert "not UTF-8" in record.warning


# Latin text in the Western code pages: the bytes also decode as cp1250 ("Caffč latte
# e cittŕ"), which a detector may rank first on short texts; Western languages win.
WESTERN = {
    "italian": "Caffè latte e città. Perché la qualità è più importante? Così va, però.",
    "italian_short": "Caffè latte e città",
    "german": "Größere Straßen führen über Brücken. Schöne Grüße aus München, Äpfel und Öl.",
    "french": "L'élève a déjà reçu le gâteau à Noël; où est la fenêtre? Très bien, garçon.",
}
CP1252_ONLY = {  # characters Latin-1 lacks: œ, the euro sign, curly quotes
    "french_cp1252": "Le cœur de l’élève coûte 5 €: «déjà vu», dit-il — très cher.",
    "german_cp1252": "„Schöne Grüße“ – der Preis: 12 € für Äpfel.",
}


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
@pytest.mark.parametrize("language", list(WESTERN))
def test_western_latin_text_is_decoded_as_western_european(tmp_path, language, encoding):
    path = tmp_path / f"{language}.txt"
    path.write_bytes(WESTERN[language].encode(encoding))
    [record] = load_document(path)
    assert record.text == WESTERN[language]
    assert "decoded as cp1252" in record.warning  # Windows-1252: a superset of Latin-1's letters


@pytest.mark.parametrize("language", list(CP1252_ONLY))
def test_cp1252_punctuation_and_ligatures_survive(tmp_path, language):
    path = tmp_path / f"{language}.txt"
    path.write_bytes(CP1252_ONLY[language].encode("cp1252"))
    [record] = load_document(path)
    assert record.text == CP1252_ONLY[language]


@pytest.mark.parametrize("text", [
    "Příliš žluťoučký kůň úpěl ďábelské ódy. Čeština je krásný jazyk a často se píše s háčky.",  # Czech
    "Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.",  # Polish
    "Árvíztűrő tükörfúrógép. Első ősszel a kő és a fű között.",  # Hungarian
])
def test_central_european_text_keeps_its_own_code_page(tmp_path, text):
    path = tmp_path / "cp1250.txt"
    path.write_bytes(text.encode("cp1250"))
    [record] = load_document(path)
    assert record.text == text


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_unicode_with_byte_order_mark_needs_no_warning(tmp_path, encoding):
    path = tmp_path / "bom.txt"
    path.write_bytes(KOREAN.encode(encoding))
    [record] = load_document(path)
    assert (record.text, record.warning) == (KOREAN, None)


# --- files that cannot be used: one DocumentError each, naming the problem ------------------


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _blank(path: Path) -> Path:
    path.write_text(" \n\n\t\n", encoding="utf-8")
    return path


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _text_named_pdf(path: Path) -> Path:
    path.write_text("just some text, not a PDF", encoding="utf-8")
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _dangling_symlink(path: Path) -> Path:
    os.symlink(path.parent / "gone.txt", path)
    return path


BAD_FILES = {
    # name: (how to make it, words the reason must contain)
    "locked.pdf": (lambda p: make_encrypted_pdf(p, ["Secret."]), "encrypted with a password"),
    "cut.pdf": (lambda p: make_truncated_pdf(p), "damaged or truncated"),
    "scan.pdf": (lambda p: make_image_only_pdf(p), "no text layer"),
    "fake.pdf": (_text_named_pdf, "not a PDF"),
    "empty.txt": (_empty, "empty"),
    "blank.md": (_blank, "empty"),
    "data.txt": (_binary, "looks binary"),
    "folder.txt": (_directory, "is a directory"),
    "link.txt": (_dangling_symlink, "does not exist"),
    "missing.txt": (lambda p: p, "does not exist"),
    "report.docx": (lambda p: p.write_bytes(b"PK\x03\x04") and p, "unsupported format '.docx'"),
    "README": (lambda p: p.write_text("hello") and p, "unsupported format '(none)'"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_unusable_file_raises_document_error_naming_the_problem(tmp_path, name):
    make, reason = BAD_FILES[name]
    path = make(tmp_path / name)
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert reason in caught.value.reason
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)  # the message names the file too


# --- malformed files and resource limits: one DocumentError, never another exception ----------


@pytest.mark.parametrize("notebook", [
    {"cells": "notalist"},
    {"cells": [1, 2, 3]},
    {"cells": [["a list, not a cell"]]},
    {"cells": None},
    ["not", "a", "notebook"],
    "just a string",
])
def test_malformed_notebook_is_a_document_error(tmp_path, notebook):
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert "not a valid Jupyter notebook" in caught.value.reason


def test_notebook_cells_with_odd_sources_still_load(tmp_path):
    path = tmp_path / "odd.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["# Title\n", 42, None, "Some text."]},
        {"cell_type": "markdown"},  # no source at all
        {"cell_type": "code", "source": {"unexpected": "object"}},
    ]}), encoding="utf-8")
    [record] = load_document(path)
    assert record.section == "Title" and "Some text." in record.text


def test_pdf_compression_bomb_is_refused_at_the_default_limit(tmp_path):
    path = make_compression_bomb_pdf(tmp_path / "bomb.pdf", expands_to_mb=100)
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert "expands beyond 75 MB" in caught.value.reason and "RAG_MAX_DECOMPRESSED_MB" in caught.value.reason


def test_decompression_limit_is_configurable(tmp_path):
    path = make_compression_bomb_pdf(tmp_path / "big.pdf", expands_to_mb=3)
    assert load_document(path)[0].text == "Harmless cover text."  # 3 MB: under the default
    with pytest.raises(DocumentError) as caught:
        load_document(path, Limits(max_decompressed_mb=1))
    assert "expands beyond 1 MB" in caught.value.reason


def test_file_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "huge.txt"
    path.write_text("word " * 300_000, encoding="utf-8")  # 1.5 MB
    with pytest.raises(DocumentError) as caught:
        load_document(path, Limits(max_file_mb=1))
    assert "1.4 MB, over the limit of 1 MB" in caught.value.reason and "--max-file-mb" in caught.value.reason


def test_character_limit_per_file(tmp_path):
    text = tmp_path / "long.md"
    text.write_text("# Title\n" + "word " * 3000, encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_document(text, Limits(max_chars=10_000))
    assert "over 10,000 characters" in caught.value.reason and "RAG_MAX_CHARS" in caught.value.reason
    pdf = make_pdf(tmp_path / "long.pdf", ["word " * 400] * 6)
    with pytest.raises(DocumentError, match="over 5,000 characters"):
        load_document(pdf, Limits(max_chars=5000))


def test_page_limit(tmp_path):
    path = make_pdf(tmp_path / "pages.pdf", [f"Page {n}." for n in range(1, 6)])
    assert len(load_document(path, Limits(max_pages=5))) == 5
    with pytest.raises(DocumentError) as caught:
        load_document(path, Limits(max_pages=4))
    assert "5 pages, over the limit of 4" in caught.value.reason and "--max-pages" in caught.value.reason


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_MAX_PAGES", "12")
    monkeypatch.setenv("RAG_MAX_FILE_MB", "2.5")
    limits = Limits.from_config(max_chars=99)
    assert (limits.max_pages, limits.max_file_mb, limits.max_chars) == (12, 2.5, 99)
    monkeypatch.setenv("RAG_MAX_PAGES", "many")
    with pytest.raises(InputError, match="RAG_MAX_PAGES='many': give a positive whole number"):
        Limits.from_config()
    monkeypatch.delenv("RAG_MAX_PAGES")
    with pytest.raises(InputError, match="--max-chars=0: give a positive whole number"):
        Limits.from_config(max_chars=0)


def test_an_unexpected_loader_exception_becomes_a_document_error(tmp_path, monkeypatch):
    """The last line of defence: whatever a parser raises is that file's one-line failure."""
    def crashing_loader(path, limits):
        return {}["a bug in a parser"]

    monkeypatch.setitem(LOADERS, ".txt", crashing_loader)
    path = tmp_path / "any.txt"
    path.write_text("text", encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert caught.value.reason.startswith("could not be read (KeyError: 'a bug in a parser')")


def test_a_multi_line_parser_message_stays_on_one_line(tmp_path, monkeypatch):
    def crashing_loader(path, limits):
        raise ValueError("first line\nsecond line")

    monkeypatch.setitem(LOADERS, ".txt", crashing_loader)
    path = tmp_path / "any.txt"
    path.write_text("text", encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert "could not be read (ValueError: first line second line)" in caught.value.reason
