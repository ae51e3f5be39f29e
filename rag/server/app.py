"""The ASGI app of `rag serve`: an OpenAI-compatible chat endpoint, the native REST API,
documents and ingest jobs, keys, limits, health and metrics.

    from rag.server import create_app
    app = create_app(data="srv/")          # any ASGI server: uvicorn.run(app, port=8000)

Threads: retrieval runs on its own pool of one thread per core; generation in its own pool of
``max_generations + queue`` threads behind :class:`GenerationGate` (bounded, refused
beyond with 503); ingest jobs on one thread per collection.
"""

from __future__ import annotations

import asyncio
import json
import re
import logging
import math
import os
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import InputError, RagError
from rag.settings import GenerationSettings, RetrievalSettings

from .collections import DEFAULT_COLLECTION, Collection, Collections, document_id
from .errors import ApiError, from_rag_error
from .jobs import JobFile, Jobs
from .keys import KeyRecord, KeysFile, bearer_token
from .metrics import Metrics
from .ratelimit import GenerationGate, TokenBuckets
from .schemas import MAX_FILES_PER_UPLOAD, AskRequest, ChatCompletionRequest, CollectionRequest, RetrieveRequest, history_pairs, message_text

log = logging.getLogger("rag.server")

MODEL_PREFIX = "rag"
# Fields of the settings objects a request may set. The reranker is left out: it names
# a model to load, which is the server administrator's choice (rag serve --reranker).
REQUEST_RETRIEVAL_FIELDS = [f for f in RetrievalSettings.names() if f != "reranker"]
REQUEST_GENERATION_FIELDS = GenerationSettings.names()


@dataclass
class ServerSettings:
    """Everything `rag serve` can be told; :func:`create_app` takes the same names."""

    index: str | None = None
    data: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    ui: bool = False
    keys_file: str | None = None
    generator: str | None = None
    model: str | None = None
    embed_model: str | None = None
    retrieval: RetrievalSettings | None = None
    generation: GenerationSettings | None = None
    max_upload_mb: float | None = None  # per file (default rag.config.max_upload_mb(): 50)
    max_body_mb: float = 1.0  # JSON bodies
    rate_limit: float = 10.0  # requests per second per key (0: no limit)
    burst: int = 60
    max_generations: int = 2  # answers generated at the same time
    queue: int = 16  # answers waiting for a slot; beyond: 503
    queue_timeout: float = 60.0  # seconds a question may wait for a slot
    generation_timeout: float = 120.0  # seconds for an answer (streaming: between two pieces)
    log_format: str = "json"  # json | text

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class Principal:
    """Who is calling: a key's record, or nobody when the server runs without keys."""

    record: KeyRecord | None
    label: str  # the key's name, never the key

    def allows(self, collection: str, write: bool = False) -> bool:
        return self.record is None or self.record.allows(collection, write)

    @property
    def collections(self) -> list[str] | None:
        return None if self.record is None else self.record.collections


# ----------------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------------

