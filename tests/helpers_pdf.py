"""Small PDF builders for tests, made with fpdf2 (real PDF files, no mocks).

    from helpers_pdf import make_pdf  # tests/ is on sys.path under pytest
    make_pdf(tmp_path / "guide.pdf", ["Page one text.", "Page two text."])

Text is set in a core font (Helvetica), so it must be Latin-1; each string in
``pages`` becomes one page (long strings wrap onto the same page).
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF


def _build(pages: list[str]) -> FPDF:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return pdf


def make_pdf(path: str | Path, pages: list[str]) -> Path:
    """A normal PDF with a text layer, one page per string in ``pages``."""
    path = Path(path)
    _build(pages).output(str(path))
    return path


def make_encrypted_pdf(path: str | Path, pages: list[str], *, user_password: str = "secret",
                       owner_password: str = "owner") -> Path:
    """A PDF that needs ``user_password`` to open (RC4, as fpdf2 writes by default)."""
    path = Path(path)
    pdf = _build(pages)
    pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    pdf.output(str(path))
    return path


def make_truncated_pdf(path: str | Path, pages: list[str] | None = None, *, keep: float = 0.5) -> Path:
    """A PDF cut off after ``keep`` of its bytes, like an interrupted download."""
    path = Path(path)
    data = bytes(_build(pages or ["This document was cut off in transit."] * 3).output())
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_image_only_pdf(path: str | Path, n_pages: int = 1) -> Path:
    """A "scanned" PDF: each page is a picture of text, with no text layer at all."""
    from PIL import Image, ImageDraw

    path = Path(path)
    pdf = FPDF()
    for number in range(1, n_pages + 1):
        image = Image.new("L", (600, 300), 255)
        ImageDraw.Draw(image).text((20, 20), f"Scanned page {number}: text only as pixels", fill=0)
        pdf.add_page()
        pdf.image(image, x=10, y=10, w=180)
    pdf.output(str(path))
    return path
