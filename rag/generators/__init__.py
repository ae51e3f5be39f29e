"""Answer generators, looked up by name in one registry.

Add a backend with one module and one call::

    from rag.generators import Generator, register_generator

    class EchoGenerator(Generator):
        def stream(self, request):
            yield request.question

    register_generator("echo", lambda model: EchoGenerator(), "repeats the question", is_llm=False)

The CLI's ``--generator`` help, the UI's dropdown, the server's validation and the
error for an unknown name all read this registry. Factories are called lazily, so
heavy imports stay inside the backend's own module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .base import GenerationRequest, Generator


@dataclass(frozen=True)
class GeneratorInfo:
    name: str
    factory: Callable[[str | None], Generator]  # model name or path (None: the backend's default) -> generator
    description: str
    is_llm: bool = True  # False: sampling settings do not apply, no LLM question rewriting


_registry: dict[str, GeneratorInfo] = {}
_loaded: dict[tuple, Generator] = {}
_lock = threading.Lock()


def register_generator(name: str, factory: Callable[[str | None], Generator], description: str = "",
                       *, is_llm: bool = True, replace: bool = False) -> None:
    """Make ``factory`` available as generator ``name`` everywhere (CLI, UI, server, Python)."""
    if name in _registry and not replace:
        raise ValueError(f"generator '{name}' is already registered (pass replace=True to override it)")
    _registry[name] = GeneratorInfo(name, factory, description, is_llm)
    with _lock:
        for key in [key for key in _loaded if key[0] == name]:
            del _loaded[key]


def unregister_generator(name: str) -> None:
    _registry.pop(name, None)
    with _lock:
        for key in [key for key in _loaded if key[0] == name]:
            del _loaded[key]


def generator_names() -> list[str]:
    return list(_registry)


def generator_info(name: str) -> GeneratorInfo:
    from rag.errors import BackendNotFoundError

    if name not in _registry:
        raise BackendNotFoundError("generator", name, list(_registry))
    return _registry[name]


def generators_help() -> str:
    """One line per generator, for --help texts and the UI."""
    return "; ".join(f"{info.name}: {info.description}" for info in _registry.values())


def get_generator(name: str | None = None, model: str | None = None) -> Generator:
    """The generator called ``name`` (default: see rag.config.generator_name), loaded once per
    process and model, shared between threads."""
    from rag import config

    name = config.generator_name(name)
    info = generator_info(name)
    model = config.generator_model(model)
    # A new OpenAI base URL or key (tests, the UI's settings) must reach a new client.
    endpoint = config.openai_endpoint() if name == "openai" else None
    key = (name, model or None, endpoint)
    with _lock:
        if key not in _loaded:
            _loaded[key] = info.factory(model or None)
        return _loaded[key]


def _openai(model):
    from .openai_backend import OpenAIGenerator

    return OpenAIGenerator(model)


def _hf(model):
    from .hf import HFGenerator, is_gguf_path

    # One way for GGUF files: llama.cpp runs them quantized and starts in a second, where
    # transformers would dequantize them first; `hf` stays for Hugging Face ids and folders.
    if is_gguf_path(model):
        return _local(model)
    return HFGenerator(model)


def _local(model):
    from .local import LocalGenerator

    return LocalGenerator(model)


def _extractive(model):
    from .extractive import ExtractiveGenerator

    return ExtractiveGenerator()


register_generator("extractive", _extractive,
                   "no LLM: the sentences of the documents that answer, each cited (fast, offline)", is_llm=False)
register_generator("openai", _openai,
                   "any OpenAI-compatible server (OpenAI, llama.cpp, vLLM, Ollama): OPENAI_API_KEY / OPENAI_BASE_URL")
register_generator("local", _local,
                   "a GGUF model in process on llama.cpp (bundled: SmolLM2-135M; --model file.gguf)")
register_generator("hf", _hf, "a Hugging Face transformers model by id or path (bundled: SmolLM2-135M)")


__all__ = ["Generator", "GenerationRequest", "GeneratorInfo", "register_generator", "unregister_generator",
           "generator_names", "generator_info", "generators_help", "get_generator"]
