"""Document-grounded multilingual question answering.

    import rag
    rag.ingest("docs/")                       # build or update the index
    hits = rag.retrieve("question", k=5)      # list[rag.Source]
    ans = rag.ask("question")                 # rag.Answer with .text, .sources, .refused
"""

from __future__ import annotations

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

__version__ = "0.1.0"


def ask(question, index=None, k=5, **options):
    """Answer a question from the indexed documents: see :func:`rag.qa.ask`."""
    from .qa import ask as _ask

    return _ask(question, index, k, **options)


def retrieve(question, index=None, k=5, **options):
    """The ``k`` best chunks for ``question``: see :func:`rag.retrieval.retrieve`."""
    from .retrieval import retrieve as _retrieve

    return _retrieve(question, index, k, **options)


def ingest(paths, index=None, **options):
    """Ingest files or folders into the index: see :func:`ingest.pipeline.ingest`."""
    from ingest.pipeline import ingest as _ingest

    return _ingest(paths, index, **options)


def evaluate(questions, **options):
    """Evaluate answers for a question file: see :func:`rag.evaluation.runner.evaluate`."""
    from .evaluation.runner import evaluate as _evaluate

    return _evaluate(questions, **options)


__all__ = [
    "ask",
    "retrieve",
    "ingest",
    "evaluate",
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
