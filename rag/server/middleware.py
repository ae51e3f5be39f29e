"""One ASGI middleware for what every request needs: a request id, the body size limit,
the key check of the /ui page, and one structured log line plus metrics per request.

Plain ASGI rather than ``BaseHTTPMiddleware``: it adds no task or stream copy per
request, which keeps the HTTP overhead of /v1/retrieve at a few milliseconds.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time

from .errors import ApiError
from .keys import bearer_token
from .schemas import MAX_FILES_PER_UPLOAD

access_log = logging.getLogger("rag.server.access")
_REQUEST_ID = re.compile(r"^[\w.:-]{1,64}$")
UI_PREFIX = "/ui"


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    def __init__(self, app, server):
        self.app = app
        self.server = server

    def _limit(self, scope) -> int:
        if scope["path"].rstrip("/") == "/v1/documents" and scope["method"] == "POST":
            # the per-file limit is checked file by file once parsed; this caps the whole body
            return self.server.max_upload_bytes * MAX_FILES_PER_UPLOAD + (1 << 20)
        if scope["path"].startswith(UI_PREFIX):
            return self.server.max_upload_bytes * MAX_FILES_PER_UPLOAD + (1 << 20)
        return self.server.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and _is_ui(scope["path"]):
            if self._ui_denied(scope) is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        headers = dict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", []))
        request_id = headers.get("x-request-id", "")
        if not _REQUEST_ID.match(request_id):
            # not a secret, only unique enough to find a request in the logs: no urandom() call
            request_id = f"{random.getrandbits(64):016x}"
        state = scope.setdefault("state", {})
        status_holder = {"status": 500, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                # Server-Timing (a standard header browsers and bench/serve.py read): the time spent
                # in the server up to the response, without the network and the client.
                spent = (time.perf_counter() - started) * 1000
                timing = f"app;dur={spent:.2f}"
                if "search_ms" in state:  # the retrieval alone (qa.search in the worker thread)
                    timing += f", search;dur={state['search_ms']:.2f}"
                message["headers"] = list(message["headers"]) + [
                    (b"x-request-id", request_id.encode()), (b"server-timing", timing.encode())]
            await send(message)

        try:
            limit = self._limit(scope)
            error = self._early_error(scope, headers, limit)
            if error is not None:
                await _send_error(send_wrapper, error)
                return
            received = [0]

            async def limited_receive():
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise _BodyTooLarge()
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except _BodyTooLarge:
                if not status_holder["started"]:
                    await _send_error(send_wrapper, _too_large(limit))
        finally:
            self._record(scope, state, status_holder["status"], time.perf_counter() - started, request_id)

    def _early_error(self, scope, headers, limit: int) -> ApiError | None:
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            return _too_large(limit)
        if _is_ui(scope["path"]):
            return self._ui_denied(scope)
        return None

    def _ui_denied(self, scope) -> ApiError | None:
        """The /ui page takes the same keys: a browser sends one as the password of HTTP Basic auth."""
        keys = self.server.keys
        if not keys.configured:
            return None
        headers = dict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", []))
        record = keys.find(bearer_token(headers.get("authorization")))
        challenge = {"WWW-Authenticate": 'Basic realm="rag", charset="UTF-8"'}
        if record is None:
            return ApiError(401, "the chat page needs an API key: enter it as the password (any user name)",
                            "missing_api_key", headers=challenge)
        scope.setdefault("state", {})["key"] = record.name
        collection = getattr(self.server, "ui_collection", None)
        if collection and not record.allows(collection, write=True):
            return ApiError(403, f"the chat page of collection '{collection}' can upload files: it needs a key for "
                                 f"that collection that is not read-only", "collection_forbidden")
        return None

    def _record(self, scope, state, status: int, seconds: float, request_id: str) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or ("/ui" if _is_ui(scope["path"]) else "unmatched")
        metrics = self.server.metrics
        method = scope.get("method", "WS")
        metrics.requests.labels(endpoint, method, str(status)).inc()
        metrics.latency.labels(endpoint, method).observe(seconds)
        if _is_ui(scope["path"]) and status < 400 and scope["path"] not in ("/ui", "/ui/"):
            return  # the page's own assets and polling: counted, not logged one by one
        if not access_log.isEnabledFor(logging.INFO):
            return  # --log-level warning: no line to build
        client = scope.get("client")
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": "request", "request_id": request_id,
            "method": method, "path": scope["path"], "status": status,
            "duration_ms": round(seconds * 1000, 1), "collection": state.get("collection"),
            "key": state.get("key"), "client": client[0] if client else None,
        }
        if self.server.settings.log_format == "text":
            access_log.info("%s %s %s %d %.1fms collection=%s key=%s", request_id, method, scope["path"], status,
                            seconds * 1000, state.get("collection") or "-", state.get("key") or "-")
        else:
            access_log.info(json.dumps(line, ensure_ascii=False))


def _is_ui(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is over the limit of {limit / 1048576:g} MB: send less "
                         f"(per-file limit: --max-upload-mb; JSON bodies: --max-body-mb)", "request_too_large")


async def _send_error(send, error: ApiError) -> None:
    body = json.dumps(error.body(), ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["RequestMiddleware"]
