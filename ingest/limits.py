"""Resource limits for one document. Documents are untrusted input: a 2 GB log, a
PDF with 100 000 pages or a compression bomb must cost one line in the report,
not the machine's memory or the night.

    limits = Limits.from_config(max_file_mb=20)   # the rest from RAG_MAX_* or defaults
    load_document(path, limits)

Each limit names its setting in the message when it is hit, so the person who
meets it knows what to change (README, "Security model").
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from rag import config
from rag.errors import DocumentError

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_file_mb: float = config.DEFAULT_MAX_FILE_MB  # bytes read from disk
    max_pages: int = config.DEFAULT_MAX_PAGES  # pages of one PDF
    max_chars: int = config.DEFAULT_MAX_CHARS  # characters of text from one file
    max_decompressed_mb: float = config.DEFAULT_MAX_DECOMPRESSED_MB  # one decompressed PDF stream

    @classmethod
    def from_config(cls, **given) -> "Limits":
        """Limits from the arguments given (None: not given), else the environment, else the defaults."""
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
        return cls(**{f.name: getattr(config, f.name)(given.get(f.name)) for f in fields(cls)})

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MB)

    def check_size(self, path: Path, size: int) -> None:
        if size > self.max_file_bytes:
            raise DocumentError(
                path, f"the file is {size / MB:,.1f} MB, over the limit of {self.max_file_mb:g} MB per file: "
                      f"split it, or raise the limit (--max-file-mb, RAG_MAX_FILE_MB)")

    def check_pages(self, path: Path, pages: int) -> None:
        if pages > self.max_pages:
            raise DocumentError(
                path, f"the PDF has {pages:,} pages, over the limit of {self.max_pages:,}: "
                      f"split it, or raise the limit (--max-pages, RAG_MAX_PAGES)")

    def check_chars(self, path: Path, chars: int) -> None:
        if chars > self.max_chars:
            raise DocumentError(
                path, f"the text is over {self.max_chars:,} characters, the limit per file: "
                      f"split it, or raise the limit (--max-chars, RAG_MAX_CHARS)")

    def decompression_error(self, path: Path) -> DocumentError:
        return DocumentError(
            path, f"a compressed stream of the PDF expands beyond {self.max_decompressed_mb:g} MB "
                  f"(a compression bomb?): check where it came from, or raise the limit "
                  f"(--max-decompressed-mb, RAG_MAX_DECOMPRESSED_MB)")

    def pypdf_configuration(self) -> dict[str, int]:
        """pypdf's own limits (pypdf.apply_configuration) set from ``max_decompressed_mb``."""
        cap = int(self.max_decompressed_mb * MB)
        return {
            "maximum_declared_stream_length": cap,
            "array_based_stream_maximum_output_length": cap,
            "jbig2_maximum_output_length": cap,
            "lzw_maximum_output_length": cap,
            "run_length_maximum_output_length": cap,
            "zlib_maximum_output_length": cap,
            "brotli_maximum_output_length": cap,
            "image_maximum_buffer_size": cap,
            # Decoding work counts every filter of a stream: four times one output keeps
            # pypdf's ratio (75 MB output, 300 MB work).
            "stream_decoding_work_maximum_length": 4 * cap,
        }
