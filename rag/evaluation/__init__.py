"""Batch evaluation of answers from a question file (`rag eval`).

    import rag
    result = rag.evaluate("questions.jsonl", index="my_index", generator="extractive")
    result.metrics["retrieval"]["evidence"]["hit@5"]
    result.report_html                      # the self-contained report

Modules: :mod:`.questions` (loading JSONL/JSON/CSV/YAML question files),
:mod:`.metrics` (pure metric functions), :mod:`.runs` (the run folder's files:
reading, atomic writes, resuming), :mod:`.runner` (``evaluate``: one ``EvalRun`` over
one QA pipeline), :mod:`.report` (Markdown/HTML reports, run comparison),
:mod:`.command` (the click command).
"""

from __future__ import annotations


def __getattr__(name):  # lazy: `rag --help` must not import numpy/matplotlib for this
    if name in ("evaluate", "EvalResult", "load_run"):
        from . import runner

        return getattr(runner, name)
    if name in ("load_questions", "Question", "QuestionSet"):
        from . import questions

        return getattr(questions, name)
    raise AttributeError(name)


__all__ = ["evaluate", "EvalResult", "load_run", "load_questions", "Question", "QuestionSet"]
