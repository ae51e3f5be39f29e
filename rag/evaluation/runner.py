"""Run a question set through one :class:`rag.qa.QA` pipeline and score every answer.

The run folder and its files are described in :mod:`.runs`. Running again with the
same folder skips the questions already answered with the same settings (a killed
run loses at most the questions in flight). Different settings are refused with a
message, unless ``fresh=True`` starts over.

    from rag.evaluation.runner import evaluate
    evaluate("questions.jsonl", index=".rag/index", generator="extractive",
             retrieval=RetrievalSettings(k=8), generation={"temperature": 0.0})
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rag import config
from rag.errors import (
    ConfigurationError,
    IndexError_,
    InputError,
    ModelLoadError,
    ServerUnavailableError,
)
from rag.settings import GenerationSettings, RetrievalSettings, merge, split_options

from . import metrics as M
from .questions import Question, QuestionSet, RowProblem, file_digest, load_questions
from .runs import (
    COMPARE_JSON,
    FINGERPRINT_KEYS,
    REPORT_HTML,
    REPORT_MD,
    RESULTS_CSV,
    RESULTS_JSONL,
    SUMMARY_JSON,
    default_run_dir,
    jsonl,
    load_run,
    prepare_run_dir,
    write_atomic,
    write_csv,
    write_json,
)

# Errors that no other question would escape: stop the run (what is done stays saved).
FATAL = (ConfigurationError, ServerUnavailableError, IndexError_, ModelLoadError, KeyboardInterrupt)


@dataclass
class EvalResult:
    """What ``rag.evaluate`` returns: the run folder, the per-question rows and the metrics."""

    run_dir: Path
    settings: dict[str, Any]
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    problems: list[RowProblem] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    resumed: int = 0  # rows reused from an earlier, interrupted run
    answered: int = 0  # questions asked in this call

    @property
    def skipped(self) -> int:
        """Bad rows of the question file that were left out."""
        return len(self.problems)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.rows if r.get("error"))

    @property
    def flat_metrics(self) -> dict[str, float]:
        return M.flatten(self.metrics)

    def path(self, name: str) -> Path:
        return self.run_dir / name

    @property
    def report_html(self) -> Path:
        return self.run_dir / REPORT_HTML

    @property
    def report_md(self) -> Path:
        return self.run_dir / REPORT_MD

    def to_dict(self) -> dict[str, Any]:
        return self.summary


# --------------------------------------------------------------------------- the LLM judge


JUDGE_PROMPT = """You grade one answer of a question-answering system that must answer only from document excerpts.

Question: {question}

Excerpts:
{excerpts}

