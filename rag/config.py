"""Defaults shared by every command, each overridable by an environment variable.

This is the only module that reads the environment: everything else asks it.

| setting              | env var                 | default                         |
|----------------------|-------------------------|---------------------------------|
| index directory      | RAG_INDEX_DIR           | ./.rag/index                    |
| embedding model      | RAG_EMBED_MODEL         | use-multilingual (offline)      |
| embedder threads     | RAG_EMBED_THREADS       | 1                               |
| generator            | RAG_GENERATOR           | openai if OPENAI_API_KEY or OPENAI_BASE_URL is set, else DEFAULT_GENERATOR |
| generator model      | RAG_MODEL               | per generator                   |
| OpenAI endpoint      | OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL | api.openai.com, -, gpt-4o-mini |
| judge model (eval)   | RAG_JUDGE_MODEL         | the OpenAI model                |
| prompt templates     | RAG_PROMPTS_DIR         | the packaged rag/prompts folder |
| refusal threshold    | RAG_MIN_SCORE           | DEFAULT_MIN_SCORE below         |
| model cache          | RAG_CACHE_DIR           | ~/.cache/rag                    |
| UI upload limit (MB) | RAG_UI_MAX_UPLOAD_MB    | 50                              |
"""

from __future__ import annotations

import math
import os
from pathlib import Path

DEFAULT_INDEX_DIR = Path(".rag") / "index"
DEFAULT_EMBED_MODEL = "use-multilingual"
# The generator used offline (no OpenAI settings). Chosen by measurement: README, "Generators".
DEFAULT_GENERATOR = "extractive"
# Dense cosine of the best chunk below which a question counts as not covered by
# the documents. Calibrated with `rag eval` (see README, "Refusal threshold").
DEFAULT_MIN_SCORE = 0.17
DEFAULT_MAX_UPLOAD_MB = 50.0


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def index_dir(path: str | os.PathLike | None = None) -> Path:
    """The index directory: the argument, else $RAG_INDEX_DIR, else ./.rag/index."""
    if path:
        return Path(path).expanduser()
    env = _env("RAG_INDEX_DIR")
    return Path(env).expanduser() if env else DEFAULT_INDEX_DIR


def embed_model(name: str | None = None) -> str:
    return name or _env("RAG_EMBED_MODEL") or DEFAULT_EMBED_MODEL


def embed_threads(value: int | None = None) -> int:
    return int(value or _env("RAG_EMBED_THREADS") or 1)


def openai_configured() -> bool:
    return bool(_env("OPENAI_API_KEY") or _env("OPENAI_BASE_URL"))


def generator_name(name: str | None = None) -> str:
    if name:
        return name
    if _env("RAG_GENERATOR"):
        return _env("RAG_GENERATOR")
    return "openai" if openai_configured() else DEFAULT_GENERATOR


def generator_model(model: str | None = None) -> str | None:
    """The model named by the caller or $RAG_MODEL (None: the generator's own default)."""
    return model or _env("RAG_MODEL")


def openai_endpoint() -> tuple[str | None, str | None]:
    """(base URL, API key) of the OpenAI-compatible server, from the environment."""
    return _env("OPENAI_BASE_URL"), _env("OPENAI_API_KEY")


def openai_model(model: str | None = None) -> str | None:
    return model or _env("RAG_MODEL") or _env("OPENAI_MODEL")


def judge_model(model: str | None = None) -> str | None:
    return model or _env("RAG_JUDGE_MODEL") or _env("OPENAI_MODEL")


def prompts_dir(folder: str | os.PathLike | None = None) -> str | None:
    folder = folder or _env("RAG_PROMPTS_DIR")
    return str(folder) if folder else None


def min_score(value: float | None = None) -> float:
    if value is None:
        env = _env("RAG_MIN_SCORE")
        value = float(env) if env else DEFAULT_MIN_SCORE
    value = float(value)
    if not math.isfinite(value):
        from .errors import InputError

        raise InputError(f"min_score={value}: give a finite number (RAG_MIN_SCORE or --min-score)")
    return value


def cache_dir() -> Path:
    env = _env("RAG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rag"


def max_upload_mb(value: float | None = None) -> float:
    if value is None:
        env = _env("RAG_UI_MAX_UPLOAD_MB")
        value = float(env) if env else DEFAULT_MAX_UPLOAD_MB
    return float(value)


def quiet_third_parties() -> None:
    """Keep Gradio from phoning home and tokenizers from forking threads (both read the env)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
