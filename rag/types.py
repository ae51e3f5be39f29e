"""Plain result records passed between ingest, retrieval, generation and the UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Chunk:
    """A piece of a document as stored in the index."""

    id: str
    text: str
    path: str  # absolute path of the file it came from
    source: str  # file name, shown to users
    page: int | None = None  # 1-based PDF page
    section: str | None = None  # markdown heading
    lang: str | None = None
    start: int = 0  # character offsets in the cleaned page/document text
    end: int = 0
    content_hash: str = ""  # sha256 of the chunk text
    file_hash: str = ""  # sha256 of the file bytes

    def embedding_text(self) -> str:
        """What gets embedded and indexed for this chunk (its section heading gives it a topic)."""
        from .text import embedding_text

        return embedding_text(self.text, self.section)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Source:
    """A retrieved chunk with its score, as cited by an answer ([n] = position + 1)."""

    text: str
    source: str
    path: str
    page: int | None
    score: float
    chunk_id: str = ""
    section: str | None = None
    lang: str | None = None
    dense_score: float | None = None  # cosine similarity to the question
    lexical_score: float | None = None  # BM25
    focus: str | None = None  # the sentence window of the chunk that best matches the question

    def citation(self) -> str:
        return f"{self.source}, p. {self.page}" if self.page else self.source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """One sentence of an answer as checked against the sources it cites.

    ``sources`` are the 1-based source numbers the sentence cites after the check (a
    citation that did not support it was moved to the source that does, or removed);
    ``cited`` what the generator wrote. ``quote`` is the supporting span of source
    ``quote_source``, at ``quote_start:quote_end`` in that source's ``text``.
    """

    sentence: str
    sources: list[int] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    support: float = 0.0  # 0..1, the best cited source's support for the sentence
    supported: bool = False
    quote: str = ""
    quote_source: int | None = None
    quote_start: int = -1
    quote_end: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    text: str
    sources: list[Source] = field(default_factory=list)
    refused: bool = False
    question: str = ""
    standalone_question: str = ""  # the question after follow-up rewriting
    lang: str = "en"
    generator: str = ""
    model: str = ""
    score: float = 0.0  # answerability in 0..1 (rag/answerability.py); refused below min_score
    # "high"; "low" when the score is below the caution threshold (the documents may not
    # state this: check the quotes); "none" when refused.
    confidence: str = "high"
    note: str = ""  # the low-confidence note in the question's language, shown above the answer
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    citations: list[Citation] = field(default_factory=list)  # per answer sentence, after the citation check
    # The generator's own words, as streamed: ``text`` is this after the citation check
    # moved, removed or added [n] markers.
    generated_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sources"] = [s.to_dict() for s in self.sources]
        return out
