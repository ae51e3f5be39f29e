"""HTTP errors in the OpenAI shape: ``{"error": {"message", "type", "code", "param"}}``.

Every failure a client can see goes through :class:`ApiError`, so OpenAI clients
(which read ``error.message``) show the reason, and the status says what kind of
failure it was. Messages never contain a key.
"""

from __future__ import annotations

import re

from rag.errors import (
    BackendNotFoundError,
    ConfigurationError,
    EmbedderMismatchError,
    GeneratorError,
    IndexCorruptError,
    IndexNotFoundError,
    InputError,
    ModelLoadError,
    RagError,
    ServerUnavailableError,
)

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error", 413: "request_too_large", 415: "unsupported_media_type", 422: "invalid_request_error",
    429: "rate_limit_error", 500: "server_error", 502: "upstream_error", 503: "overloaded_error",
    504: "timeout_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None, error_type: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}
        self.type = error_type or _TYPES.get(status, "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


_FIELD = re.compile(r"^(\w+)=")


def from_rag_error(exc: RagError) -> ApiError:
    """The HTTP status of each rag error: the caller's fault (4xx), the upstream's (502), ours (5xx)."""
    message = str(exc)
    if isinstance(exc, IndexNotFoundError):
        return ApiError(409, "this collection has no documents yet: upload some with POST /v1/documents",
                        "collection_empty")
    if isinstance(exc, BackendNotFoundError):
        return ApiError(400, message, "invalid_value", param=exc.kind)
    if isinstance(exc, InputError):
        match = _FIELD.match(message)
        param = match.group(1) if match else None
        if message.startswith("the question is empty") or "question" in message.split(":")[0]:
            param = param or "question"
        return ApiError(400, message, "invalid_value", param=param)
    if isinstance(exc, (ServerUnavailableError, ConfigurationError)):
        return ApiError(502, f"the generator's server failed: {message}", "upstream_unavailable")
    if isinstance(exc, GeneratorError):
        return ApiError(502, f"the generator failed: {message}", "upstream_error")
    if isinstance(exc, (IndexCorruptError, EmbedderMismatchError)):
        # The message names server paths: the client gets the kind of problem, the log the rest.
        return ApiError(500, "the collection's index cannot be read: the server's administrator must rebuild it",
                        "index_unreadable")
    if isinstance(exc, ModelLoadError):
        return ApiError(503, "a model could not be loaded on the server: try again later", "model_unavailable")
    return ApiError(500, "the server failed to answer: see its log", "internal_error")


__all__ = ["ApiError", "from_rag_error"]
