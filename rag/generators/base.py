"""The generator interface: ``stream`` yields the answer piece by piece."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

from rag.settings import GenerationSettings
from rag.types import Source


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]  # chat messages for LLM backends
    question: str = ""  # the standalone question (for non-LLM backends)
    sources: list[Source] = field(default_factory=list)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    embedder: Any = None  # the index's embedder, for backends that score sentences
    evidence: Any = None  # rag.citations.TermEvidence of the question (cross-lingual term matches)
    # source -> (sentence windows, their vectors) as stored in the index, for backends that
    # score passages without embedding them again (rag.citations.source_windows)
    windows: Any = None
    # The extractive reader's ranking of the sources' passages when it was already made for
    # the answerability check (rag.generators.extractive.rank_passages): not made twice.
    ranked: Any = None

    # The sampling settings, read by the backends.
    @property
    def temperature(self) -> float:
        return self.settings.temperature

    @property
    def top_p(self) -> float:
        return self.settings.top_p

    @property
    def max_tokens(self) -> int:
        return self.settings.max_tokens

    @property
    def stop(self) -> list[str] | None:
        return list(self.settings.stop) or None


class Generator(ABC):
    name: str = ""
    model: str = ""
    is_llm: bool = True  # False: no language model (no question rewriting with it)
    # Characters of each source shown to the model (None: whole chunks). Small local
    # models answer better, and start sooner, from the passage around the best match.
    context_chars: int | None = None
    context_tokens: int | None = None  # the same limit in the model's own tokens

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    @abstractmethod
    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Pieces of the answer as they are produced."""

    def generate(self, request: GenerationRequest) -> str:
        return "".join(self.stream(request))
