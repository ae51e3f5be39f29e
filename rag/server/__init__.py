"""`rag serve`: the documents as a web service.

    from rag.server import create_app, serve
    app = create_app(data="srv/")                # an ASGI app (FastAPI), for any ASGI server
    serve(index=".rag/index", port=8000)         # uvicorn, blocking

Endpoints, keys and limits: README, "Serve"; the generated OpenAPI page at /docs.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
from dataclasses import asdict, replace

from rag.errors import InputError


def create_app(settings=None, **options):
    """The ASGI app: see :func:`rag.server.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(settings, **options)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, keys_configured: bool, keys_path) -> str:
    """The start-up line about access, or an InputError when the binding would be open to the network."""
    if keys_configured:
        return f"API keys from {keys_path}: every /v1 request needs 'Authorization: Bearer <key>'"
    if not is_loopback(host):
        raise InputError(f"refusing to serve on {host} without API keys: anyone on the network could read and "
                         f"change the documents; create a key first (`rag keys create --keys {keys_path}`), "
                         f"or bind 127.0.0.1")
    return (f"no API keys in {keys_path}: serving without authentication, on this machine only ({host}); "
            f"create one with `rag keys create` to require keys")


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("rag.server", "rag.server.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def serve(settings=None, *, log_level: str = "info", announce=print, **options) -> None:
    """Start the server (blocking) with :class:`~rag.server.app.ServerSettings` fields as options."""
    import uvicorn

    from rag import config
    from rag.config import quiet_third_parties

    from .app import ServerSettings, create_app as _create_app
    from .collections import Collections
    from .keys import KeysFile

    quiet_third_parties()
    settings = replace(settings or ServerSettings(), **options)
    configure_logging(log_level)
    # Checked before anything heavy loads: a refused binding answers in a blink.
    root = Collections(index=settings.index, data=settings.data).root if settings.data else \
        config.index_dir(settings.index).expanduser().resolve().parent
    keys = KeysFile(config.keys_file(settings.keys_file, beside=root))
    announce(check_binding(settings.host, keys.configured, keys.path))
    if settings.workers < 1:
        raise InputError(f"--workers {settings.workers}: give 1 or more")
    common = dict(host=settings.host, port=settings.port, log_level=log_level, access_log=False,
                  timeout_keep_alive=15, timeout_graceful_shutdown=10, server_header=False)
    if settings.workers == 1:
        app = _create_app(settings)
        announce(f"serving {', '.join(app.state.server.collections.names()) or 'no collections yet'} on "
                 f"http://{settings.host}:{settings.port} (API docs: /docs{', chat page: /ui' if settings.ui else ''})")
        uvicorn.run(app, **common)
        _exit_now()
    # Several processes: each builds its own app from the same settings (jobs are shared
    # through their files on disk, ingest through the index lock; rate limits are per process).
    import os

    os.environ["RAG_SERVE_SETTINGS_JSON"] = json.dumps(settings_to_json(settings))
    announce(f"serving on http://{settings.host}:{settings.port} with {settings.workers} worker processes")
    uvicorn.run("rag.server:app_from_environment", factory=True, workers=settings.workers, **common)


def _exit_now() -> None:
    """After uvicorn has shut down: end the process without joining the generation threads.
    A generation stuck on an unresponsive upstream would otherwise hold the exit for as long as
    its client's timeout; ingest jobs need no wait either (a new index version goes live
    atomically or not at all)."""
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def settings_to_json(settings) -> dict:
    data = asdict(settings)
    return data


def app_from_environment():
    """The app of one worker process of ``rag serve --workers N``."""
    from rag import config
    from rag.settings import GenerationSettings, RetrievalSettings

    from .app import ServerSettings

    configure_logging("info")
    data = json.loads(config.serve_env(["settings_json"])["settings_json"])
    if data.get("retrieval") is not None:
        data["retrieval"] = RetrievalSettings(**{k: tuple(v) if isinstance(v, list) else v
                                                 for k, v in data["retrieval"].items()})
    if data.get("generation") is not None:
        data["generation"] = GenerationSettings(**data["generation"])
    return create_app(ServerSettings(**data))


__all__ = ["create_app", "serve", "check_binding", "is_loopback", "app_from_environment"]
