"""Defaults shared by every command, each overridable by an environment variable.

This is the only module that reads the environment: everything else asks it.

| setting              | env var                 | default                         |
|----------------------|-------------------------|---------------------------------|
| index directory      | RAG_INDEX_DIR           | ./.rag/index (or milvus://...)  |
| Milvus token         | RAG_MILVUS_TOKEN        | - (user:password or API key)    |
| embedding model      | RAG_EMBED_MODEL         | use-multilingual (offline)      |
| embedder threads     | RAG_EMBED_THREADS       | 1                               |
| embedder workers     | RAG_EMBED_WORKERS       | cores, at most 8 (fast USE path)|
| reference USE forward| RAG_EMBED_REFERENCE     | 0 (1: the package's own forward)|
| local LLM threads    | RAG_LLM_THREADS         | one per physical core, 1 to 8   |
| follow-up rewriting  | RAG_CONDENSE            | auto (heuristic / llm)          |
| generator            | RAG_GENERATOR           | openai if OPENAI_API_KEY or OPENAI_BASE_URL is set, else DEFAULT_GENERATOR |
| generator model      | RAG_MODEL               | per generator                   |
| OpenAI endpoint      | OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL | api.openai.com, -, gpt-4o-mini |
| judge model (eval)   | RAG_JUDGE_MODEL         | the OpenAI model                |
| prompt templates     | RAG_PROMPTS_DIR         | the packaged rag/prompts folder |
| refusal threshold    | RAG_MIN_SCORE           | DEFAULT_MIN_SCORE below         |
| low-confidence note  | RAG_CAUTION_SCORE       | DEFAULT_CAUTION_SCORE below     |
| model cache          | RAG_CACHE_DIR           | ~/.cache/rag                    |
| UI upload limit (MB) | RAG_UI_MAX_UPLOAD_MB    | 50                              |
| UI logins            | RAG_UI_AUTH             | none (user:password,...)        |
| server API keys file | RAG_KEYS_FILE           | keys.json beside the data       |
| `rag serve` options  | RAG_SERVE_<OPTION>      | e.g. RAG_SERVE_PORT=8000        |
| ingest: file size (MB) | RAG_MAX_FILE_MB       | 100                             |
| ingest: PDF pages    | RAG_MAX_PAGES           | 5000                            |
| ingest: characters   | RAG_MAX_CHARS           | 10000000 (per file)             |
| ingest: decompressed | RAG_MAX_DECOMPRESSED_MB | 75 (per PDF stream)             |
| OpenMP spin (set)    | GOMP_SPINCOUNT          | 10000 unless set (see below)    |
"""

from __future__ import annotations

import math
import os
from pathlib import Path

DEFAULT_INDEX_DIR = Path(".rag") / "index"
DEFAULT_EMBED_MODEL = "use-multilingual"
# The generator used offline (no OpenAI settings). Chosen by measurement: README, "Generators".
DEFAULT_GENERATOR = "extractive"
# Answerability score (rag/answerability.py, 0..1) below which a question counts as not
# covered by the documents: the highest threshold that refuses at most 5% of the
# answerable questions of the dev, extra, near-topic and blind sets (`python bench/calibrate.py`).
DEFAULT_MIN_SCORE = 0.36
# Answers scoring below this (and at least DEFAULT_MIN_SCORE) carry a low-confidence note
# (Answer.confidence "low"): the highest threshold that flags at most 20% of the
# answerable questions of the same sets (`python bench/calibrate.py`). The score cannot
# refuse most near-topic questions without refusing many answerable ones; the note tells
# the reader which answers to check against their quotes.
DEFAULT_CAUTION_SCORE = 0.79
DEFAULT_MAX_UPLOAD_MB = 50.0
# Per-file ingest limits (rag/ingest/limits.py): documents are untrusted input, and
# one file must not take the machine's memory or the ingest's hours. A 100 MB text
# file is ~25M tokens, ~70k chunks; 10M characters is a 4000-page book; 75 MB per
# decompressed PDF stream is pypdf's own default.
DEFAULT_MAX_FILE_MB = 100.0
DEFAULT_MAX_PAGES = 5000
DEFAULT_MAX_CHARS = 10_000_000
DEFAULT_MAX_DECOMPRESSED_MB = 75.0


