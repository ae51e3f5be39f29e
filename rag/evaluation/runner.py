"""Run a question set through ``rag.ask`` and score every answer.

A run folder (default ``./.rag/eval/<timestamp>``) holds::

    run.json        the settings the results were made with (checked when resuming)
    results.jsonl   one row per question, appended as each finishes (the resume log)
    results.csv     the same rows, flat, for spreadsheets
    summary.json    settings, index manifest summary, rag version, metrics, comparison
    report.md       the report
    report.html     the report with its plots, one self-contained file

Running again with the same folder skips the questions already answered with the
same settings (a killed run loses at most the questions in flight). Different
settings are refused with a message, unless ``fresh=True`` starts over.
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

from . import metrics as M
from .questions import Question, RowProblem, file_digest, load_questions

RUN_FILE = "run.json"
RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
SUMMARY_JSON = "summary.json"
COMPARE_JSON = "compare.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
OUTPUT_FILES = (RUN_FILE, RESULTS_JSONL, RESULTS_CSV, SUMMARY_JSON, COMPARE_JSON, REPORT_MD, REPORT_HTML)
DEFAULT_EVAL_DIR = Path(".rag") / "eval"
# Errors that no other question would escape: stop the run (what is done stays saved).
FATAL = (ConfigurationError, ServerUnavailableError, IndexError_, ModelLoadError, KeyboardInterrupt)
# Settings that change results: a resumed run must have the same ones.
FINGERPRINT_KEYS = ("index", "index_version", "embed_model", "generator", "model", "temperature", "top_p",
                    "max_tokens", "k", "min_score", "retrieval", "judge", "judge_model")


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


# --------------------------------------------------------------------------- the run folder


def _read_rows(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return rows
    except (OSError, UnicodeDecodeError):
        return rows
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when the run was killed
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
    return rows


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


def default_run_dir(base: Path | None = None) -> Path:
    base = Path(base) if base else DEFAULT_EVAL_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = base / stamp, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{stamp}-{n}"
    return candidate


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in FINGERPRINT_KEYS:
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


def prepare_run_dir(run_dir: Path, fingerprint: dict, fresh: bool) -> list[dict]:
    """Create the run folder, or reopen it: the rows already there, if the settings match."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_file, results = run_dir / RUN_FILE, run_dir / RESULTS_JSONL
    if fresh:
        for name in OUTPUT_FILES:
            (run_dir / name).unlink(missing_ok=True)
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint", {})
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous is None:
            raise InputError(f"{run_file} is unreadable: choose another --out, or add --fresh to start over there")
        changed = _differences(previous, fingerprint)
        if changed:
            raise InputError(
                f"{run_dir} holds results made with other settings ({'; '.join(changed)}): choose another --out, "
                f"or add --fresh to discard them and start over")
        return _read_rows(results)
    if results.exists():
        raise InputError(f"{results} exists but {RUN_FILE} does not, so its settings are unknown: choose another "
                         f"--out, or add --fresh to discard it")
    _write_atomic(run_file, json.dumps({"fingerprint": fingerprint, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                       ensure_ascii=False, indent=2))
    return []


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
    k: int = 5,
    *,
    generator: str | None = None,
    model: str | None = None,
    temperature: float = 0.2,
    top_p: float = 0.9,
    max_tokens: int = 512,
    min_score: float | None = None,
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
    **retrieval_options: Any,
) -> EvalResult:
    """Answer every question of ``questions`` (a file path or a list of dicts) and score the answers.

    ``out`` is the run folder (default ``./.rag/eval/<timestamp>``); a rerun with the same
    folder and settings only asks what is missing. ``compare`` is the folder of an earlier
    run to diff against. ``judge=True`` adds an LLM judge (an OpenAI-compatible endpoint
    from OPENAI_BASE_URL / OPENAI_API_KEY); an object with a ``grade`` method works too.
    Other keyword arguments are retrieval settings (``candidates``, ``mmr``, ``reranker``...).
    """
    from rag import __version__
    from rag.generators import get_generator
    from rag.settings import GenerationSettings, RetrievalSettings, check_names
    from rag.store import open_index

    if int(concurrency) < 1:
        raise InputError(f"concurrency={concurrency}: use 1 or more parallel questions")
    GenerationSettings(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    check_names(RetrievalSettings, retrieval_options)
    RetrievalSettings(k=k, **retrieval_options)
    qset = load_questions(questions, strict=strict)
    if compare:
        load_run(compare)  # a bad --compare folder fails now, not after the whole run
    todo_questions = qset.questions[: int(limit)] if limit else qset.questions
    index_path = config.index_dir(index)
    opened = open_index(index_path)
    gen = get_generator(generator, model)
    threshold = config.min_score(min_score)

    grader = None
    if judge:
        grader = judge if hasattr(judge, "grade") else LLMJudge(judge_model)
    settings = {
        "questions": qset.path or "(in memory)", "questions_sha256": file_digest(qset.path),
        "questions_format": qset.format,
        "index": str(index_path.resolve()), "index_version": opened.version, "embed_model": opened.embed_model,
        "generator": gen.name, "model": gen.model, "temperature": float(temperature), "top_p": float(top_p),
        "max_tokens": int(max_tokens), "k": int(k), "min_score": float(threshold),
        "retrieval": dict(sorted(retrieval_options.items())),
        "judge": bool(grader), "judge_model": getattr(grader, "model", None) if grader else None,
        "concurrency": int(concurrency), "limit": limit,
    }
    fingerprint = {key: settings[key] for key in FINGERPRINT_KEYS}
    run_dir = Path(out).expanduser() if out else default_run_dir()
    previous = prepare_run_dir(run_dir, fingerprint, fresh)

    wanted = {q.id: q for q in todo_questions}
    done: dict[str, dict] = {}
    for row in previous:
        q = wanted.get(row.get("id"))
        if q is not None and row.get("key") == q.key and not row.get("error"):
            done[q.id] = row
    # Rewrite the log with only the reusable rows (drops a half-written last line).
    _write_atomic(run_dir / RESULTS_JSONL, _jsonl([done[q.id] for q in todo_questions if q.id in done]))
    todo = [q for q in todo_questions if q.id not in done]

    scorer = Scorer(opened, int(k), grader) if todo else None
    if todo:  # the first question's latency should not include loading (embedder, BM25, caches)
        from rag.retrieval import RetrievalSettings, search

        search(opened, todo[0].question, RetrievalSettings(k=int(k), **retrieval_options))
    write_lock = threading.Lock()
    log = open(run_dir / RESULTS_JSONL, "a", encoding="utf-8")

    def run_one(q: Question) -> dict[str, Any]:
        from rag.qa import ask
        from rag.retrieval import RetrievalSettings, search

        row = question_row(q)
        try:
            answer = ask(q.question, index_path, k=int(k), generator=generator, model=model,
                         temperature=temperature, top_p=top_p, max_tokens=max_tokens, min_score=threshold,
                         **retrieval_options)
            retrieved = answer.sources
            if not retrieved:
                # A refusal drops the sources; retrieval is still scored on what it found.
                retrieved = search(opened, q.question, RetrievalSettings(k=int(k), **retrieval_options)).sources
            row.update({
                "answer": answer.text, "refused": bool(answer.refused), "score": answer.score,
                "answer_lang": answer.lang,
                "refused_by": (None if not answer.refused else "threshold"
                               if (answer.score or 0.0) < threshold or not retrieved else "generator"),
                "retrieved": [{"rank": i, "source": s.source, "page": s.page, "chunk_id": s.chunk_id,
                               "score": s.score, "dense_score": s.dense_score, "text": s.text}
                              for i, s in enumerate(retrieved, start=1)],
                "retrieval_s": answer.timings.get("retrieval"),
                "generation_s": answer.timings.get("generation"),
                "total_s": answer.timings.get("total"),
            })
            row.update(scorer.score(q, answer, retrieved))
            row["error"] = None
        except FATAL:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad question must not end the run
            row.update({"answer": "", "refused": None, "score": None, "error": f"{type(exc).__name__}: {exc}"})
        for key, value in list(row.items()):
            row[key] = _round(value)
        with write_lock:
            log.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            log.flush()
        return row

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo_questions), initial=len(done), desc="eval", unit="q", file=sys.stderr,
               disable=not progress or not todo, leave=False, dynamic_ncols=True)
    new_rows: dict[str, dict] = {}
    try:
        if int(concurrency) == 1:
            for q in todo:
                new_rows[q.id] = run_one(q)
                bar.update(1)
                if on_result:
                    on_result(new_rows[q.id])
        else:
            with ThreadPoolExecutor(max_workers=int(concurrency)) as pool:
                pending = {pool.submit(run_one, q) for q in todo}
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            row = future.result()
                            new_rows[row["id"]] = row
                            bar.update(1)
                            if on_result:
                                on_result(row)
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
    finally:
        bar.close()
        log.close()

    rows = [done.get(q.id) or new_rows[q.id] for q in todo_questions]
    _write_atomic(run_dir / RESULTS_JSONL, _jsonl(rows))
    metrics = M.aggregate(rows, int(k), threshold)
    summary = {
        "rag_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run_dir.resolve()),
        "settings": settings,
        "index": manifest_summary(index_path, opened),
        "questions": {
            "path": qset.path, "format": qset.format, "loaded": len(qset), "evaluated": len(todo_questions),
            "skipped_rows": len(qset.problems), "problems": [{"line": p.line, "reason": p.reason} for p in qset.problems[:200]],
            "resumed": len(done), "asked": len(new_rows),
        },
        "metrics": metrics,
    }
    comparison = None
    if compare:
        from .report import compare_runs

        comparison = compare_runs(summary, rows, Path(compare).expanduser())
        summary["comparison"] = {k: v for k, v in comparison.items() if k != "question_changes"} | {
            "question_changes": comparison["question_changes"][:500]}
        _write_atomic(run_dir / COMPARE_JSON, json.dumps(comparison, ensure_ascii=False, indent=2, default=str))
    _write_atomic(run_dir / SUMMARY_JSON, json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    write_csv(run_dir / RESULTS_CSV, rows)
    result = EvalResult(run_dir=run_dir, settings=settings, metrics=metrics, rows=rows, problems=qset.problems,
                        summary=summary, comparison=comparison, resumed=len(done), answered=len(new_rows))
    if report:
        from .report import write_reports

        write_reports(result)
    return result


CSV_COLUMNS = [
    "id", "lang", "answerable", "refused", "correct", "score", "hit", "mrr", "recall", "evidence_rank",
    "source_hit", "source_mrr", "source_rank", "keyword_correct", "exact_match", "f1", "semantic_similarity",
    "groundedness", "sentences", "citations", "citation_validity", "citation_support", "retrieval_s",
    "generation_s", "total_s", "expected_sources", "retrieved_sources", "question", "answer", "error",
]


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["expected_sources"] = " | ".join(row.get("expected_sources") or [])
        flat["retrieved_sources"] = " | ".join(
            f"{r['source']}" + (f" p.{r['page']}" if r.get("page") else "") for r in row.get("retrieved") or [])
        for key in ("answerable", "refused", "correct", "keyword_correct"):
            if isinstance(flat.get(key), bool):
                flat[key] = int(flat[key])
        writer.writerow(flat)
    _write_atomic(path, buffer.getvalue())


def load_run(run_dir: str | os.PathLike) -> tuple[dict, list[dict]]:
    """(summary, rows) of an earlier run folder."""
    run_dir = Path(run_dir).expanduser()
    summary_path = run_dir / SUMMARY_JSON
    if not run_dir.is_dir():
        raise InputError(f"no run folder at {run_dir}: give the --out folder of an earlier `rag eval`")
    if not summary_path.exists():
        raise InputError(f"{run_dir} has no {SUMMARY_JSON}: it is not a finished `rag eval` run folder")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{summary_path} is unreadable ({exc}): choose another run to compare with") from None
    return summary, _read_rows(run_dir / RESULTS_JSONL)


__all__ = ["evaluate", "EvalResult", "LLMJudge", "load_run", "parse_judgement"]
