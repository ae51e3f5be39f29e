"""``rag ui``: serve the chat page. gradio is imported only when the command runs."""

from __future__ import annotations

import os
import sys

import click

from rag import config
from rag.cli_options import (RagCommand, embed_model_option, generator_options, index_option, pop_settings,
                             settings_options)
from rag.settings import GenerationSettings, RetrievalSettings


@click.command("ui", cls=RagCommand)
@index_option
@click.option("--docs", "docs", type=click.Path(exists=True, file_okay=False), default=None,
              help="Documents folder: ingested (incrementally) before the page opens, and re-scannable from it.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 makes the page reachable from other machines.")
@click.option("--port", default=7860, show_default=True, type=int, help="Port (0 = the first free one from 7860 on).")
@click.option("--share", is_flag=True, help="Also open a public gradio.live link (off unless given).")
@generator_options
@embed_model_option
@click.option("--upload-dir", type=click.Path(file_okay=False), default=None,
              help="Where uploaded files are kept [default: <index>/../uploads].")
@click.option("--feedback", "feedback_path", type=click.Path(dir_okay=False), default=None,
              help="Votes file (JSONL) [default: <index>/../feedback.jsonl].")
@click.option("--max-upload-mb", type=float, default=None,
              help="Largest file accepted per upload, in MB [env RAG_UI_MAX_UPLOAD_MB; default 50].")
@settings_options(RetrievalSettings, GenerationSettings, advanced=False)
def ui_command(index, docs, host, port, share, generator, model, embed_model, upload_dir, feedback_path,
               max_upload_mb, **settings):
    """Open the chat page in a browser: ask, see sources, upload documents, rate answers."""
    config.quiet_third_parties()
    retrieval, generation = pop_settings(settings)
    if docs:
        from rag.ingest.pipeline import ingest

        click.echo(f"Indexing {docs} ...")

        def on_file(report):
            if report.status in ("failed", "skipped"):
                click.echo(report.line(), err=True)

        summary = ingest([docs], index, embed_model=embed_model, progress=True, on_file=on_file)
        click.echo(summary.line())

    from rag.ui.app import create_app, launch

    app = create_app(index=index, docs_dir=docs, upload_dir=upload_dir, feedback_path=feedback_path,
                     generator=generator, model=model, embed_model=embed_model, max_upload_mb=max_upload_mb,
                     retrieval=retrieval, generation=generation)
    _, local_url, share_url = launch(app, host=host, port=port or None, share=share, prevent_thread_lock=True,
                                     quiet=True)
    click.echo(f"Chat page: {local_url}")
    if share_url:
        click.echo(f"Public link (anyone with it can use your documents): {share_url}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"Listening on {host}: other machines on the network can open the page.", err=True)
    click.echo("Ctrl-C to stop.")
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    sys.exit(0)
