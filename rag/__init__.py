"""Document-grounded multilingual question answering.

    import rag
    rag.ingest("docs/")                       # build or update the index
    hits = rag.retrieve("question", k=5)      # list[rag.Source]
    ans = rag.ask("question")                 # rag.Answer with .text, .sources, .refused
"""

from __future__ import annotations

from . import config as _config  # noqa: F401  first: it sets the OpenMP spin before any library loads OpenMP
from .errors import (
    BackendNotFoundError,
    ConfigurationError,
    DocumentError,
    EmbedderMismatchError,
    GeneratorError,
    IndexCorruptError,
    IndexNotFoundError,
    InputError,
    ModelLoadError,
    QuestionFileError,
    RagError,
    RagIndexError,
    ServerUnavailableError,
)
from .types import Answer, Chunk, Source

from .version import __version__  # noqa: E402


from .qa import QA, ask, retrieve  # noqa: E402  (the pipeline and its two convenience functions)
from .settings import GenerationSettings, RetrievalSettings  # noqa: E402
from .generators import register_generator  # noqa: E402
from .embedders import register_embedder  # noqa: E402


from . import ingest  # noqa: E402  (callable: rag.ingest(paths, index=None, **options) -> IngestSummary)


def serve(**options):
    """Serve the documents over HTTP (blocking): see :func:`rag.server.serve`; the ASGI app
    itself is :func:`rag.server.create_app`."""
    from .server import serve as _serve

    return _serve(**options)


def evaluate(questions, **options):
    """Evaluate answers for a question file: see :func:`rag.evaluation.runner.evaluate`."""
    from .evaluation.runner import evaluate as _evaluate

    return _evaluate(questions, **options)


__all__ = [
    "QA",
    "GenerationSettings",
    "RetrievalSettings",
    "register_generator",
    "register_embedder",
    "ask",
    "retrieve",
    "ingest",
    "evaluate",
    "serve",
    "Answer",
    "Chunk",
    "Source",
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
    "__version__",
]
