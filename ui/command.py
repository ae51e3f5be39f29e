"""``rag ui``: serve the chat page. gradio is imported only when the command runs.

Access: on 127.0.0.1 (the default) the page is open to this machine's users. Any other
address needs logins: ``--auth USER:PASSWORD`` (or $RAG_UI_AUTH), or the API keys of
``rag serve`` (``rag keys create``; any user name, the key as password). Without them
the command refuses to start.
"""

from __future__ import annotations

import hmac
import ipaddress
import sys

import click

from rag import config
from rag.cli_options import (RagCommand, embed_model_option, fail, generator_options, index_option, pop_settings,
                             settings_options)
from rag.errors import InputError
from rag.settings import GenerationSettings, RetrievalSettings


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def login_checker(logins: list[tuple[str, str]], keys=None):
    """gradio's auth callable: a listed user with its password, or any user with an API key."""

    def check(user: str, password: str) -> bool:
        ok = False
        for name, secret in logins:  # compare all, in constant time per pair
            ok |= hmac.compare_digest(name.encode(), (user or "").encode()) and \
                hmac.compare_digest(secret.encode(), (password or "").encode())
        if not ok and keys is not None:
            ok = keys.find(password) is not None
        return ok

    return check


def access(host: str, logins: list[tuple[str, str]], keys=None):
    """(gradio auth or None, the start-up line); an InputError when the page would be open to the network."""
    have_keys = keys is not None and keys.configured
    if logins or have_keys:
        how = " and ".join(filter(None, [f"{len(logins)} login(s) from --auth/RAG_UI_AUTH" if logins else "",
                                         f"the API keys in {keys.path}" if have_keys else ""]))
        return login_checker(logins, keys if have_keys else None), f"Login required: {how}."
    if not is_loopback(host):
        raise InputError(f"refusing to serve the chat page on {host} without logins: anyone who reaches the port "
                         f"could read and upload documents; give --auth USER:PASSWORD (or RAG_UI_AUTH), create an "
                         f"API key with `rag keys create`, or bind 127.0.0.1")
    return None, ""


@click.command("ui", cls=RagCommand)
@index_option
@click.option("--docs", "docs", type=click.Path(exists=True, file_okay=False), default=None,
              help="Documents folder: ingested (incrementally) before the page opens, and re-scannable from it.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback (e.g. 0.0.0.0) requires logins.")
@click.option("--port", default=7860, show_default=True, type=int, help="Port (0 = the first free one from 7860 on).")
@click.option("--share", is_flag=True, help="Also open a public gradio.live link (off unless given; requires logins).")
@click.option("--auth", "auth", multiple=True, metavar="USER:PASSWORD",
              help="A login for the page (repeatable) [env RAG_UI_AUTH=user:pw,user2:pw2]. Required off loopback.")
@generator_options
@embed_model_option
@click.option("--upload-dir", type=click.Path(file_okay=False), default=None,
              help="Where uploaded files are kept [default: <index>/../uploads].")
@click.option("--feedback", "feedback_path", type=click.Path(dir_okay=False), default=None,
              help="Votes file (JSONL, mode 0600) [default: <index>/feedback.jsonl].")
@click.option("--max-upload-mb", type=float, default=None,
              help="Largest file accepted per upload, in MB [env RAG_UI_MAX_UPLOAD_MB; default 50].")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Questions answered at the same time; others wait in the queue and see their position.")
@settings_options(RetrievalSettings, GenerationSettings, advanced=False)
def ui_command(index, docs, host, port, share, auth, generator, model, embed_model, upload_dir, feedback_path,
               max_upload_mb, concurrency, **settings):
    """Open the chat page in a browser: ask, see sources, upload documents, rate answers."""
    config.quiet_third_parties()
    retrieval, generation = pop_settings(settings)
    logins = config.ui_auth(",".join(auth)) if auth else config.ui_auth()
    keys = None
    try:
        from rag.server.keys import KeysFile

        keys = KeysFile(config.keys_file(None, beside=config.index_dir(index).expanduser().absolute().parent))
    except ImportError:  # the server is an optional part
        pass
    try:
        gradio_auth, access_line = access("0.0.0.0" if share else host, logins, keys)
    except InputError as exc:
        fail(exc)
    if docs:
        from rag.ingest.pipeline import ingest

        click.echo(f"Indexing {docs} ...")

        def on_file(report):
            if report.status in ("failed", "skipped"):
                click.echo(report.line(), err=True)

        summary = ingest([docs], index, embed_model=embed_model, progress=True, on_file=on_file)
        click.echo(summary.line())

    import threading

    from rag.qa import QA
    from rag.ui.app import create_app, launch

    qa = QA(index, config.generator_name(generator), model, retrieval=retrieval, generation=generation,
            embed_model=embed_model)

    def warm_up() -> None:
        try:
            qa.warm_up()  # index, embedder, word segmenter: loaded while the page opens
        except Exception:  # nothing indexed yet, or broken: the first question says so in one line
            pass

    threading.Thread(target=warm_up, daemon=True, name="warm-up").start()
    app = create_app(qa=qa, index=index, docs_dir=docs, upload_dir=upload_dir, feedback_path=feedback_path,
                     generator=generator, model=model, embed_model=embed_model, max_upload_mb=max_upload_mb,
                     retrieval=retrieval, generation=generation, concurrency_limit=concurrency)
    _, local_url, share_url = launch(app, host=host, port=port or None, share=share, prevent_thread_lock=True,
                                     quiet=True, auth=gradio_auth)
    click.echo(f"Chat page: {local_url}")
    if access_line:
        click.echo(access_line)
    if share_url:
        click.echo(f"Public link (anyone with it and a login can use your documents): {share_url}")
    if not is_loopback(host):
        click.echo(f"Listening on {host}: other machines on the network can open the page (login required).", err=True)
    click.echo("Ctrl-C to stop.")
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    sys.exit(0)
