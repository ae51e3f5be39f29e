"""The `rag` command: ingest | ask | chat | ui | eval.

Exit codes: 0 success; 1 some inputs failed (the rest was done, see the lines printed);
2 usage error (bad option, missing path, empty question); 3 index or model problem
(no index, corrupt index, embedding model mismatch, generator unavailable).
"""

from __future__ import annotations

import json
import os
import sys

import click

from .cli_options import RagGroup, answer_options, embed_model_option, fail, index_option, pop_settings
from .config import quiet_third_parties
from .errors import EXIT_PARTIAL, InputError, RagError


@click.group(cls=RagGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rag-docs")
def main():
    """Ask questions about your documents (PDF, text, markdown) in any language."""
    quiet_third_parties()


@main.command()
@click.argument("paths", nargs=-1, required=True)
@index_option
@embed_model_option
@click.option("--include", multiple=True, help="Glob of files to take (repeatable), e.g. '*.pdf'.")
@click.option("--exclude", multiple=True, help="Glob of files to leave out (repeatable), e.g. 'drafts/*'.")
@click.option("--chunk-size", default=400, show_default=True, help="Chunk size in embedding-model tokens.")
@click.option("--chunk-overlap", default=80, show_default=True, help="Overlap between chunks, in tokens.")
@click.option("--window-chars", default=200, show_default=True,
              help="Also embed sentence windows of this many characters and score chunks by their best one (0: off).")
@click.option("--index-type", type=click.Choice(["auto", "flat", "hnsw"]), default="auto", show_default=True,
              help="Dense index: exact (flat), HNSW, or chosen by size.")
@click.option("--rebuild", is_flag=True, help="Ignore the existing index and embed everything again.")
@click.option("--no-resume", is_flag=True,
              help="Drop what an interrupted ingest already embedded and start over (default: resume from it).")
@click.option("--keep-missing", is_flag=True, help="Keep chunks of files deleted from the folders.")
@click.option("--follow-links", is_flag=True,
              help="Also ingest files that links in the folders point to outside them (default: skipped).")
@click.option("--max-file-mb", type=float, default=None,
              help="Largest file to read, in MB [env RAG_MAX_FILE_MB; default 100].")
@click.option("--max-pages", type=int, default=None, help="Most pages of one PDF [env RAG_MAX_PAGES; default 5000].")
@click.option("--max-chars", type=int, default=None,
              help="Most characters of text from one file [env RAG_MAX_CHARS; default 10000000].")
@click.option("--max-decompressed-mb", type=float, default=None,
              help="Largest decompressed PDF stream, in MB [env RAG_MAX_DECOMPRESSED_MB; default 75].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; print only failures.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(paths, index, embed_model, include, exclude, chunk_size, chunk_overlap, window_chars, index_type, rebuild,
           no_resume, keep_missing, follow_links, max_file_mb, max_pages, max_chars, max_decompressed_mb, quiet,
           as_json):
    """Add documents (files or folders) to the index; re-runs embed only what changed."""
    from rag.ingest.limits import Limits
    from rag.ingest.pipeline import IngestInterrupted
    from rag.ingest.pipeline import ingest as run_ingest

    if quiet or as_json:
        quiet_third_parties(quiet=True)
    limits = Limits.from_config(max_file_mb=max_file_mb, max_pages=max_pages, max_chars=max_chars,
                                max_decompressed_mb=max_decompressed_mb)
    missing = [p for p in paths if not os.path.exists(p)]
    if missing and len(missing) == len(paths):
        raise click.UsageError(f"no such file or folder: {', '.join(missing)}")

    def on_file(report):
        from tqdm import tqdm

        # the progress bars step aside for the line and come back under it
        with tqdm.external_write_mode(file=sys.stderr):
            if report.status in ("failed", "skipped", "repaired"):
                click.echo(report.line(), err=True)
            elif not quiet and not as_json and report.status != "unchanged":
                click.echo(report.line())
            elif not quiet and not as_json and report.warning:
                click.echo(report.line())

    def on_resume(message):
        if not quiet:
            click.echo(message, err=True)

    try:
        summary = run_ingest(
            list(paths), index, embed_model=embed_model, include=list(include), exclude=list(exclude),
            chunk_size=chunk_size, chunk_overlap=chunk_overlap, window_chars=window_chars,
            index_type=index_type, rebuild=rebuild,
            prune_missing=not keep_missing, progress=not (quiet or as_json), on_file=on_file,
            limits=limits, follow_links=follow_links, on_wait=lambda message: click.echo(message, err=True),
            resume=not no_resume, on_resume=on_resume,
        )
    except IngestInterrupted as exc:  # Ctrl-C: one line, how many files are kept and how to go on
        click.echo(exc.line, err=True)
        # Everything worth keeping is on disk (the checkpoints are flushed before the line is
        # printed; the lock goes with the process). A normal interpreter exit tears down native
        # thread pools while one of them may still be winding down under load, and then aborted
        # ("terminate called without an active exception", exit -6) once in a full test run:
        # leave without the teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if not as_json:
        for warning in summary.warnings:
            click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    elif not quiet:
        click.echo(summary.line())
    sys.exit(0 if summary.failed == 0 else EXIT_PARTIAL)


def print_sources(sources) -> None:
    if not sources:
        return
    click.echo("\nSources:")
    for number, source in enumerate(sources, start=1):
        snippet = " ".join(source.text.split())[:110]
        page = f" p.{source.page}" if source.page else ""
        section = f" § {' '.join(source.section.split())[:60]}" if source.section else ""
        click.echo(f"  [{number}] {source.source}{page}{section}  score {source.score:.4f} "
                   f"(cos {source.dense_score:.2f})  {snippet}")


@main.command()
@click.argument("question")
@answer_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer and its sources as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print the answer only: no note, sources or citation check.")
def ask(question, index, generator, model, as_json, quiet, **settings):
    """Answer QUESTION from the indexed documents, with sources."""
    from .qa import QA

    if not question.strip():
        # One line, as for every other bad input (no usage block: the command was typed right).
        raise InputError("the question is empty: type a question about your documents")
    retrieval, generation = pop_settings(settings)
    qa = QA(index, generator, model, retrieval=retrieval, generation=generation)
    streamed = qa.stream(question)
    if as_json:
        for _ in streamed:
            pass
        click.echo(json.dumps(streamed.answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if quiet:  # the checked text: markers the citation check moved are already moved
        for _ in streamed:
            pass
        click.echo(streamed.answer.text)
        return
    print_note(streamed.answer)
    for piece in streamed:
        click.echo(piece, nl=False)
    click.echo()
    print_sources(streamed.answer.sources)
    print_citation_check(streamed.answer)


def print_note(answer) -> None:
    """The low-confidence note, known before the answer streams (the score comes first)."""
    if answer.note:
        from .prompts import get_prompts

        click.echo(f"({answer.note} {get_prompts().score_label(answer.lang)} {answer.score:.2f}.)")


def print_citation_check(answer) -> None:
    """What the citation check changed after the answer streamed (rag/citations.py):
    citations moved or removed, and sentences that no source supports."""
    notes = []
    for c in answer.citations:
        cited = ", ".join(map(str, c.cited)) or "none"
        if not c.supported:
            notes.append(f"  ? not supported by any source (cited: {cited}): {c.sentence[:110]}")
        elif c.sources != c.cited:
            now = ", ".join(map(str, c.sources))
            notes.append(f"  ~ citation [{cited}] -> [{now}]: {c.sentence[:110]}")
    if notes:
        click.echo("citation check:")
        for note in notes:
            click.echo(note)


@main.command()
@answer_options
def chat(index, generator, model, **settings):
    """A conversation in the terminal; follow-up questions use the history. Ctrl-D quits."""
    from .qa import QA

    retrieval, generation = pop_settings(settings)
    qa = QA(index, generator, model, retrieval=retrieval, generation=generation)
    history: list[tuple[str, str]] = []
    click.echo("Ask about your documents. Empty line or Ctrl-D to quit.")
    while True:
        try:
            question = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if not question:
            return
        try:
            streamed = qa.stream(question, history=history)
            click.echo("rag> ", nl=False)
            if streamed.answer.note:
                click.echo()
                print_note(streamed.answer)
            for piece in streamed:
                click.echo(piece, nl=False)
            click.echo()
            print_sources(streamed.answer.sources)
            history.append((question, streamed.answer.text))
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
        except RagError as exc:
            fail(exc)


def _register_commands() -> None:
    # The UI and eval commands live beside their code; their heavy imports stay lazy.
    from rag.ui.command import ui_command

    from .evaluation.command import eval_command

    main.add_command(ui_command, "ui")
    main.add_command(eval_command, "eval")

    from .server.command import keys_command, serve_command

    main.add_command(serve_command, "serve")
    main.add_command(keys_command, "keys")


_register_commands()


if __name__ == "__main__":
    main()
