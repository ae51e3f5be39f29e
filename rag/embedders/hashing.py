"""A tiny deterministic embedder: hashed character n-grams, no model.

It lets unit tests of the store, ingest and retrieval run in milliseconds. Texts that
share character trigrams get similar vectors, so lexical questions still find their
chunk; there is no meaning and nothing crosses languages (use ``use-multilingual``).
"""

from __future__ import annotations

import zlib

import numpy as np

from .base import Embedder


class HashingEmbedder(Embedder):
    name = "hash"
    dim = 256
    batch_size = 256

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            text = f"  {text.lower()}  "
            for i in range(len(text) - 2):
                h = zlib.crc32(text[i:i + 3].encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            if not out[row].any():
                out[row, 0] = 1.0  # an empty text still gets a unit vector
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)
