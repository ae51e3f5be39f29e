"""The generator interface: ``stream`` yields the answer piece by piece."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

from rag.types import Source


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]  # chat messages for LLM backends
    question: str = ""  # the standalone question (for non-LLM backends)
    sources: list[Source] = field(default_factory=list)
    temperature: float = 0.2
    top_p: float = 0.9
    max_tokens: int = 512
    stop: list[str] | None = None
    embedder: Any = None  # the index's embedder, for backends that score sentences


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
