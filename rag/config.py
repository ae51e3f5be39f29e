"""Defaults shared by every command, each overridable by an environment variable.

| setting            | env var            | default                         |
|--------------------|--------------------|---------------------------------|
| index directory    | RAG_INDEX_DIR      | ./.rag/index                    |
| embedding model    | RAG_EMBED_MODEL    | use-multilingual (offline)      |
| generator          | RAG_GENERATOR      | openai if OPENAI_API_KEY or OPENAI_BASE_URL is set, else hf |
| generator model    | RAG_MODEL          | per generator                   |
| prompt templates   | RAG_PROMPTS_DIR    | the packaged prompts/ folder    |
| refusal threshold  | RAG_MIN_SCORE      | DEFAULT_MIN_SCORE below         |
| model cache        | RAG_CACHE_DIR      | ~/.cache/rag                    |
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_INDEX_DIR = Path(".rag") / "index"
DEFAULT_EMBED_MODEL = "use-multilingual"
# Dense cosine of the best chunk below which a question counts as not covered by
# the documents. Calibrated with `rag eval` (see README, "Refusal threshold").
DEFAULT_MIN_SCORE = 0.17


def index_dir(path: str | os.PathLike | None = None) -> Path:
    """The index directory: the argument, else $RAG_INDEX_DIR, else ./.rag/index."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("RAG_INDEX_DIR")
    return Path(env).expanduser() if env else DEFAULT_INDEX_DIR


def embed_model(name: str | None = None) -> str:
    return name or os.environ.get("RAG_EMBED_MODEL") or DEFAULT_EMBED_MODEL


def generator_name(name: str | None = None) -> str:
    if name:
        return name
    if os.environ.get("RAG_GENERATOR"):
        return os.environ["RAG_GENERATOR"]
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "hf"


def min_score(value: float | None = None) -> float:
    if value is not None:
        return float(value)
    env = os.environ.get("RAG_MIN_SCORE")
    return float(env) if env else DEFAULT_MIN_SCORE


def cache_dir() -> Path:
    env = os.environ.get("RAG_CACHE_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "rag"
    return path
