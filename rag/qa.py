"""``ask()``: retrieve, decide whether the documents answer, prompt, generate, cite."""

from __future__ import annotations

import os
import re
import time
from typing import Iterator, Sequence

from . import config
from .errors import InputError
from .language import detect_language
from .prompts import get_prompts
from .retrieval import Retrieval, RetrievalSettings, check_question, search
from .store import open_index
from .types import Answer

History = Sequence[tuple[str, str]]

# Words that point back into the conversation ("what about it?", "그것은?", "它呢").
_ANAPHORA = re.compile(
    r"\b(it|its|that|this|those|these|they|them|he|she|one|same|also|there|esso|essa|quello|questo|ciò|lo|la)\b"
    r"|그것|그거|이것|저것|그럼|그러면|它|这个|那个|这|那|其",
    re.IGNORECASE,
)
HISTORY_TURNS = 3


def validate_settings(temperature: float, top_p: float, max_tokens: int, k: int) -> None:
    if not 0.0 <= float(temperature) <= 2.0:
        raise InputError(f"temperature={temperature}: choose a value from 0 to 2 (0 = always the most likely word)")
    if not 0.0 < float(top_p) <= 1.0:
        raise InputError(f"top_p={top_p}: choose a value above 0 and at most 1")
    if int(max_tokens) < 1 or int(max_tokens) > 32768:
        raise InputError(f"max_tokens={max_tokens}: choose from 1 to 32768")
    if int(k) < 1 or int(k) > 100:
        raise InputError(f"k={k}: retrieve from 1 to 100 chunks")


def heuristic_standalone(question: str, history: History) -> str:
    """Without an LLM: a short or referring follow-up borrows the previous question's words.

    "What about its recall?" after "What precision did the Titanic model reach?" is
    retrieved as "What precision did the Titanic model reach? What about its recall?".
    """
    if not history:
        return question
    short = len(question.split()) <= 6 if " " in question else len(question) <= 12
    if short or _ANAPHORA.search(question):
        return f"{history[-1][0]} {question}"
    return question


def condense(question: str, history: History, generator, prompts) -> str:
    if not history:
        return question
    if not getattr(generator, "is_llm", False):
        return heuristic_standalone(question, history)
    from .generators import GenerationRequest

    prompt = prompts.render("condense.jinja", history=list(history)[-HISTORY_TURNS:], question=question)
    rewritten = generator.generate(GenerationRequest(
        messages=[{"role": "user", "content": prompt}], temperature=0.0, top_p=1.0, max_tokens=96,
    )).strip().strip('"').splitlines()
    rewritten = rewritten[0].strip() if rewritten else ""
    # A weak model may answer instead of rewriting: keep the heuristic then.
    if not rewritten or len(rewritten) > 4 * len(question) + 200:
        return heuristic_standalone(question, history)
    return rewritten