# OpenMP threads (llama.cpp's, and faiss's and torch's) spin 300,000 times by default while
# they wait at a barrier. On a machine busy with anything else (the embedder answering
# another request, a second process) the spinning threads take the cores the working ones
# need: with load ~3 on 2 cores, a 450-token prompt took 5.7 s on 2 llama.cpp threads, 1.7 s
# with a spin of 10,000, and 3.3 s on 1 thread (see README "Performance"). Set before any
# OpenMP runtime is loaded (libgomp reads it once); a value the user set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def index_dir(path: str | os.PathLike | None = None) -> Path:
    """The index directory: the argument, else $RAG_INDEX_DIR, else ./.rag/index.

    A ``milvus://`` URI gives a :class:`rag.locations.MilvusURI` instead (the index
    lives in Milvus; it prints, resolves and has a ``parent`` like a Path)."""
    raw = path or _env("RAG_INDEX_DIR")
    if raw and str(raw).startswith("milvus:"):
        from .locations import parse

        return parse(raw)
    if path:
        return Path(path).expanduser()
    env = _env("RAG_INDEX_DIR")
    return Path(env).expanduser() if env else DEFAULT_INDEX_DIR


def milvus_token() -> str | None:
    """Credentials for a Milvus server (``user:password`` or an API key): $RAG_MILVUS_TOKEN."""
    return _env("RAG_MILVUS_TOKEN")


def embed_model(name: str | None = None) -> str:
    return name or _env("RAG_EMBED_MODEL") or DEFAULT_EMBED_MODEL


def embed_threads(value: int | None = None) -> int:
    return int(value or _env("RAG_EMBED_THREADS") or 1)


CONDENSE_MODES = ("auto", "heuristic", "llm")


def condense_mode(value: str | None = None) -> str:
    """How follow-ups become standalone questions: auto (the LLM only for generators where it
    measured better, README "Follow-ups"), heuristic, or llm; $RAG_CONDENSE."""
    value = (value or _env("RAG_CONDENSE") or "auto").lower()
    if value not in CONDENSE_MODES:
        from .errors import InputError

        raise InputError(f"RAG_CONDENSE={value}: give one of {', '.join(CONDENSE_MODES)}")
    return value