class Server:
    """State shared by the routes of one app."""

    def __init__(self, settings: ServerSettings):
        from rag import config

        self.settings = settings
        self.collections = Collections(index=settings.index, data=settings.data, generator=settings.generator,
                                       model=settings.model, retrieval=settings.retrieval,
                                       generation=settings.generation, embed_model=settings.embed_model)
        self.generator_name = config.generator_name(settings.generator)
        from rag.generators import generator_info

        generator_info(self.generator_name)  # an unknown name stops the start
        self.keys = KeysFile(config.keys_file(settings.keys_file, beside=self.collections.root))
        self.keys.records()  # an unreadable keys file stops the start too
        self.max_upload_bytes = int(config.max_upload_mb(settings.max_upload_mb) * 1024 * 1024)
        self.max_body_bytes = int(settings.max_body_mb * 1024 * 1024)
        self.buckets = TokenBuckets(settings.rate_limit, settings.burst)
        self.gate = GenerationGate(settings.max_generations, settings.queue)
        self.pool = ThreadPoolExecutor(max_workers=self.gate.slots + self.gate.queue, thread_name_prefix="generate")
        # Retrieval on a few long-lived threads of its own rather than the ASGI pool's 40: as many
        # as there are cores (more only fight over the GIL and the cores), and the same threads each
        # time, so the embedder's per-thread caches stay warm. Waiting requests queue here.
        self.retrieval_pool = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)),
                                                 thread_name_prefix="retrieve")
        self.metrics = Metrics()
        self.jobs = Jobs(on_finish=lambda job: self.metrics.ingest_jobs.labels(job.collection, job.status).inc())
        self.ready = False
        self.ready_error = ""
        self.started = time.time()
        for collection in self.collections:
            interrupted = self.jobs.recover(collection)
            if interrupted:
                log.warning("collection %s: %d ingest job(s) were interrupted by the last shutdown; "
                            "the previous index version is live", collection.name, interrupted)

    # -- start-up --------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load every index, the embedders and the generator once, so the first question is fast."""
        try:
            for collection in self.collections:
                if collection.has_index:
                    collection.qa.warm_up()
            collection_qa = next(iter(self.collections)).qa if self.collections.names() else None
            if collection_qa is not None:
                collection_qa.generator_for()
            else:
                from rag.generators import get_generator

                get_generator(self.generator_name, self.settings.model)
            self.ready = True
            log.info("ready: %d collection(s): %s", len(self.collections.names()), ", ".join(self.collections.names()))
        except Exception as exc:  # reported by /readyz; the process stays up
            self.ready_error = f"{type(exc).__name__}: {exc}"
            log.error("not ready: %s", self.ready_error)

    # -- access ------------------------------------------------------------------------
    def principal(self, request: Request) -> Principal:
        token = bearer_token(request.headers.get("authorization"))
        configured, record = self.keys.check(token)
        if not configured:
            principal = Principal(None, "anonymous")
        else:
            if token is None:
                raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>' "
                                    "(create a key with `rag keys create`)", "missing_api_key",
                               headers={"WWW-Authenticate": 'Bearer realm="rag"'})
            if record is None:
                raise ApiError(401, "unknown or revoked API key: check the key, or create one with `rag keys create`",
                               "invalid_api_key", headers={"WWW-Authenticate": 'Bearer realm="rag"'})
            principal = Principal(record, record.name)
        request.state.key = principal.label
        bucket = principal.record.id if principal.record else (request.client.host if request.client else "-")
        wait = self.buckets.take(bucket)
        if wait:
            self.metrics.rate_limited.inc()
            retry = max(1, math.ceil(wait))
            raise ApiError(429, f"rate limit of {self.settings.rate_limit:g} requests/s per key "
                                f"(bursts of {int(self.buckets.burst)}) exceeded: retry in {retry} s",
                           "rate_limit_exceeded", headers={"Retry-After": str(retry)})
        return principal

    def collection(self, request: Request, principal: Principal, name: str | None, write: bool = False) -> Collection:
        if name is None:
            allowed = principal.collections
            names = self.collections.names()
            if allowed and len(allowed) == 1:
                name = allowed[0]
            elif DEFAULT_COLLECTION in names:
                name = DEFAULT_COLLECTION
            elif len(names) == 1:
                name = names[0]
            else:
                visible = [n for n in names if principal.allows(n)]
                raise ApiError(400, f"collection: required on this server; choose one of {', '.join(visible) or '(none)'}",
                               "missing_field", param="collection")
        request.state.collection = name
        if not principal.allows(name):
            raise ApiError(403, f"this key may not use collection '{name}'", "collection_forbidden", param="collection")
        if write and not principal.allows(name, write=True):
            raise ApiError(403, "this key is read-only: uploading and deleting documents need a key created "
                                "without --read-only", "read_only_key")
        collection = self.collections.get(name)
        if collection is None:
            visible = [n for n in self.collections.names() if principal.allows(n)]
            raise ApiError(404, f"unknown collection '{name}': this server has {', '.join(visible) or 'none you may use'}",
                           "collection_not_found", param="collection")
        return collection


def _settings_from(body, base_retrieval: RetrievalSettings, base_generation: GenerationSettings):
    """The request's settings fields, validated by rag.settings (400 naming the field)."""
    data = body.model_dump(exclude_unset=True)
    retrieval = {k: data[k] for k in REQUEST_RETRIEVAL_FIELDS if data.get(k) is not None}
    generation = {k: data[k] for k in REQUEST_GENERATION_FIELDS if data.get(k) is not None}
    try:
        return base_retrieval.replace(**retrieval), base_generation.replace(**generation)
    except InputError as exc:
        raise from_rag_error(exc) from None


def _source_json(number: int, source) -> dict:
    return {"index": number, "file": source.source, "page": source.page, "score": round(float(source.score), 4),
            "text": source.text, "document_id": document_id(source.path), "section": source.section,
            "chunk_id": source.chunk_id}


def _answer_json(answer) -> dict:
    out = answer.to_dict()
    for source, original in zip(out["sources"], answer.sources):
        source.pop("path", None)  # server paths stay on the server
        source["document_id"] = document_id(original.path)
    out["object"] = "answer"
    return out


