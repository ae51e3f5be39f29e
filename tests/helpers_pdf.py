"""Small PDF builders for tests, made with fpdf2 (real PDF files, no mocks).

    from helpers_pdf import make_pdf  # tests/ is on sys.path under pytest
    make_pdf(tmp_path / "guide.pdf", ["Page one text.", "Page two text."])

Text is set in a core font (Helvetica), so it must be Latin-1; each string in
``pages`` becomes one page (long strings wrap onto the same page).
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

# Documents shared by the UI tests and their Milvus twins: a two-page PDF guide and a
# Chinese text whose facts are asked about in other languages.
LOCK_PAGES = [
    "Orion Bicycle Lock, setup guide. Chapter one introduces the lock and its parts: the steel shackle, "
    "the key cylinder and the mounting bracket.",
    "Resetting the combination: hold the reset button for five seconds, turn the dials to the new code, "
    "then release the button. The default factory code is 4-7-1-9.",
]
LIBRARY_ZH = ("城东图书馆开放时间：周一至周五上午九点到晚上八点，周末上午十点到下午五点。"
              "借书证可以在服务台免费办理，每次最多借十本书，借期为三十天。")


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


def make_compression_bomb_pdf(path: str | Path, expands_to_mb: int = 100, text: str = "Harmless cover text.") -> Path:
    """A one-page PDF whose content stream is a few hundred KB of zlib that expands to
    ``expands_to_mb`` MB (blank lines after one line of ``text``): a compression bomb."""
    import zlib

    path = Path(path)
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET\n".encode("latin-1")
    packer = zlib.compressobj(9)
    stream = packer.compress(content)
    block = b"\n" * (1024 * 1024)
    for _ in range(expands_to_mb):
        stream += packer.compress(block)
    stream += packer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path
