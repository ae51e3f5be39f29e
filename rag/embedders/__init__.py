"""Embedding backends, looked up by name.

Known names are offline models shipped in PyPI packages; any other name is taken
as a sentence-transformers model id or local path.
"""

from __future__ import annotations

from functools import lru_cache

from .base import Embedder


def _use(name, device):
    from .use import USEEmbedder

    return USEEmbedder(name, device)


def _minilm(name, device):
    from .st import MiniLMEmbedder

    return MiniLMEmbedder(name, device)


BUILTIN_EMBEDDERS = {
    "use-multilingual": _use,
    "minilm": _minilm,
}


def _looks_like_model_id(name: str) -> bool:
    # "org/model" hub ids and filesystem paths; a bare word is a typo of a builtin.
    return "/" in name or "\\" in name or name.startswith(".")


@lru_cache(maxsize=4)
def get_embedder(name: str | None = None, device: str | None = None) -> Embedder:
    """The embedder called ``name`` (default: $RAG_EMBED_MODEL or use-multilingual).

    Loaded models are cached per process: the UI and `rag eval` ask many questions.
    """
    from rag.config import embed_model
    from rag.errors import BackendNotFoundError

    name = embed_model(name)
    if name in BUILTIN_EMBEDDERS:
        return BUILTIN_EMBEDDERS[name](name, device)
    if _looks_like_model_id(name):
        from .st import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(name, device)
    raise BackendNotFoundError(
        "embedding model", name, list(BUILTIN_EMBEDDERS) + ["<hugging face id or local path>"]
    )


__all__ = ["Embedder", "get_embedder", "BUILTIN_EMBEDDERS"]