def excerpt(source, limit: int | None) -> str:
    """At most ``limit`` characters of the source, centred on its best-matching window."""
    text = source.text
    if not limit or len(text) <= limit:
        return text
    position = text.find(source.focus[:30]) if source.focus else -1
    if position < 0:
        return text[:limit]
    start = max(0, min(position - (limit - len(source.focus)) // 2, len(text) - limit))
    return text[start:start + limit]


def fitted_excerpt(source, generator, limit: int | None) -> str:
    """The excerpt shown to ``generator``: within its character and token limits."""
    text = excerpt(source, limit)
    budget = getattr(generator, "context_tokens", None)
    if budget:
        tokens = generator.count_tokens(text)
        if tokens > budget:
            text = excerpt(source, max(40, int(len(text) * budget / tokens)))
    return text


def build_messages(question: str, retrieval: Retrieval, lang: str, history: History, prompts,
                   context_chars: int | None = None, generator=None) -> list[dict]:
    from dataclasses import replace

    language = prompts.language_name(lang)
    system = prompts.render("system.jinja", language=language, refusal=prompts.refusal(lang))
    messages = [{"role": "system", "content": system}]
    for user, assistant in list(history)[-HISTORY_TURNS:]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    shown = [replace(s, text=fitted_excerpt(s, generator, context_chars)) for s in retrieval.sources]
    context = prompts.render("context.jinja", sources=shown, question=question, language=language)
    messages.append({"role": "user", "content": context})
    return messages


class AnswerStream:
    """Iterate for the answer's text pieces; ``sources`` are known before the first
    piece, ``answer`` (an :class:`Answer`) once the iteration has finished."""

    def __init__(self, answer: Answer, pieces: Iterator[str] | None, finish):
        self.answer = answer
        self.sources = answer.sources
        self.refused = answer.refused
        self._pieces = pieces
        self._finish = finish

    def __iter__(self) -> Iterator[str]:
        if self._pieces is None:
            yield self.answer.text
            return
        # The pieces join to exactly ``answer.text`` (which is stripped): whitespace
        # before the first word is dropped, whitespace is held back until a word follows it.
        parts, pending, started = [], "", False
        for piece in self._pieces:
            parts.append(piece)
            if not started:
                piece = piece.lstrip()
                started = bool(piece)
            body = piece.rstrip()
            if body:
                yield pending + body
                pending = piece[len(body):]
            else:
                pending += piece
        self._finish(self.answer, "".join(parts))
        self.refused = self.answer.refused
        self.sources = self.answer.sources


def ask(
    question: str,
    index: str | os.PathLike | None = None,
    k: int = 5,
    *,
    generator: str | None = None,
    model: str | None = None,
    temperature: float = 0.2,
    top_p: float = 0.9,
    max_tokens: int = 512,
    stop: list[str] | None = None,
    history: History | None = None,
    stream: bool = False,
    min_score: float | None = None,
    embed_model: str | None = None,
    prompts_dir: str | None = None,
    context_chars: int | None = None,
    **retrieval_options,
) -> Answer | AnswerStream:
    """Answer ``question`` from the documents in ``index``.

    Returns an :class:`Answer`, or with ``stream=True`` an :class:`AnswerStream`
    whose iteration yields the text as it is generated.
    """
    from .embedders import get_embedder
    from .generators import GenerationRequest, get_generator

    started = time.perf_counter()
    question = check_question(question)
    validate_settings(temperature, top_p, max_tokens, k)
    history = [(str(q), str(a)) for q, a in (history or [])]
    opened = open_index(config.index_dir(index), embed_model)
    gen = get_generator(generator, model)
    prompts = get_prompts(prompts_dir)

    t0 = time.perf_counter()
    standalone = condense(question, history, gen, prompts)
    t1 = time.perf_counter()
    retrieval = search(opened, standalone, RetrievalSettings(k=k, **retrieval_options))
    lang = detect_language(question)
    answer = Answer(
        text="", sources=retrieval.sources, question=question, standalone_question=standalone, lang=lang,
        generator=gen.name, model=gen.model, score=round(retrieval.best_dense, 4),
        timings={"condense": t1 - t0, "retrieval": retrieval.timings.get("total", 0.0)},
    )
    threshold = config.min_score(min_score)
    if not retrieval.sources or retrieval.best_dense < threshold:
        answer.refused = True
        answer.text = prompts.refusal(lang)
        answer.sources = []
        answer.timings["total"] = time.perf_counter() - started
        return AnswerStream(answer, None, None) if stream else answer

    context_limit = context_chars or gen.context_chars
    if context_limit:
        from .retrieval import add_focus

        add_focus(retrieval.sources, standalone, get_embedder(opened.embed_model))
    request = GenerationRequest(
        messages=build_messages(standalone, retrieval, lang, history, prompts,
                                context_limit, gen),
        question=standalone, sources=retrieval.sources, temperature=temperature, top_p=top_p,
        max_tokens=max_tokens, stop=stop, embedder=get_embedder(opened.embed_model),
    )
    refusal_text = prompts.refusal(lang)
    gen_started = time.perf_counter()

    def finish(ans: Answer, text: str) -> None:
        ans.text = text.strip()
        # The model was told to reply with the refusal sentence when the excerpts lack the answer.
        if refusal_text.rstrip(".。") in ans.text and len(ans.text) < len(refusal_text) + 40:
            ans.refused = True
            ans.sources = []  # nothing was taken from them
        ans.timings["generation"] = time.perf_counter() - gen_started
        ans.timings["total"] = time.perf_counter() - started

    if stream:
        return AnswerStream(answer, gen.stream(request), finish)
    finish(answer, gen.generate(request))
    return answer
