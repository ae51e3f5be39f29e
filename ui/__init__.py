"""The web UI: ``rag ui``, or from Python::

    from rag.ui import create_app, launch
    launch(create_app(index=".rag/index"), host="127.0.0.1", port=7860)
    mount(fastapi_app, create_app(...), "/ui")   # inside another server (rag serve)

gradio is imported only when the UI is built, so ``rag ask`` stays quick.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """Build the chat page: see :func:`ui.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def launch(app, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **kwargs):
    """Serve a page from :func:`create_app`: see :func:`ui.app.launch`."""
    from .app import launch as _launch

    return _launch(app, host, port, share, **kwargs)


def mount(server, app, path: str = "/ui", **kwargs):
    """Serve a page from :func:`create_app` inside a FastAPI app: see :func:`ui.app.mount`."""
    from .app import mount as _mount

    return _mount(server, app, path, **kwargs)


__all__ = ["create_app", "launch", "mount"]
