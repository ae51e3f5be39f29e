"""The run folder of `rag eval`: its file names, and reading and writing them.

A run folder (default ``./.rag/eval/<timestamp>``) holds::

    run.json        the settings the results were made with (checked when resuming)
    results.jsonl   one row per question, appended as each finishes (the resume log)
    results.csv     the same rows, flat, for spreadsheets
    summary.json    settings, index manifest summary, rag version, metrics, comparison
    compare.json    the comparison with an earlier run (--compare)
    report.md       the report
    report.html     the report with its plots, one self-contained file

A module of its own so that the runner (which writes runs) and the report (which
also reads an earlier run to compare with) both build on it without importing
each other.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rag.errors import InputError

RUN_FILE = "run.json"
RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
SUMMARY_JSON = "summary.json"
COMPARE_JSON = "compare.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
OUTPUT_FILES = (RUN_FILE, RESULTS_JSONL, RESULTS_CSV, SUMMARY_JSON, COMPARE_JSON, REPORT_MD, REPORT_HTML)
DEFAULT_EVAL_DIR = Path(".rag") / "eval"
# Settings that change results: a resumed run must have the same ones.
FINGERPRINT_KEYS = ("index", "index_version", "embed_model", "generator", "model", "temperature", "top_p",
                    "max_tokens", "stop", "k", "min_score", "retrieval", "judge", "judge_model")


def read_rows(path: Path) -> list[dict]:
    """The rows of a results.jsonl; a torn last line (a killed run) is left out."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):  # missing or unreadable: nothing to resume
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


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2, default=str))


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)


def default_run_dir(base: Path | None = None) -> Path:
    """A new folder named after the time, under ``base`` (default ./.rag/eval)."""
    base = Path(base) if base else DEFAULT_EVAL_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = base / stamp, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{stamp}-{n}"
    return candidate


def differences(old: dict, new: dict) -> list[str]:
    """The fingerprint settings that differ, as ``key: old -> new``."""
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in FINGERPRINT_KEYS if old.get(key) != new.get(key)]


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
        changed = differences(previous, fingerprint)
        if changed:
            raise InputError(
                f"{run_dir} holds results made with other settings ({'; '.join(changed)}): choose another --out, "
                f"or add --fresh to discard them and start over")
        return read_rows(results)
    if results.exists():
        raise InputError(f"{results} exists but {RUN_FILE} does not, so its settings are unknown: choose another "
                         f"--out, or add --fresh to discard it")
    write_json(run_file, {"fingerprint": fingerprint, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return []


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
    write_atomic(path, buffer.getvalue())


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
    return summary, read_rows(run_dir / RESULTS_JSONL)


__all__ = ["RUN_FILE", "RESULTS_JSONL", "RESULTS_CSV", "SUMMARY_JSON", "COMPARE_JSON", "REPORT_MD", "REPORT_HTML",
           "OUTPUT_FILES", "DEFAULT_EVAL_DIR", "FINGERPRINT_KEYS", "read_rows", "write_atomic", "write_json",
           "jsonl", "default_run_dir", "differences", "prepare_run_dir", "CSV_COLUMNS", "write_csv", "load_run"]