def create_app(settings: ServerSettings | None = None, **options) -> FastAPI:
    """The ASGI app. ``options`` are :class:`ServerSettings` fields (``data=``, ``index=``, ...)."""
    unknown = sorted(set(options) - set(ServerSettings.names()))
    if unknown:
        raise InputError(f"unknown option {', '.join(unknown)}: valid options are {', '.join(ServerSettings.names())}")
    settings = replace(settings or ServerSettings(), **options)
    server = Server(settings)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=server.warm_up, daemon=True, name="warm-up").start()
        yield
        server.pool.shutdown(wait=False, cancel_futures=True)
        server.retrieval_pool.shutdown(wait=False, cancel_futures=True)

    from rag.version import __version__

    app = FastAPI(
        title="rag-docs API",
        version=__version__,
        description="Ask your documents over HTTP: an OpenAI-compatible chat endpoint "
                    "(`base_url=http://HOST:PORT/v1`, model `rag` or `rag/<collection>`), "
                    "the native ask/retrieve API, document upload with background ingest jobs. "
                    "Authenticate with `Authorization: Bearer <key>` (`rag keys create`). "
                    "Errors use the OpenAI shape `{\"error\": {\"message\", \"type\", \"code\", \"param\"}}`.",
        lifespan=lifespan,
        # /docs and /redoc are served below with their scripts from this process
        # (fastapi-offline's copies of Swagger UI 5 and ReDoc), so the pages work offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = server
    _mount_docs(app)

    # -- errors ----------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError):
        api = from_rag_error(exc)
        if api.status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse(api.body(), status_code=api.status, headers=api.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        invalid = next((e for e in errors if e.get("type") == "json_invalid"), None)
        # A body that is no JSON object at all (text/plain, a bare string) is malformed as well.
        not_object = next((e for e in errors if tuple(e.get("loc", ())) == ("body",)
                           and e.get("type") in ("model_attributes_type", "dict_type")), None)
        empty = next((e for e in errors if tuple(e.get("loc", ())) == ("body",) and e.get("type") == "missing"), None)
        if empty:
            return JSONResponse(ApiError(400, "the body is empty: send a JSON object with Content-Type: "
                                              "application/json", "invalid_json").body(), 400)
        if invalid or not_object:
            where = ""
            if invalid:
                # pydantic: loc ("body", character offset), ctx {"error": "Expecting ',' delimiter"}
                offset = next((x for x in invalid.get("loc", ()) if isinstance(x, int)), None)
                reason = (invalid.get("ctx") or {}).get("error", "")
                where = (f" at character {offset}" if offset is not None else "") + (f" ({reason})" if reason else "")
            problem = f"is not valid JSON{where}" if invalid else "is not a JSON object"
            return JSONResponse(ApiError(400, f"the body {problem}: send a JSON object "
                                              f"with Content-Type: application/json", "invalid_json").body(), 400)
        parts, param = [], None
        union: dict[str, list[str]] = {}  # one field, several accepted types ("content": str or parts)
        for error in errors:
            # pydantic tags each branch of a union in the location ("content.str",
            # "content.list[ContentPart]"): the field is the same, its accepted types several
            loc = [str(x) for x in error.get("loc", ()) if x != "body" and not _UNION_TAG.match(str(x))]
            if len(loc) < len([x for x in error.get("loc", ()) if x != "body"]):
                union.setdefault(".".join(loc), []).append(error.get("msg", "invalid").removeprefix("Input should be "))
        seen_union: set[str] = set()
        for error in errors[:5]:
            loc = [str(x) for x in error.get("loc", ()) if x != "body" and not _UNION_TAG.match(str(x))]
            name = ".".join(loc) or "body"
            kind = error.get("type", "")
            if kind == "unknown_field":
                param = param or (error.get("ctx") or {}).get("field")
                parts.append(error.get("msg", "unknown field"))
                continue
            if kind == "unsupported":
                param = param or name
                parts.append(error.get("msg", "not supported"))
                continue
            param = param or name
            if name in union:
                if name not in seen_union:
                    seen_union.add(name)
                    parts.append(f"'{name}' should be {' or '.join(dict.fromkeys(union[name]))} "
                                 f"(got {_short(error.get('input'))})")
                continue
            if kind == "missing":
                parts.append(f"'{name}' is required")
            elif kind == "extra_forbidden":
                model = _body_model(request)
                valid = ", ".join(model.model_fields) if model else ""
                parts.append(f"'{name}' is not a field of this endpoint (fields: {valid})")
            elif kind == "model_attributes_type" or kind == "dict_type":
                parts.append(f"{name}: send a JSON object")
            else:
                parts.append(f"'{name}': {error.get('msg', 'invalid')} (got {_short(error.get('input'))})")
        return JSONResponse(ApiError(422, "; ".join(parts), "invalid_field", param=param).body(), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # Starlette's words for a body that is not UTF-8 (or not form data it can read)
            return JSONResponse(ApiError(400, "the body could not be read: send a UTF-8 JSON object with "
                                              "Content-Type: application/json", "invalid_json").body(), 400)
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 400: "bad_request"}
        message = {404: f"no endpoint {request.method} {request.url.path}: see /docs for the API",
                   405: f"{request.method} is not allowed on {request.url.path}: see /docs"}.get(
            exc.status_code, str(exc.detail))
        return JSONResponse(ApiError(exc.status_code, message, codes.get(exc.status_code, "http_error")).body(),
                            exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(ApiError(500, "the server failed to answer: see its log", "internal_error").body(), 500)

    # -- health and metrics --------------------------------------------------------------
    @app.get("/", tags=["health"], summary="Where things are.")
    async def root():
        return {"name": "rag-docs", "version": __version__, "docs": "/docs", "openai_base_url": "/v1",
                "ui": "/ui" if settings.ui else None}

    @app.get("/healthz", tags=["health"], summary="The process is up.")
    async def healthz():
        # pid: with --workers N, which worker process answered (each keeps its own rate limits and metrics)
        return {"status": "ok", "uptime_s": round(time.time() - server.started, 1), "pid": os.getpid()}

    @app.get("/readyz", tags=["health"], summary="Indexes and models are loaded (503 until then).")
    async def readyz():
        if server.ready:
            return {"status": "ready", "collections": len(server.collections.names())}
        status = "failed" if server.ready_error else "loading"
        body = {"status": status}
        if server.ready_error:
            body["error"] = "a model or an index failed to load: see the server's log"
        return JSONResponse(body, status_code=503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics.")
    async def metrics():
        server.metrics.generation_running.set(server.gate.running)
        server.metrics.generation_waiting.set(server.gate.waiting)
        server.metrics.ingest_running.set(server.jobs.running())
        body, content_type = server.metrics.render()
        return PlainTextResponse(body, media_type=content_type)

    # -- models and collections ----------------------------------------------------------
    def _models_for(principal: Principal) -> list[dict]:
        names = [n for n in server.collections.names() if principal.allows(n)]
        created = int(server.started)
        data = [{"id": f"{MODEL_PREFIX}/{n}", "object": "model", "created": created, "owned_by": "rag",
                 "collection": n} for n in names]
        if names:
            data.insert(0, {"id": MODEL_PREFIX, "object": "model", "created": created, "owned_by": "rag",
                            "collection": None})
        return data

    @app.get("/v1/models", tags=["openai"], summary="What can be asked: 'rag' and 'rag/<collection>'.")
    async def list_models(request: Request):
        principal = server.principal(request)
        return {"object": "list", "data": _models_for(principal)}

    @app.get("/v1/models/{model_id:path}", tags=["openai"], summary="One model.")
    async def get_model(model_id: str, request: Request):
        principal = server.principal(request)
        for model in _models_for(principal):
            if model["id"] == model_id:
                return model
        raise ApiError(404, f"unknown model '{model_id}': GET /v1/models lists them", "model_not_found", param="model")

    @app.get("/v1/collections", tags=["collections"], summary="The collections this key may use.")
    async def list_collections(request: Request):
        principal = server.principal(request)
        server.collections.scan() if server.collections.data else None
        items = [c.describe() for c in server.collections if principal.allows(c.name)]
        return {"object": "list", "data": items}

    @app.post("/v1/collections", tags=["collections"], status_code=201,
              summary="Create an empty collection (--data servers; a key without collection limits).")
    async def create_collection(body: CollectionRequest, request: Request):
        principal = server.principal(request)
        if principal.collections is not None or (principal.record and principal.record.read_only):
            raise ApiError(403, "creating collections needs a key without --collection limits and not read-only",
                           "collection_forbidden")
        collection, new = server.collections.create(body.name)
        request.state.collection = collection.name
        return JSONResponse(collection.describe(), status_code=201 if new else 200)

    @app.get("/v1/info", tags=["collections"], summary="Generators and settings this server accepts.")
    async def info(request: Request):
        from rag.generators import generator_info, generator_names

        server.principal(request)
        return {
            "generator": server.generator_name,
            "generators": [{"name": n, "description": generator_info(n).description, "llm": generator_info(n).is_llm}
                           for n in generator_names()],
            "retrieval_fields": REQUEST_RETRIEVAL_FIELDS,
            "generation_fields": REQUEST_GENERATION_FIELDS,
            "max_upload_mb": server.max_upload_bytes / 1024 / 1024,
            "rate_limit": {"per_second": server.settings.rate_limit, "burst": int(server.buckets.burst)},
        }

    # -- retrieve -------------------------------------------------------------------------
    @app.post("/v1/retrieve", tags=["rag"], summary="The passages that best answer a question (rag.retrieve).")
    async def retrieve(body: RetrieveRequest, request: Request):
        principal = server.principal(request)
        collection = server.collection(request, principal, body.collection)
        qa = collection.qa
        retrieval, _ = _settings_from(body, qa.retrieval, qa.generation)
        started = time.perf_counter()

        def search():  # one hop to the thread pool; timed there, so the hop itself shows as overhead
            begun = time.perf_counter()
            found = qa.search(body.question, retrieval=retrieval)
            return found, time.perf_counter() - begun

        result, search_s = await asyncio.get_running_loop().run_in_executor(server.retrieval_pool, search)
        request.state.search_ms = search_s * 1000  # Server-Timing: search;dur=
        # JSONResponse directly: the body is plain JSON already, FastAPI's encoder pass would only add time.
        return _JSON({"object": "retrieval", "collection": collection.name, "question": body.question,
                             "sources": [_source_json(i, s) for i, s in enumerate(result.sources, start=1)],
                             "score": round(float(result.best_dense), 4),
                             "timings": {**{k: round(v, 4) for k, v in result.timings.items()},
                                         "search": round(search_s, 4),
                                         "server": round(time.perf_counter() - started, 4)}})

    # -- generation -----------------------------------------------------------------------
    def _generator_choice(name: str | None, model: str | None) -> tuple[str | None, str | None]:
        from rag.generators import generator_info

        if name is not None:
            try:
                generator_info(name)
            except RagError as exc:
                raise ApiError(400, str(exc), "invalid_value", param="generator") from None
        chosen = name or server.generator_name
        # A model for a local generator is a path or hub id to load: the administrator's choice at start.
        if model is not None and chosen != "openai" and model != server.settings.model:
            raise ApiError(400, f"model: this server loads '{chosen}' models only at start (rag serve --model); "
                                f"leave model out, or use generator 'openai' with an upstream model name",
                           "invalid_value", param="model")
        return name, model

    def _admit() -> None:
        if not server.gate.admit():
            server.metrics.overloaded.inc()
            raise ApiError(503, f"all {server.gate.slots} answer slots are busy and {server.gate.queue} questions "
                                f"are waiting: retry shortly (retrieval is not limited)", "overloaded",
                           headers={"Retry-After": "2"})

    def _in_slot(work):
        """Run ``work`` holding a generation slot; the admission is given back when it ends."""
        def run():
            try:
                if not server.gate.acquire(server.settings.queue_timeout):
                    raise ApiError(503, f"no answer slot became free within {server.settings.queue_timeout:g} s: "
                                        f"retry shortly", "overloaded", headers={"Retry-After": "5"})
                try:
                    return work()
                finally:
                    server.gate.release()
            finally:
                server.gate.leave()
        return run

    async def _answer(collection: Collection, question: str, history, generator, model, retrieval, generation):
        _admit()
        qa = collection.qa
        future = asyncio.get_running_loop().run_in_executor(server.pool, _in_slot(lambda: qa.ask(
            question, history=history, generator=generator, model=model, retrieval=retrieval,
            generation=generation)))
        timeout = server.settings.generation_timeout + server.settings.queue_timeout
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, f"no answer within {timeout:g} s: the generator is too slow or stuck; "
                                f"retry, or ask for fewer tokens", "generation_timeout") from None
        _count_answer(collection, answer, qa)
        return answer

    def _count_answer(collection: Collection, answer, qa) -> None:
        tokens = _token_counter(qa, answer)(answer.text) if answer.text else 0
        server.metrics.generation_tokens.labels(collection.name, answer.generator or "-").inc(tokens)
        server.metrics.answers.labels(collection.name, "refused" if answer.refused else "answered").inc()

    class _Stream:
        """Generation on a pool thread, its pieces handed to the event loop as they come."""

        def __init__(self, collection, question, history, generator, model, retrieval, generation):
            self.loop = asyncio.get_running_loop()
            self.events: asyncio.Queue = asyncio.Queue()
            self.cancelled = threading.Event()
            self.collection = collection
            qa = collection.qa

            def produce():
                try:
                    streamed = qa.ask(question, history=history, stream=True, generator=generator, model=model,
                                      retrieval=retrieval, generation=generation)
                    self._put(("start", streamed))
                    for piece in streamed:
                        if self.cancelled.is_set():
                            return
                        self._put(("piece", piece))
                    self._put(("end", streamed.answer))
                except BaseException as exc:
                    self._put(("error", exc))

            def run():
                try:
                    _in_slot(produce)()
                except BaseException as exc:  # no slot in time (503): the waiting client hears it now
                    self._put(("error", exc))

            server.pool.submit(run)

        def _put(self, event) -> None:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

        async def next(self):
            try:
                return await asyncio.wait_for(self.events.get(), server.settings.generation_timeout
                                              + server.settings.queue_timeout)
            except asyncio.TimeoutError:
                self.cancelled.set()
                return ("error", ApiError(504, f"the generator sent nothing for "
                                               f"{server.settings.generation_timeout:g} s", "generation_timeout"))

        async def opening(self):
            """(the AnswerStream, the events up to the first piece): errors before any text raise here,
            so they reach the client as a proper status, not half a stream."""
            streamed, held = None, []
            while True:
                kind, value = await self.next()
                if kind == "error":
                    self.cancelled.set()
                    raise value
                if kind == "start":
                    streamed = value
                    continue
                held.append((kind, value))
                return streamed, held

    def _error_json(exc: BaseException) -> dict:
        api = exc if isinstance(exc, ApiError) else (from_rag_error(exc) if isinstance(exc, RagError) else
                                                     ApiError(500, "the answer failed: see the server's log",
                                                              "internal_error"))
        if not isinstance(exc, (ApiError, RagError)):
            log.error("stream failed: %s: %s", type(exc).__name__, exc)
        return api.body()

    # -- ask --------------------------------------------------------------------------
    @app.post("/v1/ask", tags=["rag"], summary="Answer a question from a collection (rag.ask); SSE with stream=true.")
    async def ask(body: AskRequest, request: Request):
        principal = server.principal(request)
        collection = server.collection(request, principal, body.collection)
        retrieval, generation = _settings_from(body, collection.qa.retrieval, collection.qa.generation)
        generator, model = _generator_choice(body.generator, body.model)
        history = history_pairs(body.history)
        if not body.question.strip():
            raise ApiError(400, "question: empty; type a question about your documents", "invalid_value",
                           param="question")
        if not body.stream:
            answer = await _answer(collection, body.question, history, generator, model, retrieval, generation)
            return _JSON(_answer_json(answer))

        _admit()
        stream = _Stream(collection, body.question, history, generator, model, retrieval, generation)
        streamed, held = await stream.opening()

        async def events():
            sources = [_source_json(i, s) for i, s in enumerate(streamed.sources, start=1)]
            yield _sse({"sources": sources, "refused": streamed.refused, "confidence": streamed.answer.confidence,
                        "note": streamed.answer.note}, event="sources")
            pending = list(held)
            try:
                while True:
                    kind, value = pending.pop(0) if pending else await stream.next()
                    if kind == "piece":
                        yield _sse({"delta": value}, event="delta")
                    elif kind == "end":
                        _count_answer(collection, value, collection.qa)
                        yield _sse(_answer_json(value), event="answer")
                        break
                    else:
                        yield _sse(_error_json(value), event="error")
                        break
            finally:
                stream.cancelled.set()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    # -- chat completions -------------------------------------------------------------------
    def _chat_collection(request: Request, principal: Principal, model: str) -> Collection:
        if model == MODEL_PREFIX:
            return server.collection(request, principal, None)
        name = model[len(MODEL_PREFIX) + 1:] if model.startswith(MODEL_PREFIX + "/") else model
        if not server.collections.get(name):
            request.state.collection = name
            known = ", ".join(m["id"] for m in _models_for(principal)) or "none"
            raise ApiError(404, f"unknown model '{model}': ask 'rag' or 'rag/<collection>' ({known})",
                           "model_not_found", param="model")
        return server.collection(request, principal, name)

    @app.post("/v1/chat/completions", tags=["openai"],
              summary="OpenAI-compatible chat: the last user message is the question, earlier turns the history.")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        principal = server.principal(request)
        collection = _chat_collection(request, principal, body.model)
        if body.n not in (None, 1):
            raise ApiError(400, f"n={body.n}: this server returns one choice; leave n out or send 1", "invalid_value",
                           param="n")
        if body.max_tokens is None and body.max_completion_tokens is not None:
            body.max_tokens = body.max_completion_tokens
        # Retrieval settings may come as extra fields (openai: extra_body={"k": 8}).
        retrieval, generation = _settings_from(body, collection.qa.retrieval, collection.qa.generation)
        turns = [m for m in body.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise ApiError(400, "messages: the last message must be the user's question", "invalid_value",
                           param="messages")
        question = message_text(turns[-1])
        if not question.strip():
            raise ApiError(400, "messages: the last user message is empty; put the question in it", "invalid_value",
                           param="messages")
        history, pending_user = [], None
        for message in turns[:-1]:
            if message.role == "user":
                pending_user = message_text(message)
            elif pending_user is not None:
                history.append((pending_user, message_text(message)))
                pending_user = None
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        model_name = f"{MODEL_PREFIX}/{collection.name}"

        if not body.stream:
            answer = await _answer(collection, question, history, None, None, retrieval, generation)
            return _JSON({
                "id": completion_id, "object": "chat.completion", "created": created, "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": _usage(collection, answer, question),
                "sources": [_source_json(i, s) for i, s in enumerate(answer.sources, start=1)],
                "refused": answer.refused,
                "confidence": answer.confidence, "note": answer.note,  # the low-confidence note (rag.config)
            })

        _admit()
        stream = _Stream(collection, question, history, None, None, retrieval, generation)
        streamed, held = await stream.opening()
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                         "model": model_name, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                           "logprobs": None}], **extra})

        async def events():
            sources = [_source_json(i, s) for i, s in enumerate(streamed.sources, start=1)]
            yield chunk({"role": "assistant", "content": ""}, sources=sources, refused=streamed.refused,
                        confidence=streamed.answer.confidence, note=streamed.answer.note)
            pending = list(held)
            try:
                while True:
                    kind, value = pending.pop(0) if pending else await stream.next()
                    if kind == "piece":
                        yield chunk({"content": value})
                    elif kind == "end":
                        _count_answer(collection, value, collection.qa)
                        yield chunk({}, "stop", refused=value.refused)
                        if include_usage:
                            yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                        "model": model_name, "choices": [],
                                        "usage": _usage(collection, value, question)})
                        break
                    else:
                        yield _sse(_error_json(value))
                        break
            finally:
                stream.cancelled.set()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    def _usage(collection: Collection, answer, question: str) -> dict:
        count = _token_counter(collection.qa, answer)
        prompt = count(question) + sum(count(s.text) for s in answer.sources)
        completion = count(answer.text) if answer.text else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    # -- documents and jobs ------------------------------------------------------------------
    @app.get("/v1/documents", tags=["documents"], summary="Files in a collection: pages, chunks, hash, ingest time.")
    async def list_documents(request: Request, collection: str | None = None):
        principal = server.principal(request)
        target = server.collection(request, principal, collection)
        documents = await run_in_threadpool(target.documents)
        return {"object": "list", "collection": target.name, "data": documents}

    @app.post("/v1/documents", tags=["documents"], status_code=202,
              summary="Upload files (multipart field 'files'); ingested by a background job (GET /v1/jobs/{id}).")
    async def upload_documents(request: Request, collection: str | None = None):
        from rag.ui.uploads import sanitize_filename, supported_suffixes

        principal = server.principal(request)
        target = server.collection(request, principal, collection, write=True)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "send the files as multipart/form-data in the field 'files'", "unsupported_media_type")
        try:
            form = await request.form(max_files=MAX_FILES_PER_UPLOAD, max_fields=10)
        except StarletteHTTPException as exc:
            raise ApiError(400, f"{exc.detail}: at most {MAX_FILES_PER_UPLOAD} files per request",
                           "invalid_upload") from None
        uploads = [v for k, v in form.multi_items() if k in ("files", "file") and hasattr(v, "filename")]
        try:
            if not uploads:
                raise ApiError(400, "no file: send one or more files in the multipart field 'files'",
                               "missing_field", param="files")
            known = supported_suffixes()
            for upload in uploads:
                suffix = Path(sanitize_filename(upload.filename or "upload")).suffix.lower()
                if suffix not in known:
                    raise ApiError(415, f"{upload.filename}: unsupported format '{suffix or '(none)'}'; "
                                        f"upload one of {', '.join(known)}", "unsupported_file_type", param="files")
                size = upload.size if upload.size is not None else _size_of(upload.file)
                if size > server.max_upload_bytes:
                    raise ApiError(413, f"{upload.filename}: {size / 1048576:.1f} MB is over the "
                                        f"{server.max_upload_bytes / 1048576:g} MB limit per file; split it "
                                        f"(or start the server with a larger --max-upload-mb)",
                                   "file_too_large", param="files")
                if size == 0:
                    raise ApiError(400, f"{upload.filename}: the file is empty", "empty_file", param="files")
            files = await run_in_threadpool(_save_uploads, target, uploads)
        finally:
            await form.close()
        job = server.jobs.submit(target, "upload", files)
        return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.delete("/v1/documents/{doc_id}", tags=["documents"], status_code=202,
                summary="Remove a document (its chunks go in a background job).")
    async def delete_document(doc_id: str, request: Request, collection: str | None = None):
        principal = server.principal(request)
        target = server.collection(request, principal, collection, write=True)
        path = await run_in_threadpool(target.document_path, doc_id)
        if path is None:
            raise ApiError(404, f"no document '{doc_id}' in collection '{target.name}': GET /v1/documents lists them",
                           "document_not_found")
        if not Path(path).resolve().is_relative_to(target.uploads_dir.resolve()):
            raise ApiError(409, f"document '{doc_id}' was ingested from a folder outside the server's uploads "
                                f"(with `rag ingest`): remove it there and run `rag ingest` on that folder again",
                           "not_uploaded")
        job = server.jobs.submit(target, "delete", [JobFile(Path(path).name, Path(path).name)], remove=[path])
        return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs/{job_id}", tags=["documents"], summary="An ingest job: status, progress, per-file errors.")
    async def get_job(job_id: str, request: Request):
        principal = server.principal(request)
        job = server.jobs.get(job_id, server.collections)
        if job is None:
            raise ApiError(404, f"no job '{job_id}': job ids come from POST/DELETE /v1/documents", "job_not_found")
        request.state.collection = job.collection
        if not principal.allows(job.collection):
            raise ApiError(403, f"this key may not use collection '{job.collection}'", "collection_forbidden")
        return job.to_dict()

    if settings.ui:
        _mount_ui(app, server)

    from .middleware import RequestMiddleware

    app.add_middleware(RequestMiddleware, server=server)
    return app


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