def physical_cores() -> int:
    """Cores this process may use, counting SMT siblings once (Linux topology; elsewhere
    the logical count)."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in usable:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            siblings = str(cpu)
        cores.add(siblings)
    return max(1, len(cores))


def llm_threads(value: int | None = None) -> int:
    """Threads of the local llama.cpp generator: the argument, $RAG_LLM_THREADS, else one per
    physical core (SMT siblings share one core's arithmetic units: a second thread there only
    spins), 1 to 8. On an idle 2-core machine 2 threads read a prompt ~1.9x faster than 1;
    llama.cpp's threads spin while they wait for each other, so on a machine that is busy
    with other work (load average above the core count) RAG_LLM_THREADS=1 is faster."""
    value = int(value or _env("RAG_LLM_THREADS") or max(1, min(8, physical_cores())))
    if value < 1:
        from .errors import InputError

        raise InputError(f"llm threads={value}: give 1 or more (RAG_LLM_THREADS)")
    return value


def embed_workers(value: int | None = None) -> int:
    """Threads the fast USE forward spreads a large embedding call over (one BLAS
    thread each): the argument, $RAG_EMBED_WORKERS, else every core up to 8."""
    value = int(value or _env("RAG_EMBED_WORKERS") or min(8, os.cpu_count() or 1))
    if value < 1:
        from .errors import InputError

        raise InputError(f"embed workers={value}: give 1 or more (RAG_EMBED_WORKERS)")
    return value


def embed_reference(value: bool | None = None) -> bool:
    """$RAG_EMBED_REFERENCE=1: the USE embedder runs the package's own numpy forward,
    text by text, instead of the fast path (rag/embedders/use_fast.py); for comparisons."""
    if value is not None:
        return bool(value)
    return (_env("RAG_EMBED_REFERENCE") or "0").strip().lower() not in ("0", "false", "no", "off")


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


def _score_threshold(name: str, env_var: str, value: float | None, default: float) -> float:
    """A threshold on the answerability score: ``value``, else $``env_var``, else ``default``."""
    from .errors import InputError

    option = "--" + name.replace("_", "-")
    if value is None:
        env = _env(env_var)
        try:
            value = float(env) if env else default
        except ValueError:
            raise InputError(f"{env_var}={env!r}: give a number such as {default}, or unset it") from None
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name}={value}: give a finite number ({env_var} or {option})")
    return value


def min_score(value: float | None = None) -> float:
    """The refusal threshold."""
    return _score_threshold("min_score", "RAG_MIN_SCORE", value, DEFAULT_MIN_SCORE)


def caution_score(value: float | None = None) -> float:
    """The low-confidence threshold."""
    return _score_threshold("caution_score", "RAG_CAUTION_SCORE", value, DEFAULT_CAUTION_SCORE)


def cache_dir() -> Path:
    env = _env("RAG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rag"


def max_upload_mb(value: float | None = None) -> float:
    if value is None:
        env = _env("RAG_UI_MAX_UPLOAD_MB")
        value = float(env) if env else DEFAULT_MAX_UPLOAD_MB
    return float(value)


def _limit(value, env: str, default, kind, option: str):
    """A positive ingest limit: the argument, else the environment, else the default."""
    source = option
    if value is None:
        raw = _env(env)
        value, source = (raw, env) if raw is not None else (default, "default")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        from .errors import InputError

        raise InputError(f"{source}={value!r}: give a positive {'whole ' if kind is int else ''}number "
                         f"({env} or {option})")
    return number


def max_file_mb(value: float | None = None) -> float:
    """Largest document ingest reads, in MB (RAG_MAX_FILE_MB)."""
    return _limit(value, "RAG_MAX_FILE_MB", DEFAULT_MAX_FILE_MB, float, "--max-file-mb")


def max_pages(value: int | None = None) -> int:
    """Most pages of one PDF (RAG_MAX_PAGES)."""
    return _limit(value, "RAG_MAX_PAGES", DEFAULT_MAX_PAGES, int, "--max-pages")


def max_chars(value: int | None = None) -> int:
    """Most characters of text taken from one document (RAG_MAX_CHARS)."""
    return _limit(value, "RAG_MAX_CHARS", DEFAULT_MAX_CHARS, int, "--max-chars")


def max_decompressed_mb(value: float | None = None) -> float:
    """Largest decompressed PDF stream, in MB (RAG_MAX_DECOMPRESSED_MB): compression bombs stop here."""
    return _limit(value, "RAG_MAX_DECOMPRESSED_MB", DEFAULT_MAX_DECOMPRESSED_MB, float, "--max-decompressed-mb")


def keys_file(path: str | os.PathLike | None = None, beside: str | os.PathLike | None = None) -> Path:
    """The API keys file of `rag serve` / `rag keys`: the argument, else $RAG_KEYS_FILE,
    else ``keys.json`` in ``beside`` (the data folder, or the index folder's parent)."""
    if path:
        return Path(path).expanduser()
    env = _env("RAG_KEYS_FILE")
    if env:
        return Path(env).expanduser()
    return Path(beside if beside is not None else index_dir().parent).expanduser() / "keys.json"


def serve_env(names) -> dict[str, str]:
    """`rag serve` settings from the environment: option ``max_upload_mb`` <- $RAG_SERVE_MAX_UPLOAD_MB."""
    found = {}
    for name in names:
        value = _env("RAG_SERVE_" + name.upper())
        if value is not None:
            found[name] = value
    return found


def ui_auth(value: str | None = None) -> list[tuple[str, str]]:
    """`rag ui` logins as (user, password) pairs: the argument or $RAG_UI_AUTH, "user:password[,user2:pw2]"."""
    text = value if value is not None else (_env("RAG_UI_AUTH") or "")
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            from .errors import InputError

            raise InputError(f"login '{user or item}': write it as USER:PASSWORD (--auth or RAG_UI_AUTH)")
        pairs.append((user, password))
    return pairs


def quiet_third_parties(quiet: bool = False) -> None:
    """Keep Gradio from phoning home and tokenizers from forking threads (both read the env).
    With ``quiet``, or when stderr is no terminal (a log), the Hugging Face libraries' own
    bars ("Loading weights", downloads) stay off too: read when they are first imported."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if quiet:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    else:
        from .progress import on_terminal

        if not on_terminal():
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
