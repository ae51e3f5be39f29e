"""`rag eval QUESTIONS`: answer a question file, score the answers, write a report.

Exit codes as for every `rag` command: 0 done; 1 done, but bad rows were skipped or
some questions failed; 2 usage error (bad option, missing or malformed question
file, run folder with other settings); 3 index, model or generator problem.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rag.cli_options import RagCommand, answer_options, pop_settings
from rag.errors import EXIT_PARTIAL


@click.command("eval", cls=RagCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("questions", metavar="QUESTIONS")
@answer_options
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Run folder [default ./.rag/eval/<timestamp>]. Rerun with the same folder to resume.")
@click.option("--compare", "compare", type=click.Path(), default=None,
              help="Folder of an earlier run: print and report per-metric deltas and per-question flips.")
@click.option("--concurrency", "-j", default=1, show_default=True, type=int, help="Questions answered in parallel.")
@click.option("--limit", default=None, type=int, help="Only the first N questions.")
@click.option("--strict", is_flag=True, help="Stop at the first bad row of the question file (default: skip it).")
@click.option("--fresh", is_flag=True, help="Discard earlier results in --out and start over.")
@click.option("--judge", is_flag=True, help="Also grade answers with an LLM judge (OPENAI_BASE_URL / OPENAI_API_KEY).")
@click.option("--judge-model", default=None, help="Model of the LLM judge [env RAG_JUDGE_MODEL].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table: only problems and the report path.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the table.")
def eval_command(questions, index, generator, model, out, compare, concurrency, limit, strict, fresh, judge,
                 judge_model, quiet, as_json, **settings):
    """Evaluate retrieval, answers, grounding, citations and refusals on a question file.

    QUESTIONS is a .jsonl, .json, .csv, .tsv or .yaml file; only a `question` field is
    required (RAGAS names such as `user_input`, `reference`, `reference_contexts` work too).
    Writes results.jsonl/.csv, summary.json, report.md and report.html to the run folder.
    """
    from .report import comparison_text, console_table
    from .runner import evaluate
    from .runs import default_run_dir

    retrieval, generation = pop_settings(settings)
    if limit is not None and limit < 1:
        raise click.UsageError("--limit must be 1 or more")
    run_dir = Path(out) if out else default_run_dir()
    # Bad rows are printed as they are known, before the (long) run starts.
    try:
        from .questions import load_questions, rows_count

        qset = load_questions(questions, strict=strict)
        if qset.problems and not as_json:
            click.echo(f"{questions}: {rows_count(len(qset.problems))} skipped:", err=True)
            for problem in qset.problems[:20]:
                click.echo(f"  line {problem.line}: {problem.reason}", err=True)
            if len(qset.problems) > 20:
                click.echo(f"  ... and {len(qset.problems) - 20} more (see summary.json)", err=True)
        result = evaluate(
            qset, index, retrieval=retrieval, generation=generation, generator=generator, model=model,
            out=run_dir, compare=compare, concurrency=concurrency, strict=strict, progress=not (quiet or as_json),
            judge=judge, judge_model=judge_model, fresh=fresh, limit=limit,
        )
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: the answers so far are saved in {run_dir}; run the same command with "
                   f"--out {run_dir} to finish the rest", err=True)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(result.summary, ensure_ascii=False, indent=2, default=str))
    elif not quiet:
        s = result.settings
        click.echo(f"{len(result.rows)} questions ({result.resumed} resumed) · generator {s['generator']}"
                   f"{'/' + s['model'] if s['model'] and s['model'] != s['generator'] else ''} · k={s['k']} · "
                   f"min-score {s['min_score']} · index {s['index']}")
        click.echo(console_table(result))
        if result.comparison:
            click.echo()
            click.echo(comparison_text(result.comparison))
    for row in result.rows:
        if row.get("error"):
            click.echo(f"question {row['id']} failed: {row['error']}", err=True)
    if not as_json:
        click.echo(f"report: {result.report_html}")
    sys.exit(EXIT_PARTIAL if (result.skipped or result.errors) else 0)


if __name__ == "__main__":
    eval_command()
