"""Answer generators, looked up by name: openai, hf, extractive."""

from __future__ import annotations

import threading

from .base import GenerationRequest, Generator


def _openai(model):
    from .openai_backend import OpenAIGenerator

    return OpenAIGenerator(model)


def _hf(model):
    from .hf import HFGenerator

    return HFGenerator(model)


def _extractive(model):
    from .extractive import ExtractiveGenerator

    return ExtractiveGenerator()


GENERATORS = {"openai": _openai, "hf": _hf, "extractive": _extractive}

_loaded: dict[tuple, Generator] = {}
_lock = threading.Lock()


def get_generator(name: str | None = None, model: str | None = None) -> Generator:
    """The generator called ``name`` (default: see rag.config.generator_name), loaded once per process."""
    from rag.config import generator_name
    from rag.errors import BackendNotFoundError

    name = generator_name(name)
    if name not in GENERATORS:
        raise BackendNotFoundError("generator", name, list(GENERATORS))
    import os

    # A new base URL or key (tests, the UI's settings) must reach a new client.
    endpoint = (os.environ.get("OPENAI_BASE_URL"), os.environ.get("OPENAI_API_KEY")) if name == "openai" else None
    key = (name, model or None, endpoint)
    with _lock:
        if key not in _loaded:
            _loaded[key] = GENERATORS[name](model or None)
        return _loaded[key]


__all__ = ["Generator", "GenerationRequest", "GENERATORS", "get_generator"]