DOCS_ASSETS = "/docs/assets"
# The files the /docs and /redoc pages load; nothing else is served from that folder.
_DOCS_FILES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
               "redoc.standalone.js": "text/javascript; charset=utf-8", "favicon.png": "image/png"}


def _mount_docs(app: FastAPI) -> None:
    """The OpenAPI pages at /docs (Swagger UI) and /redoc with their scripts and styles served by
    this server (same origin, no key needed), instead of FastAPI's default CDN links that leave
    the pages blank on a machine without internet. Swagger UI 5 (it reads OpenAPI 3.1)."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import FileResponse

    folder = Path(fastapi_offline.__file__).parent / "static"

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - docs",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png", with_google_fonts=False)

    @app.get(DOCS_ASSETS + "/{name}", include_in_schema=False)
    async def docs_asset(name: str):
        media_type = _DOCS_FILES.get(name)
        if media_type is None:
            raise ApiError(404, f"no docs asset '{name}'", "not_found")
        return FileResponse(folder / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


def _plain(value: Any):
    """numpy scalars and arrays (scores computed by the pipeline) as JSON numbers and lists."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple, Path)):
        return list(value) if not isinstance(value, Path) else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, default=_plain,
                          separators=(",", ":")).encode("utf-8")


def _sse(data: dict, event: str | None = None) -> str:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data, ensure_ascii=False, default=_plain)}\n\n"


