"""Embedding backends, looked up by name in one registry.

Registered names are offline models shipped in PyPI packages (and ``hash``, a tiny
deterministic embedder for fast tests); any other name that looks like a model id or
a path is taken as a sentence-transformers model. Add one with::

    register_embedder("my-model", lambda name, device: MyEmbedder(), "what it is")
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .base import Embedder


@dataclass(frozen=True)
class EmbedderInfo:
    name: str
    factory: Callable[[str, str | None], Embedder]  # (name, device) -> embedder
    description: str


_registry: dict[str, EmbedderInfo] = {}
_loaded: dict[tuple, Embedder] = {}
_lock = threading.Lock()


def register_embedder(name: str, factory: Callable[[str, str | None], Embedder], description: str = "",
                      *, replace: bool = False) -> None:
    if name in _registry and not replace:
        raise ValueError(f"embedder '{name}' is already registered (pass replace=True to override it)")
    _registry[name] = EmbedderInfo(name, factory, description)
    with _lock:
        for key in [key for key in _loaded if key[0] == name]:
            del _loaded[key]


def embedder_names() -> list[str]:
    return list(_registry)


def embedders_help() -> str:
    return "; ".join(f"{info.name}: {info.description}" for info in _registry.values())


def _looks_like_model_id(name: str) -> bool:
    # "org/model" hub ids and filesystem paths; a bare word is a typo of a registered name.
    return "/" in name or "\\" in name or name.startswith(".")


def get_embedder(name: str | None = None, device: str | None = None) -> Embedder:
    """The embedder called ``name`` (default: $RAG_EMBED_MODEL or use-multilingual).

    Loaded models are kept per process: the UI and `rag eval` ask many questions.
    """
    from rag.config import embed_model
    from rag.errors import BackendNotFoundError

    name = embed_model(name)
    key = (name, device)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if name in _registry:
            embedder = _registry[name].factory(name, device)
        elif _looks_like_model_id(name):
            from .st import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder(name, device)
        else:
            raise BackendNotFoundError("embedding model", name,
                                       list(_registry) + ["<hugging face id or local path>"])
        _loaded[key] = embedder
        return embedder


def _use(name, device):
    from .use import USEEmbedder

    return USEEmbedder(name, device)


def _use_reference(name, device):
    from .use import USEEmbedder

    embedder = USEEmbedder(name, device, reference=True)
    embedder.name = name  # its indexes say which path wrote them
    return embedder


def _minilm(name, device):
    from .st import MiniLMEmbedder

    return MiniLMEmbedder(name, device)


def _hash(name, device):
    from .hashing import HashingEmbedder

    return HashingEmbedder()


register_embedder("use-multilingual", _use,
                  "Universal Sentence Encoder multilingual v3, 16 languages, offline (default)")
register_embedder("use-multilingual-reference", _use_reference,
                  "the same USE model on the package's own numpy forward, ~2x slower: for comparisons")
register_embedder("minilm", _minilm, "all-MiniLM-L6-v2, English only, offline")
register_embedder("hash", _hash, "hashed character n-grams: deterministic and instant, for tests (no semantics)")

# Kept for code written against the old table: name -> factory(name, device).
BUILTIN_EMBEDDERS = {name: info.factory for name, info in _registry.items()}

__all__ = ["Embedder", "EmbedderInfo", "get_embedder", "register_embedder", "embedder_names", "embedders_help"]