Answer:
{answer}
{reference}
Count the factual claims in the answer and how many of them the excerpts support.
Reply with one JSON object and nothing else:
{{"claims": <int>, "supported": <int>, "correct": <true|false|null: does the answer agree with the reference answer; null when there is none>, "reason": "<one short sentence>"}}"""


class LLMJudge:
    """Grades groundedness (and correctness against a reference) with an OpenAI-compatible model."""

    def __init__(self, model: str | None = None, client: Any = None):
        if client is None:
            base_url, api_key = config.openai_endpoint()
            if not (base_url or api_key):
                raise ConfigurationError(
                    "--judge needs an OpenAI-compatible endpoint: set OPENAI_API_KEY, or OPENAI_BASE_URL for a "
                    "local server (llama.cpp, vLLM, Ollama); or run without --judge")
            from openai import OpenAI

            client = OpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=120.0, max_retries=2)
        self.client = client
        self.model = config.judge_model(model) or "gpt-4o-mini"

    def grade(self, question: str, answer: str, chunks: list[str], references: list[str]) -> dict[str, Any]:
        excerpts = "\n".join(f"[{i}] {' '.join(c.split())[:1500]}" for i, c in enumerate(chunks, start=1)) or "(none)"
        reference = f"\nReference answer: {' | '.join(references)}\n" if references else ""
        prompt = JUDGE_PROMPT.format(question=question, excerpts=excerpts, answer=answer, reference=reference)
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0, max_tokens=300)
            text = response.choices[0].message.content or ""
        except Exception as exc:  # one failed grade must not stop the run
            return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return parse_judgement(text)


def parse_judgement(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {"error": f"no JSON in the judge's reply: {text[:120]!r}"}
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return {"error": f"unreadable JSON in the judge's reply: {text[start:start + 120]!r}"}
    try:
        claims, supported = int(data.get("claims") or 0), int(data.get("supported") or 0)
    except (TypeError, ValueError):
        return {"error": f"claims/supported are not numbers: {text[start:start + 120]!r}"}
    correct = data.get("correct")
    if isinstance(correct, str):
        correct = {"true": True, "false": False}.get(correct.strip().lower())
    grounded = min(1.0, supported / claims) if claims > 0 else 1.0
    return {"grounded": grounded, "claims": claims, "supported": supported,
            "correct": correct if isinstance(correct, bool) else None, "reason": str(data.get("reason", ""))[:300]}


# --------------------------------------------------------------------------- scoring one question


class Scorer:
    """Per-question metrics; holds the index's embedder and its chunk vectors."""

    def __init__(self, opened, k: int, judge: Any = None):
        from rag.embedders import get_embedder

        self.index = opened
        self.k = k
        self.embedder = get_embedder(opened.embed_model)
        self.rows_by_chunk = {c.id: i for i, c in enumerate(opened.chunks)}
        self.judge = judge
        self._lock = threading.Lock()

    def chunk_vectors(self, sources) -> np.ndarray | None:
        rows = [self.rows_by_chunk.get(s.chunk_id) for s in sources]
        if not rows or any(r is None for r in rows):
            return None
        return np.asarray(self.index.vectors[rows], dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return self.embedder.embed_passages(texts)

    def score(self, q: Question, answer, retrieved) -> dict[str, Any]:
        row: dict[str, Any] = {}
        chunk_texts = [s.text for s in retrieved[: self.k]]
        # Retrieval: the evidence passages and the expected files among the k retrieved chunks.
        ranks = M.evidence_ranks(chunk_texts, q.evidence) if q.evidence else []
        scores = M.ranking_scores(ranks, self.k)
        row["evidence_rank"] = min((r for r in ranks if r), default=None) if ranks else None
        row["hit"], row["mrr"], row["recall"] = (scores["hit"], scores["mrr"], scores["recall"]) if scores else (None,) * 3
        sranks = M.source_ranks([s.source for s in retrieved[: self.k]], q.sources) if q.sources else []
        sscores = M.ranking_scores(sranks, self.k)
        row["source_rank"] = min((r for r in sranks if r), default=None) if sranks else None
        row["source_hit"], row["source_mrr"], row["source_recall"] = (
            (sscores["hit"], sscores["mrr"], sscores["recall"]) if sscores else (None,) * 3)

        # Answer quality against the gold answers.
        text = answer.text or ""
        correct = M.keyword_groups_match(text, q.groups)
        row["keyword_correct"] = correct
        row["exact_match"] = M.exact_match(text, q.references)
        row["f1"] = M.token_f1(text, q.references)

        # Groundedness and citations: sentences of the answer against the chunks it was given.
        sentences = [] if answer.refused else M.split_sentences(text)
        plain = [M.strip_citations(s) for s in sentences]
        to_embed = plain + (list(q.references) if q.references else [])
        vectors = self.embed(to_embed) if to_embed else None
        sentence_vecs = vectors[: len(plain)] if vectors is not None else None
        if q.references:
            answer_vec = self.embed([M.strip_citations(text)])[0] if text.strip() else None
            ref_vecs = vectors[len(plain):]
            row["semantic_similarity"] = (round(float(np.max(ref_vecs @ answer_vec)), 4)
                                          if answer_vec is not None else 0.0)
        else:
            row["semantic_similarity"] = None
        answer_chunks = [s.text for s in answer.sources]
        support = None
        if sentences:
            chunk_vecs = self.chunk_vectors(answer.sources)
            if chunk_vecs is None and answer_chunks:
                chunk_vecs = self.embed(answer_chunks)
            cosines = (sentence_vecs @ chunk_vecs.T) if (sentence_vecs is not None and chunk_vecs is not None
                                                       and len(answer_chunks)) else None
            support = M.support_matrix(plain, answer_chunks, cosines)
            row["groundedness"] = M.groundedness(support)
        else:
            row["groundedness"] = None
        row["sentences"] = len(sentences)
        row.update(M.citation_check(sentences, len(answer.sources), support) if sentences else {
            "citations": 0, "citations_valid": 0, "citations_supported": 0, "citation_validity": None,
            "citation_support": None, "cited_sentences": None})

        # One verdict per question for comparisons: right answer, or a refusal when unanswerable.
        if q.answerable is False:
            row["correct"] = bool(answer.refused)
        elif correct is not None:
            row["correct"] = correct
        elif q.references:
            row["correct"] = bool((row["exact_match"] or 0) >= 1.0 or (row["f1"] or 0) >= 0.5)
        else:
            row["correct"] = None
        if self.judge is not None and not answer.refused and text.strip():
            row["judge"] = self.judge.grade(q.question, text, answer_chunks, q.references)
        else:
            row["judge"] = None
        return row


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def question_row(q: Question) -> dict[str, Any]:
    return {
        "id": q.id, "key": q.key, "line": q.line, "question": q.question, "lang": q.lang,
        "lang_detected": q.lang_detected, "answerable": q.answerable, "expected_sources": q.sources,
        "evidence": q.evidence, "references": q.references, "groups": q.groups,
    }


def manifest_summary(index_path: Path, opened) -> dict[str, Any]:
    from rag.store import read_manifest

    try:
        manifest = read_manifest(index_path)
    except Exception:  # noqa: BLE001 - the summary is informative only
        manifest = opened.manifest
    files = manifest.get("files") or {}
    return {
        "path": str(index_path.resolve()), "version": opened.version,
        "embedder": manifest.get("embedder", {}).get("name"),
        "chunker": {k: manifest.get("chunker", {}).get(k) for k in ("chunk_size", "chunk_overlap", "unit")},
        "index_type": manifest.get("index_type"), "n_chunks": manifest.get("n_chunks", len(opened)),
        "n_files": len(files), "files": sorted({(v or {}).get("source") or Path(p).name for p, v in files.items()})
        if isinstance(files, dict) else [],
        "updated_at": manifest.get("updated_at"),
    }


# --------------------------------------------------------------------------- evaluate


def evaluate(
    questions: Any,
    index: str | os.PathLike | None = None,
    *,
    retrieval: RetrievalSettings | dict | None = None,
    generation: GenerationSettings | dict | None = None,
    generator: str | None = None,
    model: str | None = None,
    out: str | os.PathLike | None = None,
    compare: str | os.PathLike | None = None,
    concurrency: int = 1,
    strict: bool = False,
    progress: bool = True,
    judge: Any = False,
    judge_model: str | None = None,
    fresh: bool = False,
    limit: int | None = None,
    report: bool = True,
    on_result: Callable[[dict], None] | None = None,
    **options: Any,
) -> EvalResult:
    """Answer every question of ``questions`` (a file path, a list of dicts or a loaded
    question set) and score the answers.

    ``retrieval`` / ``generation`` are :class:`~rag.settings.RetrievalSettings` /
    :class:`~rag.settings.GenerationSettings` (or dicts of their fields); keyword
    ``options`` are fields of either (``k=3``, ``temperature=0``, ``mmr=True``...) and
    win over them. A misspelled option is an InputError before anything loads.
    ``out`` is the run folder (default ``./.rag/eval/<timestamp>``); a rerun with the same
    folder and settings only asks what is missing. ``compare`` is the folder of an earlier
    run to diff against. ``judge=True`` adds an LLM judge (an OpenAI-compatible endpoint
    from OPENAI_BASE_URL / OPENAI_API_KEY); an object with a ``grade`` method works too.
    """
    retrieval_options, generation_options = split_options(options)
    retrieval = merge(merge(RetrievalSettings(), retrieval), retrieval_options or None)
    generation = merge(merge(GenerationSettings(), generation), generation_options or None)
    run = EvalRun(questions, index, retrieval, generation, generator=generator, model=model, out=out,
                  compare=compare, concurrency=concurrency, strict=strict, judge=judge, judge_model=judge_model,
                  limit=limit)
    run.open(fresh)
    run.answer_all(progress=progress, on_result=on_result)
    return run.finish(report=report)


class EvalRun:
    """One evaluation: the question set, one QA pipeline every question goes through,
    the scorer and the run folder.

    Steps: :meth:`open` (reopen or create the run folder, find what is left to ask),
    :meth:`answer_all` (ask and score, appending each row to the log as it finishes),
    :meth:`finish` (metrics, summary, comparison, CSV and reports).
    """

    def __init__(self, questions: Any, index: str | os.PathLike | None, retrieval: RetrievalSettings,
                 generation: GenerationSettings, *, generator: str | None = None, model: str | None = None,
                 out: str | os.PathLike | None = None, compare: str | os.PathLike | None = None,
                 concurrency: int = 1, strict: bool = False, judge: Any = False, judge_model: str | None = None,
                 limit: int | None = None):
        from rag.qa import QA

        if int(concurrency) < 1:
            raise InputError(f"concurrency={concurrency}: use 1 or more parallel questions")
        self.retrieval = retrieval
        self.generation = generation
        self.k = retrieval.k
        self.concurrency = int(concurrency)
        self.limit = limit
        self.qset: QuestionSet = load_questions(questions, strict=strict)
        self.compare = Path(compare).expanduser() if compare else None
        if self.compare:
            load_run(self.compare)  # a bad --compare folder fails now, not after the whole run
        self.questions: list[Question] = self.qset.questions[: int(limit)] if limit else self.qset.questions
        self.qa = QA(index, generator, model, retrieval=retrieval, generation=generation)
        self.index_path = self.qa.index_path
        self.opened = self.qa.index
        self.generator = self.qa.generator
        self.threshold = config.min_score(retrieval.min_score)
        self.grader = (judge if hasattr(judge, "grade") else LLMJudge(judge_model)) if judge else None
        self.settings = self._describe_settings()
        self.run_dir = Path(out).expanduser() if out else default_run_dir()
        self.done: dict[str, dict] = {}  # rows reused from an earlier, interrupted run
        self.new_rows: dict[str, dict] = {}
        self.todo: list[Question] = []
        self.scorer: Scorer | None = None  # made when there is something to ask
        self._log = None  # results.jsonl, open for appending while questions are answered
        self._log_lock = threading.Lock()

    def _describe_settings(self) -> dict[str, Any]:
        defaults = RetrievalSettings.defaults()
        # Only the retrieval knobs changed from their defaults, so that a run folder made
        # before a new knob existed still resumes.
        changed = {name: value for name, value in sorted(self.retrieval.to_dict().items())
                   if name not in ("k", "min_score") and value != defaults[name]}
        return {
            "questions": self.qset.path or "(in memory)", "questions_sha256": file_digest(self.qset.path),
            "questions_format": self.qset.format,
            "index": str(self.index_path.resolve()), "index_version": self.opened.version,
            "embed_model": self.opened.embed_model,
            "generator": self.generator.name, "model": self.generator.model,
            "temperature": self.generation.temperature, "top_p": self.generation.top_p,
            "max_tokens": self.generation.max_tokens, "stop": list(self.generation.stop) or None,
            "k": self.k, "min_score": float(self.threshold), "retrieval": changed,
            "judge": bool(self.grader), "judge_model": getattr(self.grader, "model", None) if self.grader else None,
            "concurrency": self.concurrency, "limit": self.limit,
        }

    def open(self, fresh: bool = False) -> None:
        """Create or reopen the run folder; keep the earlier rows that still apply."""
        fingerprint = {key: self.settings[key] for key in FINGERPRINT_KEYS}
        previous = prepare_run_dir(self.run_dir, fingerprint, fresh)
        wanted = {q.id: q for q in self.questions}
        for row in previous:
            q = wanted.get(row.get("id"))
            if q is not None and row.get("key") == q.key and not row.get("error"):
                self.done[q.id] = row
        # Rewrite the log with only the reusable rows (drops a half-written last line).
        write_atomic(self.run_dir / RESULTS_JSONL, jsonl([self.done[q.id] for q in self.questions if q.id in self.done]))
        self.todo = [q for q in self.questions if q.id not in self.done]

    def answer_all(self, progress: bool = True, on_result: Callable[[dict], None] | None = None) -> None:
        """Ask and score every question left, ``concurrency`` at a time; each row is
        appended to results.jsonl as it finishes."""
        from rag.progress import progress_bar

        if not self.todo:
            return
        self.scorer = Scorer(self.opened, self.k, self.grader)
        # the first question's latency should not include loading (embedder, BM25, caches)
        self.qa.search(self.todo[0].question)
        self._log = open(self.run_dir / RESULTS_JSONL, "a", encoding="utf-8")
        bar = progress_bar(total=len(self.questions), initial=len(self.done), desc="eval", unit="q",
                           disable=not progress, leave=False, dynamic_ncols=True)

        def finished(row: dict) -> None:
            self.new_rows[row["id"]] = row
            bar.update(1)
            if on_result:
                on_result(row)

        try:
            if self.concurrency == 1:
                for q in self.todo:
                    finished(self.answer(q))
            else:
                with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                    pending = {pool.submit(self.answer, q) for q in self.todo}
                    try:
                        while pending:
                            done, pending = wait(pending, return_when=FIRST_COMPLETED)
                            for future in done:
                                finished(future.result())
                    except BaseException:
                        for future in pending:
                            future.cancel()
                        raise
        finally:
            bar.close()
            self._log.close()

    def answer(self, q: Question) -> dict[str, Any]:
        """Ask one question and score the answer: its row (an ``error`` row when it failed)."""
        row = question_row(q)
        try:
            answer = self.qa.ask(q.question)
            retrieved = answer.sources
            if not retrieved:
                # A refusal drops the sources; retrieval is still scored on what it found.
                retrieved = self.qa.search(q.question).sources
            row.update({
                "answer": answer.text, "refused": bool(answer.refused), "score": answer.score,
                "confidence": answer.confidence,
                "generator": answer.generator, "citations_checked": [c.to_dict() for c in answer.citations],
                **M.checked_citations([c.to_dict() for c in answer.citations]),
                "answer_lang": answer.lang,
                "refused_by": (None if not answer.refused else "threshold"
                               if (answer.score or 0.0) < self.threshold or not retrieved else "generator"),
                "retrieved": [{"rank": i, "source": s.source, "page": s.page, "chunk_id": s.chunk_id,
                               "score": s.score, "dense_score": s.dense_score, "text": s.text}
                              for i, s in enumerate(retrieved, start=1)],
                "retrieval_s": answer.timings.get("retrieval"),
                "generation_s": answer.timings.get("generation"),
                "total_s": answer.timings.get("total"),
            })
            row.update(self.scorer.score(q, answer, retrieved))
            row["error"] = None
        except FATAL:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad question must not end the run
            row.update({"answer": "", "refused": None, "score": None, "error": f"{type(exc).__name__}: {exc}"})
        for key, value in list(row.items()):
            row[key] = _round(value)
        with self._log_lock:
            self._log.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            self._log.flush()
        return row

    def finish(self, report: bool = True) -> EvalResult:
        """Metrics over every row, then summary.json, compare.json, results.csv and the reports."""
        from rag.version import __version__

        rows = [self.done.get(q.id) or self.new_rows[q.id] for q in self.questions]
        write_atomic(self.run_dir / RESULTS_JSONL, jsonl(rows))
        metrics = M.aggregate(rows, self.k, self.threshold)
        qset = self.qset
        summary = {
            "rag_version": __version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_dir": str(self.run_dir.resolve()),
            "settings": self.settings,
            "index": manifest_summary(self.index_path, self.opened),
            "questions": {
                "path": qset.path, "format": qset.format, "loaded": len(qset), "evaluated": len(self.questions),
                "skipped_rows": len(qset.problems),
                "problems": [{"line": p.line, "reason": p.reason} for p in qset.problems[:200]],
                "resumed": len(self.done), "asked": len(self.new_rows),
            },
            "metrics": metrics,
        }
        comparison = None
        if self.compare:
            from .report import compare_runs

            comparison = compare_runs(summary, rows, self.compare)
            summary["comparison"] = {k: v for k, v in comparison.items() if k != "question_changes"} | {
                "question_changes": comparison["question_changes"][:500]}
            write_json(self.run_dir / COMPARE_JSON, comparison)
        write_json(self.run_dir / SUMMARY_JSON, summary)
        write_csv(self.run_dir / RESULTS_CSV, rows)
        result = EvalResult(run_dir=self.run_dir, settings=self.settings, metrics=metrics, rows=rows,
                            problems=qset.problems, summary=summary, comparison=comparison,
                            resumed=len(self.done), answered=len(self.new_rows))
        if report:
            from .report import write_reports

            write_reports(result)
        return result


__all__ = ["evaluate", "EvalRun", "EvalResult", "LLMJudge", "load_run", "parse_judgement", "default_run_dir"]