# A union branch in a pydantic error location: a type, not a field ("str", "list[ContentPart]",
# "tuple[str, str]", "dict[str,str]").
_UNION_TAG = re.compile(r"^(?:str|int|float|bool|list|dict|tuple)(?:\[.*\])?$|^[A-Z]\w*(?:\[.*\])?$")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _body_model(request: Request):
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    return getattr(body_field, "type_", None) or getattr(getattr(body_field, "field_info", None), "annotation", None)


def _token_counter(qa, answer):
    """The answering generator's token count (the pipeline's own generator, already loaded);
    about four characters per token otherwise."""
    if answer.generator and answer.generator == qa.generator_name:
        try:
            return qa.generator_for().count_tokens
        except RagError:
            pass
    return lambda text: max(1, len(text) // 4)


def _size_of(handle) -> int:
    position = handle.tell()
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(position)
    return size


def _save_uploads(collection: Collection, uploads) -> list[JobFile]:
    """Each upload into the collection's uploads folder under a sanitized name (as in the UI):
    never outside it, never over another file; identical bytes reuse the saved copy."""
    from rag.ui.uploads import destination_for

    incoming = collection.uploads_dir / ".incoming"  # hidden: ingest skips it
    incoming.mkdir(parents=True, exist_ok=True)
    files = []
    for upload in uploads:
        temporary = incoming / secrets.token_hex(8)
        upload.file.seek(0)
        with open(temporary, "xb") as out:
            while block := upload.file.read(1 << 20):
                out.write(block)
        with collection.lock:
            target, duplicate = destination_for(collection.uploads_dir, upload.filename or "upload", temporary)
            if duplicate:
                temporary.unlink()
            else:
                os.replace(temporary, target)
        files.append(JobFile(name=upload.filename or "upload", saved_as=target.name))
    return files


def _mount_ui(app: FastAPI, server: Server) -> None:
    """The Gradio chat at /ui, for the default collection; the middleware guards it with the keys."""
    import rag.ui as ui

    names = server.collections.names()
    name = DEFAULT_COLLECTION if DEFAULT_COLLECTION in names else (names[0] if names else None)
    if name is None:
        raise InputError("--ui needs a collection: start with --index DIR, or create one under --data first")
    collection = server.collections.get(name)
    server.ui_collection = name
    # The page answers through the collection's own QA (built once, shared with the API).
    blocks = ui.create_app(index=str(collection.index_path), upload_dir=str(collection.uploads_dir),
                           qa=collection.qa, generator=server.generator_name, model=server.settings.model,
                           embed_model=server.settings.embed_model,
                           max_upload_mb=server.max_upload_bytes / 1024 / 1024)
    ui.mount(app, blocks, "/ui")  # the page's theme, CSP, upload limit and PDF route come with it


__all__ = ["create_app", "ServerSettings", "Server", "Principal"]
