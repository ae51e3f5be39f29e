"""No language model: the answer is the retrieved sentences that best match the
question, each with its citation. Fast, faithful to the documents, fully offline."""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from rag.lexical import tokenize
from rag.text import pack_sentences, quote_brackets
from rag.text import split_sentences as _split_sentences

from .base import GenerationRequest, Generator

MAX_SENTENCES = 3  # passages in an answer
# Sentences scored per answer: enough to cover the top chunks, few enough that
# embedding them stays within a few tens of milliseconds on a CPU.
MAX_CANDIDATES = 36
SOURCES_SCANNED = 4


PASSAGE_CHARS = 180


def split_passages(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """Consecutive sentences packed up to ``max_chars``: a label and its value
    ("임곗값: 0.4" / "재현율: 0.8197") often sit on separate short lines."""
    return pack_sentences(split_sentences(text), max_chars)


def split_sentences(text: str) -> list[str]:
    sentences = []
    for piece in _split_sentences(text):
        piece = piece.strip(" \t-*#>|")
        if len(piece) >= 8 and re.search(r"\w", piece):
            sentences.append(piece)
    return sentences


_quote = quote_brackets


class ExtractiveGenerator(Generator):
    name = "extractive"
    model = "extractive"
    is_llm = False

    def select(self, request: GenerationRequest) -> list[tuple[str, int]]:
        """(sentence, 1-based source number) pairs, best first."""
        candidates: list[tuple[str, int, float]] = []
        per_source = max(4, MAX_CANDIDATES // max(1, min(len(request.sources), SOURCES_SCANNED)))
        q_tokens = set(tokenize(request.question))
        for number, source in enumerate(request.sources[:SOURCES_SCANNED], start=1):
            rank_prior = 1.0 / (number + 1)  # retrieval order already carries relevance
            sentences = split_passages(source.text) if PASSAGE_CHARS else split_sentences(source.text)
            if len(sentences) > per_source:
                # A long chunk: keep the sentences sharing most words with the question
                # (the earliest on ties), not just its first ones.
                shared = [len(q_tokens & set(tokenize(s))) for s in sentences]
                keep = sorted(sorted(range(len(sentences)), key=lambda i: -shared[i])[:per_source])
                sentences = [sentences[i] for i in keep]
            for sentence in sentences:
                candidates.append((sentence, number, rank_prior))
        if not candidates:
            return []
        overlap = np.array([
            len(q_tokens & set(tokenize(s))) / (len(q_tokens) or 1) for s, _, _ in candidates
        ])
        if request.embedder is not None:
            vectors = request.embedder.embed_passages([s for s, _, _ in candidates])
            semantic = vectors @ request.embedder.embed_query(request.question)
        else:
            semantic = np.zeros(len(candidates))
        prior = np.array([p for _, _, p in candidates])
        score = semantic + 0.5 * overlap + 0.2 * prior
        order = np.argsort(-score)
        picked, seen = [], set()
        for i in order:
            sentence, number, _ = candidates[i]
            if sentence in seen:
                continue
            seen.add(sentence)
            picked.append((sentence, number))
            if len(picked) == MAX_SENTENCES:
                break
        return picked

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        picked = self.select(request)
        for i, (sentence, number) in enumerate(picked):
            yield ("\n" if i else "") + f"{_quote(sentence)} [{number}]"
