"""The question-answering pipeline: retrieve, decide whether the documents answer,
prompt, generate, cite.

:class:`QA` owns a pipeline's lifetime (its index, generator, prompts and settings):
build it once, ask it many questions. The UI, ``rag chat``, ``rag eval`` and the
server each hold one; ``rag.ask()`` uses a cached default.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Iterator, Sequence

from . import config
from .errors import InputError
from .language import detect_language
from .prompts import Prompts, get_prompts
from .retrieval import Retrieval, check_question, search, search_phrasings
from .settings import GenerationSettings, RetrievalSettings, merge, split_options
from .store import open_index
from .types import Answer, Source

History = Sequence[tuple[str, str]]

# Words that point back into the conversation ("what about it?", "그것은?", "它呢").
_ANAPHORA = re.compile(
    r"\b(it|its|that|this|those|these|they|them|he|she|one|same|also|there|esso|essa|quello|questo|ciò|lo|la)\b"
    r"|그것|그거|이것|저것|그럼|그러면|它|这个|那个|这|那|其",
    re.IGNORECASE,
)
HISTORY_TURNS = 3
MAX_ANSWER_K = 100  # chunks an answer may be built from (retrieve() alone may return more)


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
    """The follow-up as a standalone question for retrieval.

    The LLM rewrites it only for generators whose rewrite measured better than the
    heuristic (``condense_with_llm``; bench/followups.py, README "Follow-ups"), or
    everywhere with RAG_CONDENSE=llm; otherwise the instant heuristic."""
    if not history:
        return question
    mode = config.condense_mode()
    use_llm = getattr(generator, "is_llm", False) and (
        mode == "llm" or (mode == "auto" and getattr(generator, "condense_with_llm", False)))
    if not use_llm:
        return heuristic_standalone(question, history)
    return llm_condense(question, history, generator, prompts)


def llm_condense(question: str, history: History, generator, prompts) -> str:
    """The generator's own rewrite of the follow-up (the heuristic where the model answers instead)."""
    from .generators import GenerationRequest

    prompt = prompts.render("condense.jinja", history=list(history)[-HISTORY_TURNS:], question=question)
    rewritten = generator.generate(GenerationRequest(
        messages=[{"role": "user", "content": prompt}],
        settings=GenerationSettings(temperature=0.0, top_p=1.0, max_tokens=96),
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


def fitted_excerpt(source, generator, limit: int | None, budget: int | None = None) -> str:
    """The excerpt shown to ``generator``: within its character and token limits (``budget``
    tokens, default the generator's ``context_tokens``)."""
    text = excerpt(source, limit)
    budget = budget or getattr(generator, "context_tokens", None)
    if budget:
        # Tokens per character vary along a chunk (code, Korean and English mixed), so one
        # proportional cut can still overshoot: cut again, a few times at most.
        for _ in range(6):
            tokens = generator.count_tokens(text)
            if tokens <= budget or len(text) <= 4:
                break
            text = excerpt(source, max(4, int(len(text) * budget / tokens * 0.9)))
    return text


def build_messages(question: str, retrieval: Retrieval, lang: str, history: History, prompts,
                   context_chars: int | None = None, generator=None) -> list[dict]:
    from dataclasses import replace

    language = prompts.language_name(lang)
    refusal = prompts.refusal(lang)
    # The packaged system prompt is the same for every question (the language and the
    # refusal sentence come with the question): a server's prefix cache (llama.cpp's KV
    # reuse in process and in llama-server, vLLM's prefix caching) then reads it once, not
    # once per question. A user's own system.jinja may still use both variables.
    system = prompts.render("system.jinja", language=language, refusal=refusal)
    messages = [{"role": "system", "content": system}]
    for user, assistant in list(history)[-HISTORY_TURNS:]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    # A generator may give the best source a larger share (``context_first``: tokens, characters):
    # the answer is most often there, so tokens spent on it buy more than in every source.
    first = getattr(generator, "context_first", None) if context_chars else None
    shown = [replace(s, text=fitted_excerpt(s, generator, first[1], first[0]) if rank == 0 and first
                     else fitted_excerpt(s, generator, context_chars))
             for rank, s in enumerate(retrieval.sources)]
    context = prompts.render("context.jinja", sources=shown, question=question, language=language,
                             refusal=refusal)
    messages.append({"role": "user", "content": context})
    return messages


class WindowLookup:
    """A source's sentence windows and their vectors, from the index (rag.citations)."""

    def __init__(self, index, embedder):
        self.index, self.embedder = index, embedder

    def __call__(self, source):
        from .citations import source_windows

        found = source_windows(source, self.index, self.embedder)
        return found.texts, found.vectors


class AnswerStream:
    """Iterate for the answer's text pieces; ``sources`` are known before the first
    piece, ``answer`` (an :class:`Answer`) once the iteration has finished. The pieces
    join to ``answer.generated_text``; ``answer.text`` is that text after the citation
    check (a front end shows it in place of the streamed text when the stream ends)."""

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
        try:
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
        finally:
            # Leaving the loop early (the UI's Stop, a closed connection) closes the generator's
            # stream at once: a local model stops generating and is free for the next question.
            self.close()
        self._finish(self.answer, "".join(parts))
        self.refused = self.answer.refused
        self.sources = self.answer.sources

    def close(self) -> None:
        """Stop generating (the rest of the answer is not produced)."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class QA:
    """A question-answering pipeline over one index, built once and reused.

        qa = QA(".rag/index", generator="extractive", retrieval=RetrievalSettings(k=8))
        answer = qa.ask("What is the 2-3-1 principle?")
        for piece in qa.stream("And in Korean?", history=[(answer.question, answer.text)]):
            print(piece, end="")

    The index is reopened only when an ingest has made a new version live; the
    generator and embedder are loaded once per process and shared between threads.
    Per-call ``retrieval=`` / ``generation=`` (objects or dicts) and keyword options
    override the pipeline's settings for that call only.
    """

    def __init__(self, index: str | os.PathLike | None = None, generator: str | None = None,
                 model: str | None = None, *, prompts: Prompts | str | os.PathLike | None = None,
                 retrieval: RetrievalSettings | dict | None = None,
                 generation: GenerationSettings | dict | None = None, embed_model: str | None = None):
        from .generators import generator_info

        self.index_path = config.index_dir(index)
        self.embed_model = embed_model
        self.generator_name = config.generator_name(generator)
        generator_info(self.generator_name)  # an unknown name fails here, before anything loads
        self.model = model
        self.prompts = prompts if isinstance(prompts, Prompts) else get_prompts(prompts)
        self.retrieval = merge(RetrievalSettings(), retrieval)
        self.generation = merge(GenerationSettings(), generation)

    @property
    def index(self):
        """The live index version (cached; reloaded after an ingest)."""
        return open_index(self.index_path, self.embed_model)

    def generator_for(self, name: str | None = None, model: str | None = None):
        from .generators import get_generator

        if name is None:
            name, model = self.generator_name, model or self.model
        return get_generator(name, model)

    @property
    def generator(self):
        return self.generator_for()

    def _settings(self, retrieval, generation, options):
        retrieval_options, generation_options = split_options(options)
        retrieval_settings = merge(merge(self.retrieval, retrieval), retrieval_options or None)
        generation_settings = merge(merge(self.generation, generation), generation_options or None)
        return retrieval_settings, generation_settings

    def search(self, question: str, *, retrieval: RetrievalSettings | dict | None = None, **options) -> Retrieval:
        """Retrieve for ``question`` with what refusal needs (best cosine, timings)."""
        settings, _ = self._settings(retrieval, None, options)
        return search(self.index, check_question(question), settings)

    def warm_up(self) -> None:
        """Load the index and the embedder and run one search in each script's path, so
        the first real question is as fast as the rest: the Chinese word segmenter
        (jieba) alone builds its dictionary for ~1 s on the first Chinese question."""
        self.search("warm-up 预热问题 준비 질문 domanda di prova", k=1)

    def retrieve(self, question: str, *, retrieval: RetrievalSettings | dict | None = None,
                 **options) -> list[Source]:
        """The chunks that best answer ``question``, best first."""
        return self.search(question, retrieval=retrieval, **options).sources

    def stream(self, question: str, **kwargs) -> "AnswerStream":
        """:meth:`ask` with ``stream=True``."""
        return self.ask(question, stream=True, **kwargs)

    def ask(self, question: str, *, history: History | None = None, stream: bool = False,
            generator: str | None = None, model: str | None = None,
            retrieval: RetrievalSettings | dict | None = None,
            generation: GenerationSettings | dict | None = None, **options) -> Answer | "AnswerStream":
        """Answer ``question`` from the documents.

        Returns an :class:`Answer`, or with ``stream=True`` an :class:`AnswerStream` whose
        iteration yields the text as it is generated. ``options`` are fields of
        :class:`RetrievalSettings` or :class:`GenerationSettings` (``k=8``, ``temperature=0``).
        """
        from .generators import GenerationRequest, generator_info
        from .embedders import get_embedder

        started = time.perf_counter()
        question = check_question(question)
        retrieval_settings, generation_settings = self._settings(retrieval, generation, options)
        if retrieval_settings.k > MAX_ANSWER_K:
            raise InputError(f"k={retrieval_settings.k}: answer from 1 to {MAX_ANSWER_K} chunks")
        if generator is not None:
            generator_info(generator)
        history = [(str(q), str(a)) for q, a in (history or [])]
        opened = self.index
        gen = self.generator_for(generator, model)
        prompts = self.prompts

        t0 = time.perf_counter()
        standalone = condense(question, history, gen, prompts)
        t1 = time.perf_counter()
        # A follow-up is retrieved as typed and as made standalone, the rankings fused.
        retrieval_result = search_phrasings(opened, [question, standalone], retrieval_settings)
        lang = detect_language(question)
        answer = Answer(
            text="", sources=retrieval_result.sources, question=question, standalone_question=standalone,
            lang=lang, generator=gen.name, model=gen.model, score=round(retrieval_result.best_dense, 4),
            timings={"condense": t1 - t0, "retrieval": retrieval_result.timings.get("total", 0.0)},
        )
        # Answerability: several signals in one score (rag/answerability.py), one threshold.
        from .answerability import score as answerability_score
        from .answerability import signals as answerability_signals

        from .citations import term_evidence
        from .generators.extractive import lead, rank_passages

        embedder = get_embedder(opened.embed_model)
        t2 = time.perf_counter()
        evidence = term_evidence(standalone, opened, embedder)
        windows = WindowLookup(opened, embedder)
        # The passage a reader would answer with: whether it holds the kind of answer asked
        # for is a signal; the extractive generator answers from this same ranking. A
        # follow-up with words of its own ("Who performs the calibration?" after "What is
        # the calibration interval?") is read by them: the joined question retrieves the
        # topic, but its older half would pick the passage that answered it before.
        reader_question, reader_evidence, own = standalone, evidence, None
        if standalone != question:
            own = term_evidence(question, opened, embedder)
            if len(own):
                reader_question, reader_evidence = standalone, own
        ranked = rank_passages(reader_question, retrieval_result.sources, embedder, reader_evidence, windows)
        signals, evidence = answerability_signals(standalone, retrieval_result, opened, embedder, evidence=evidence,
                                                  own_question=question, own_evidence=own,
                                                  passage=lead(ranked)[1] if ranked else "")
        answer.score = round(answerability_score(signals), 4)
        answer.timings["answerability"] = time.perf_counter() - t2
        threshold = config.min_score(retrieval_settings.min_score)
        if answer.score < config.caution_score(retrieval_settings.caution_score):
            answer.confidence = "low"
            answer.note = prompts.caution(lang)
        if not retrieval_result.sources or answer.score < threshold:
            answer.refused = True
            answer.confidence, answer.note = "none", ""
            answer.text = prompts.refusal(lang)
            answer.sources = []
            answer.timings["total"] = time.perf_counter() - started
            return AnswerStream(answer, None, None) if stream else answer

        context_limit = gen.context_chars
        if context_limit:
            from .retrieval import add_focus

            add_focus(retrieval_result.sources, standalone, embedder)
        request = GenerationRequest(
            messages=build_messages(standalone, retrieval_result, lang, history, prompts, context_limit, gen),
            question=standalone, sources=retrieval_result.sources, settings=generation_settings,
            embedder=embedder, evidence=evidence, windows=windows, ranked=ranked,
        )
        refusal_text = prompts.refusal(lang)
        gen_started = time.perf_counter()

        def finish(ans: Answer, text: str) -> None:
            ans.text = ans.generated_text = text.strip()
            # The model was told to reply with the refusal sentence when the excerpts lack the answer.
            if refusal_text.rstrip(".。") in ans.text and len(ans.text) < len(refusal_text) + 40:
                ans.refused = True
                ans.confidence, ans.note = "none", ""
                ans.sources = []  # nothing was taken from them
            ans.timings["generation"] = time.perf_counter() - gen_started
            if not ans.refused and ans.text:
                # Every sentence checked against the sources (rag/citations.py): markers that
                # do not support their sentence are moved or removed, unsupported ones marked.
                from .citations import CitationChecker

                checked = CitationChecker(opened, embedder).check(ans.text, ans.sources)
                ans.text, ans.citations = checked.text, checked.citations
                ans.timings["citations"] = checked.seconds
            ans.timings["total"] = time.perf_counter() - started

        if stream:
            return AnswerStream(answer, gen.stream(request), finish)
        finish(answer, gen.generate(request))
        return answer


_default_lock = threading.Lock()
_defaults: dict[tuple, QA] = {}


def default_qa(index: str | os.PathLike | None = None, *, embed_model: str | None = None,
               prompts_dir: str | os.PathLike | None = None) -> QA:
    """The QA that ``rag.ask()`` / ``rag.retrieve()`` use for ``index`` (one per index,
    embedder and prompt folder; the environment is read on every call)."""
    key = (str(config.index_dir(index)), embed_model, config.prompts_dir(prompts_dir))
    with _default_lock:
        if key not in _defaults:
            _defaults[key] = QA(key[0], prompts=key[2], embed_model=embed_model)
        return _defaults[key]


def ask(question: str, index: str | os.PathLike | None = None, *, history: History | None = None,
        stream: bool = False, generator: str | None = None, model: str | None = None,
        embed_model: str | None = None, prompts_dir: str | os.PathLike | None = None,
        retrieval: RetrievalSettings | dict | None = None, generation: GenerationSettings | dict | None = None,
        **options) -> Answer | AnswerStream:
    """Answer ``question`` from the documents in ``index``: see :meth:`QA.ask`.

    ``options`` are settings fields: ``k``, ``min_score``, ``mmr``, ``reranker``, ``fusion``, the ranker
    weights (:class:`RetrievalSettings`); ``temperature``, ``top_p``, ``max_tokens``, ``stop``
    (:class:`GenerationSettings`). A misspelled one is an InputError before anything loads.
    """
    split_options(options)
    qa = default_qa(index, embed_model=embed_model, prompts_dir=prompts_dir)
    return qa.ask(question, history=history, stream=stream, generator=config.generator_name(generator),
                  model=model, retrieval=retrieval, generation=generation, **options)


def retrieve(question: str, index: str | os.PathLike | None = None, *, embed_model: str | None = None,
             retrieval: RetrievalSettings | dict | None = None, **options) -> list[Source]:
    """The chunks that best answer ``question``, best first: see :meth:`QA.retrieve`.
    ``options`` are :class:`RetrievalSettings` fields (``k``, ``candidates``, ``mmr``, ``reranker``, ...)."""
    from .settings import check_names

    check_names(RetrievalSettings, options)
    return default_qa(index, embed_model=embed_model).retrieve(question, retrieval=retrieval, **options)
