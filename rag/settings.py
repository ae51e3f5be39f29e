"""Every knob of retrieval and generation, declared once.

``RetrievalSettings`` and ``GenerationSettings`` are frozen dataclasses validated on
construction (the messages are the ones users see). Each field's metadata carries its
help text; the CLI's options (``rag.cli_options``), the UI's controls, ``rag eval``,
``rag serve`` and the Python API all take their names, defaults and help from here.

    from rag.settings import GenerationSettings, RetrievalSettings
    GenerationSettings(temperature=0.0)                  # validated
    RetrievalSettings().replace(k=8, mmr=True)           # a validated copy
    split_options({"k": 3, "temperature": 0.1})          # -> (retrieval, generation) dicts
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from .errors import InputError


def knob(default: Any, help: str, **meta: Any):
    """A settings field: its default, its help text, and how front ends show it.

    meta: ``short`` (a one-letter CLI flag), ``minimum``/``maximum``/``step`` (UI sliders),
    ``choices``, ``advanced`` (CLI only, not a UI control), ``llm_only`` (no effect on the
    extractive generator), ``multiple`` (a list option, repeated on the CLI).
    """
    kwargs: dict[str, Any] = {"metadata": {"help": help, **meta}}
    if isinstance(default, (list, dict, set)):
        kwargs["default_factory"] = lambda: type(default)(default)
    else:
        kwargs["default"] = default
    return field(**kwargs)


def _finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}={value!r}: give a number") from None
    if not math.isfinite(number):
        raise InputError(f"{name}={value}: give a finite number")
    return number


class _Settings:
    """Shared behaviour: ``replace`` (validated copy), ``to_dict``, field introspection."""

    def replace(self, **changes: Any):
        check_names(type(self), changes)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f in fields(cls)}


@dataclass(frozen=True)
class GenerationSettings(_Settings):
    """How the answer is generated (sampling applies to LLM generators only)."""

    temperature: float = knob(0.2, "Sampling temperature, 0-2 (0 = always the most likely word).",
                              short="t", minimum=0.0, maximum=2.0, step=0.05, llm_only=True)
    top_p: float = knob(0.9, "Nucleus sampling: keep the most likely words up to this total probability.",
                        minimum=0.05, maximum=1.0, step=0.05, llm_only=True)
    max_tokens: int = knob(512, "Longest answer, in the model's tokens.",
                           minimum=16, maximum=4096, step=16, llm_only=True)
    stop: tuple[str, ...] = knob((), "Stop generating at this text (repeatable).",
                                 multiple=True, advanced=True, llm_only=True)

    def __post_init__(self):
        temperature = _finite("temperature", self.temperature)
        top_p = _finite("top_p", self.top_p)
        if not 0.0 <= temperature <= 2.0:
            raise InputError(f"temperature={self.temperature}: choose a value from 0 to 2 "
                             f"(0 = always the most likely word)")
        if not 0.0 < top_p <= 1.0:
            raise InputError(f"top_p={self.top_p}: choose a value above 0 and at most 1")
        try:
            max_tokens = int(self.max_tokens)
        except (TypeError, ValueError):
            raise InputError(f"max_tokens={self.max_tokens!r}: give a whole number from 1 to 32768") from None
        if max_tokens != self.max_tokens or not 1 <= max_tokens <= 32768:
            raise InputError(f"max_tokens={self.max_tokens}: choose from 1 to 32768")
        stop = self.stop
        if stop is None:
            stop = ()
        elif isinstance(stop, str):
            stop = (stop,)
        stop = tuple(stop)
        if len(stop) > 4 or any(not isinstance(s, str) or not s for s in stop):
            raise InputError(f"stop={list(stop)}: give up to 4 non-empty strings")
        object.__setattr__(self, "temperature", temperature)
        object.__setattr__(self, "top_p", top_p)
        object.__setattr__(self, "max_tokens", max_tokens)
        object.__setattr__(self, "stop", stop)


FUSIONS = ("zscore", "rrf")


@dataclass(frozen=True)
class RetrievalSettings(_Settings):
    """Which chunks answer a question, and when the documents count as not answering it."""

    k: int = knob(5, "Chunks retrieved and shown to the generator.", short="k", minimum=1, maximum=20, step=1)
    candidates: int = knob(50, "Chunks each ranker proposes before fusion.", advanced=True)
    # Term expansion weighs as much as the other three together: alone it is the
    # strongest ranker on both question sets (hit@5 0.93 on the extra set, against
    # 0.75 dense, 0.70 windows, 0.65 BM25) and it already contains exact word
    # matches. On 70 questions, weights 1/2/3/4/6 gave MRR@5 0.74/0.76/0.83/0.87/0.87
    # (dev) and 0.68/0.71/0.73/0.73/0.73 (extra) at the same hit@5; 3 is the start of
    # the plateau. The other three stay equal: shifting them moved a question or two
    # either way, noise on 70 questions (bench/retrieval.py).
    dense_weight: float = knob(1.0, "Weight of the chunk-vector ranker in the fusion.", advanced=True)
    window_weight: float = knob(1.0, "Weight of the sentence-window ranker.", advanced=True)
    lexical_weight: float = knob(1.0, "Weight of the BM25 ranker.", advanced=True)
    expansion_weight: float = knob(3.0, "Weight of the cross-lingual term-expansion ranker.", advanced=True)
    fusion: str = knob("zscore", "How rankings are fused: zscore (default) or rrf (reciprocal rank fusion).",
                       choices=FUSIONS, advanced=True)
    mmr: bool = knob(False, "Diversify the chunks with maximal marginal relevance.", advanced=True)
    mmr_lambda: float = knob(0.7, "MMR trade-off: 1 = relevance only, 0 = diversity only.", advanced=True)
    reranker: str | None = knob(None, "Cross-encoder model id or path to rerank the candidates.", advanced=True)
    min_score: float | None = knob(
        None, "Refusal threshold on the answerability score (default: the calibrated one; env RAG_MIN_SCORE).",
        advanced=True)
    caution_score: float | None = knob(
        None, "Answers scoring below this get a low-confidence note (default: the calibrated one; "
        "env RAG_CAUTION_SCORE).", advanced=True)

    def __post_init__(self):
        for name in ("k", "candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise InputError(f"{name}={value!r}: give a whole number")
            object.__setattr__(self, name, int(value))
        if self.k < 1:
            raise InputError(f"k={self.k}: retrieve at least 1 chunk")
        if self.candidates < 1:
            raise InputError(f"candidates={self.candidates}: propose at least 1 chunk per ranker")
        weights = []
        for name in ("dense_weight", "window_weight", "lexical_weight", "expansion_weight"):
            value = _finite(name, getattr(self, name))
            object.__setattr__(self, name, value)
            weights.append(value)
        if min(weights) < 0 or not any(weights):
            raise InputError(f"ranker weights {tuple(weights)}: use weights >= 0, at least one of them above 0")
        if self.fusion not in FUSIONS:
            raise InputError(f"unknown fusion '{self.fusion}': choose zscore or rrf")
        if not 0.0 <= _finite("mmr_lambda", self.mmr_lambda) <= 1.0:
            raise InputError(f"mmr_lambda={self.mmr_lambda}: choose from 0 to 1")
        if self.min_score is not None:
            object.__setattr__(self, "min_score", _finite("min_score", self.min_score))
        if self.caution_score is not None:
            object.__setattr__(self, "caution_score", _finite("caution_score", self.caution_score))

    @property
    def weights(self) -> tuple[float, float, float, float]:
        return (self.dense_weight, self.window_weight, self.lexical_weight, self.expansion_weight)


def check_names(cls, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(cls.names()))
    if unknown:
        raise InputError(f"unknown option {', '.join(unknown)}: valid options are {', '.join(cls.names())}")


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword options sorted into (retrieval, generation) fields; a misspelled name is an
    :class:`InputError` naming the valid ones, raised before anything loads."""
    retrieval_names, generation_names = set(RetrievalSettings.names()), set(GenerationSettings.names())
    unknown = sorted(set(options) - retrieval_names - generation_names)
    if unknown:
        valid = RetrievalSettings.names() + GenerationSettings.names()
        raise InputError(f"unknown option {', '.join(unknown)}: valid options are {', '.join(valid)}")
    return ({k: v for k, v in options.items() if k in retrieval_names},
            {k: v for k, v in options.items() if k in generation_names})


def merge(base, overrides: Any):
    """``base`` updated by ``overrides`` (a settings object of the same class, a dict, or None)."""
    if overrides is None:
        return base
    if isinstance(overrides, type(base)):
        return overrides
    if isinstance(overrides, dict):
        return base.replace(**{k: v for k, v in overrides.items() if v is not None})
    raise InputError(f"expected {type(base).__name__} or a dict, got {type(overrides).__name__}")


__all__ = ["GenerationSettings", "RetrievalSettings", "knob", "split_options", "check_names", "merge", "FUSIONS"]
