"""`rag serve` and `rag keys`.

Every `rag serve` option can also come from the environment (``RAG_SERVE_<OPTION>``,
e.g. ``RAG_SERVE_PORT=8080``, read through rag.config) or from a config file
(``--config serve.yaml``: ``port: 8080``, ``rate-limit: 5``; YAML, JSON or TOML).
The command line wins over the environment, which wins over the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

from rag import config
from rag.cli_options import RagCommand, RagGroup, answer_options, embed_model_option, fail, pop_settings
from rag.errors import InputError


def _read_config_file(path: str) -> dict:
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        if file.suffix == ".json":
            data = json.loads(text)
        elif file.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
            data = data.get("serve", data)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:
        raise InputError(f"--config {path}: not valid {file.suffix.lstrip('.') or 'YAML'} ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: expected option names and values (e.g. 'port: 8080')")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _fill_defaults(ctx: click.Context, params: dict) -> None:
    """Options not given on the command line: from $RAG_SERVE_<OPTION>, else the config file."""
    by_name = {p.name: p for p in ctx.command.params}
    file_path = params.get("config_file") or config.serve_env(["config"]).get("config")
    from_file = _read_config_file(file_path) if file_path else {}
    unknown = sorted(set(from_file) - set(by_name) - {"config"})
    if unknown:
        raise InputError(f"--config {file_path}: unknown option {', '.join(unknown)}; see `rag serve --help`")
    from_env = config.serve_env([n for n in by_name if n != "config_file"])
    for name, param in by_name.items():
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            continue
        source, value = (f"RAG_SERVE_{name.upper()}", from_env[name]) if name in from_env else \
            (f"{file_path}: {name}", from_file.get(name)) if name in from_file else (None, None)
        if source is None:
            continue
        if param.multiple and isinstance(value, str):
            value = [v for v in value.split(",") if v]
        try:
            params[name] = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise InputError(f"{source}={value!r}: {exc.message}") from None


@click.command("serve", cls=RagCommand)
@answer_options
@embed_model_option
@click.option("--data", metavar="DIR", default=None,
              help="Folder with one folder per collection (DIR/<name>/index); created if missing.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs API keys.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--ui", is_flag=True, default=False, help="Also serve the chat page at /ui (same keys).")
@click.option("--keys", "keys_file", default=None, metavar="FILE",
              help="API keys file [env RAG_KEYS_FILE; default keys.json beside the data].")
@click.option("--max-upload-mb", type=float, default=None,
              help=f"Largest uploaded file [default {config.DEFAULT_MAX_UPLOAD_MB:g}].")
@click.option("--max-body-mb", type=float, default=1.0, show_default=True, help="Largest JSON request body.")
@click.option("--rate-limit", type=float, default=10.0, show_default=True,
              help="Requests per second per key (token bucket; 0: no limit).")
@click.option("--burst", type=click.IntRange(1), default=60, show_default=True, help="Requests a key may burst.")
@click.option("--max-generations", type=click.IntRange(1), default=2, show_default=True,
              help="Answers generated at the same time.")
@click.option("--queue", type=click.IntRange(0), default=16, show_default=True,
              help="Questions waiting for an answer slot; beyond, 503.")
@click.option("--queue-timeout", type=float, default=60.0, show_default=True,
              help="Seconds a question waits for a slot before 503.")
@click.option("--generation-timeout", type=float, default=120.0, show_default=True,
              help="Seconds for an answer (streaming: between two pieces) before 504.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True,
              help="Request log lines: one JSON object per line, or plain text.")
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="YAML/JSON/TOML file of option values [env RAG_SERVE_CONFIG].")
@click.pass_context
def serve_command(ctx, **params):
    """Serve the documents over HTTP: OpenAI-compatible chat, REST API, uploads, keys.

    \b
    rag keys create --name laptop                  # prints a key, once
    rag serve --index .rag/index                   # http://127.0.0.1:8000/docs
    rag serve --data srv/ --host 0.0.0.0 --ui      # one folder per collection, with the chat page
    """
    from rag.server import serve
    from rag.server.app import ServerSettings

    _fill_defaults(ctx, params)
    params.pop("config_file", None)
    retrieval, generation = pop_settings(params)
    log_level = params.pop("log_level")
    if params.get("index") and params.get("data"):
        raise click.UsageError("give --index DIR (one collection) or --data DIR (one folder per collection), not both")
    settings = ServerSettings(**params, retrieval=retrieval, generation=generation)
    try:
        serve(settings, log_level=log_level, announce=lambda line: click.echo(line, err=True))
    except OSError as exc:  # the port is taken, the address does not exist
        fail(InputError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}): "
                        f"choose another --port or --host"))


def _keys_path(keys_file, index, data) -> Path:
    if data:
        beside = Path(data).expanduser().resolve()
    else:
        beside = config.index_dir(index).expanduser().resolve().parent
    return config.keys_file(keys_file, beside=beside)


def _keys_options(func):
    func = click.option("--data", metavar="DIR", default=None, help="The server's data folder (keys file beside it).")(func)
    func = click.option("--index", metavar="DIR", default=None, help="The server's index (keys file beside it).")(func)
    return click.option("--keys", "keys_file", default=None, metavar="FILE",
                        help="API keys file [env RAG_KEYS_FILE; default keys.json beside the data].")(func)


@click.group("keys", cls=RagGroup)
def keys_command():
    """API keys of `rag serve`: create, list, revoke. Only hashes are stored."""


@keys_command.command("create")
@_keys_options
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Limit the key to this collection (repeatable; default: all).")
@click.option("--read-only", is_flag=True, help="Ask and retrieve only: no upload or delete.")
@click.option("--name", default=None, help="A label for logs and `rag keys list` (default key-N).")
@click.option("--json", "as_json", is_flag=True, help='Print {"key": ..., "name": ...}.')
def keys_create(keys_file, index, data, collections, read_only, name, as_json):
    """Create a key and print it once (it cannot be shown again)."""
    from .keys import KeysFile

    keys = KeysFile(_keys_path(keys_file, index, data))
    key, record = keys.create(name, list(collections) or None, read_only)
    if as_json:
        click.echo(json.dumps({"key": key, "name": record.name, "id": record.id,
                               "collections": record.collections, "read_only": record.read_only}))
        return
    click.echo(key)
    scope = ", ".join(record.collections) if record.collections else "all collections"
    click.echo(f"created key '{record.name}' ({record.id}) for {scope}{', read-only' if read_only else ''} in "
               f"{keys.path}; it is shown only now: store it safely", err=True)


@keys_command.command("list")
@_keys_options
@click.option("--json", "as_json", is_flag=True, help="Print the keys (without hashes) as JSON.")
def keys_list(keys_file, index, data, as_json):
    """The keys (names, ids, limits; never the keys themselves)."""
    from .keys import KeysFile

    keys = KeysFile(_keys_path(keys_file, index, data))
    records = [r.public() for r in keys.records()]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo(f"no keys in {keys.path}: create one with `rag keys create`")
        return
    for r in records:
        scope = ",".join(r["collections"]) if r["collections"] else "*"
        click.echo(f"{r['id']}  {r['name']:<20} collections={scope}  {'read-only' if r['read_only'] else 'read-write'}"
                   f"  created {r['created_at']}")


@keys_command.command("revoke")
@click.argument("key_id")
@_keys_options
def keys_revoke(key_id, keys_file, index, data):
    """Revoke a key by id or name; a running server stops accepting it at once."""
    from .keys import KeysFile

    keys = KeysFile(_keys_path(keys_file, index, data))
    record = keys.revoke(key_id)
    click.echo(f"revoked key '{record.name}' ({record.id})")


__all__ = ["serve_command", "keys_command"]
