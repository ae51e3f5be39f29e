"""Errors raised by the rag package. Every message says how to fix the problem.

Tree::

    RagError
    ├── InputError                 a bad argument from the caller (empty question, bad temperature, ...)
    ├── DocumentError              one document could not be read (encrypted PDF, binary, empty, ...)
    ├── IndexError_                (exported as ``RagIndexError``)
    │   ├── IndexNotFoundError     no index at that path yet: run `rag ingest`
    │   ├── IndexCorruptError      files of the index are missing or unreadable
    │   └── EmbedderMismatchError  the index was built with another embedding model
    ├── BackendNotFoundError       unknown embedder / generator name (lists the known ones)
    ├── ModelLoadError             a model could not be loaded (missing package, bad path, no hub access)
    ├── GeneratorError             the generator failed at run time
    │   ├── ConfigurationError     missing API key or base URL
    │   └── ServerUnavailableError the OpenAI-compatible server cannot be reached
    └── QuestionFileError          a question file for `rag eval` is missing, empty or malformed
"""

from __future__ import annotations

# Exit codes of every command: 0 success; 1 some inputs failed, the rest was done;
# 2 usage error; 3 index, model or server problem. Each error class carries its own.
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


class RagError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code: int = EXIT_FAILURE


class InputError(RagError, ValueError):
    """A bad argument: the message names it and the accepted values."""

    exit_code = EXIT_USAGE


class DocumentError(RagError):
    """A single document could not be ingested; other documents go on."""

    exit_code = EXIT_PARTIAL

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class IndexError_(RagError):
    """Something is wrong with an index directory."""


class IndexNotFoundError(IndexError_, FileNotFoundError):
    def __init__(self, path: str):
        self.path = str(path)
        super().__init__(
            f"no index at {self.path}: build one with `rag ingest DOCS_DIR --index {self.path}` "
            f"(or set RAG_INDEX_DIR to an existing index)"
        )


class IndexCorruptError(IndexError_):
    """``reason`` names the damaged file; ``fix`` says what repairs it (default: a rebuild)."""

    def __init__(self, path: str, reason: str, fix: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.fix = fix or f"rebuild it with `rag ingest DOCS_DIR --index {self.path} --rebuild`"
        super().__init__(f"index at {self.path} is unreadable ({reason}): {self.fix}")


class EmbedderMismatchError(IndexError_):
    def __init__(self, path: str, index_model: str, requested_model: str):
        self.path = str(path)
        self.index_model = index_model
        self.requested_model = requested_model
        super().__init__(
            f"index at {self.path} was built with embedding model '{index_model}', not '{requested_model}': "
            f"use --embed-model {index_model} (or leave it unset), or rebuild with "
            f"`rag ingest DOCS_DIR --index {self.path} --embed-model {requested_model} --rebuild`"
        )


class StoreUnavailableError(IndexError_):
    """The index engine (Milvus) cannot be reached, refused the credentials, or cannot be used."""

    def __init__(self, location: str, reason: str):
        self.path = str(location)
        self.reason = reason
        super().__init__(f"index at {self.path}: {reason}")


class BackendNotFoundError(RagError, KeyError):
    exit_code = EXIT_USAGE

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} '{name}': choose one of {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ModelLoadError(RagError):
    """A model could not be loaded."""


class GeneratorError(RagError):
    """The generator failed while answering."""


class ConfigurationError(GeneratorError):
    """A setting the generator needs is missing."""


class ServerUnavailableError(GeneratorError):
    def __init__(self, url: str, detail: str = ""):
        self.url = url
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"cannot reach the OpenAI-compatible server at {url}{extra}: start it, or fix OPENAI_BASE_URL"
        )


class QuestionFileError(RagError):
    """A question file is missing, empty or malformed."""

    exit_code = EXIT_USAGE


RagIndexError = IndexError_


def exit_code(error: BaseException) -> int:
    """The exit code a command ends with for ``error``."""
    return getattr(error, "exit_code", EXIT_FAILURE)

__all__ = [
    "RagError",
    "InputError",
    "DocumentError",
    "RagIndexError",
    "IndexNotFoundError",
    "IndexCorruptError",
    "EmbedderMismatchError",
    "BackendNotFoundError",
    "ModelLoadError",
    "GeneratorError",
    "ConfigurationError",
    "ServerUnavailableError",
    "QuestionFileError",
    "exit_code",
    "StoreUnavailableError",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "EXIT_FAILURE",
]
