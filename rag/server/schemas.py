"""Request bodies of the JSON endpoints (pydantic: types only).

Ranges and allowed values are checked by :mod:`rag.settings`, so the server says the
same thing as the CLI and the Python API ("temperature=3: choose a value from 0 to 2").
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from rag.settings import GenerationSettings, RetrievalSettings

# Files one upload request may carry (the body limit of the middleware follows from it).
MAX_FILES_PER_UPLOAD = 20


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question to find passages for.")
    collection: str | None = Field(None, description="Collection name (default: the key's or the server's only one).")
    k: int | None = Field(None, description="Number of chunks (RetrievalSettings.k).")
    candidates: int | None = None
    mmr: bool | None = None
    mmr_lambda: float | None = None
    fusion: str | None = None
    dense_weight: float | None = None
    window_weight: float | None = None
    lexical_weight: float | None = None
    expansion_weight: float | None = None
    min_score: float | None = None
    caution_score: float | None = None


class AskRequest(RetrieveRequest):
    history: list[Union[tuple[str, str], dict[str, str]]] | None = Field(
        None, description="Earlier turns: [[question, answer], ...] or [{\"question\": ..., \"answer\": ...}].")
    generator: str | None = Field(None, description="Generator name (GET /v1/info lists them).")
    model: str | None = Field(None, description="Model of the generator (openai: the upstream model name).")
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: Union[str, list[str], None] = None
    stream: bool = Field(False, description="Server-sent events: a 'sources' event, 'delta' events, an 'answer' event.")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[str, list[ContentPart], None] = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = None


# Fields of OpenAI's chat completion request (and the sampling extras vLLM and llama.cpp take)
# that this server has no use for: accepted and ignored, as clients send them by default.
# Any other field is a mistake ("temprature") and is refused, as OpenAI refuses it.
IGNORED_CHAT_FIELDS = frozenset(
    "audio frequency_penalty function_call functions logit_bias logprobs metadata modalities "
    "parallel_tool_calls prediction presence_penalty prompt_cache_key reasoning_effort safety_identifier "
    "seed service_tier store tool_choice top_logprobs user verbosity web_search_options "
    "top_k min_p repetition_penalty".split())


# This server's own settings, sent as extra fields (openai: extra_body={"k": 8, "min_score": 0.5}).
SETTINGS_FIELDS = frozenset(f for f in RetrievalSettings.names() if f != "reranker") | \
    frozenset(GenerationSettings.names())


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="'rag' (the default collection) or 'rag/<collection>'.")
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: Union[str, list[str], None] = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None

    @model_validator(mode="after")
    def _known_fields(self):
        for name in self.model_extra or {}:
            if name not in IGNORED_CHAT_FIELDS and name not in SETTINGS_FIELDS:
                known = [*type(self).model_fields, *SETTINGS_FIELDS, *IGNORED_CHAT_FIELDS]
                close = difflib.get_close_matches(name, known, n=1)
                hint = f": did you mean '{close[0]}'?" if close else ": leave it out"
                raise PydanticCustomError("unknown_field", "'{field}' is not a field of a chat completion{hint}",
                                          {"field": name, "hint": hint})
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            raise PydanticCustomError(
                "unsupported", "response_format '{kind}' is not supported: answers are text with [n] citations; "
                "leave response_format out", {"kind": str(kind)})
        if self.tools:
            raise PydanticCustomError(
                "unsupported", "tools are not supported: this server answers from the documents and calls no "
                "functions; leave tools out", {})
        return self


class CollectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def history_pairs(history: list[Any] | None) -> list[tuple[str, str]]:
    pairs = []
    for turn in history or []:
        if isinstance(turn, dict):
            pairs.append((str(turn.get("question", "")), str(turn.get("answer", ""))))
        else:
            pairs.append((str(turn[0]), str(turn[1])))
    return pairs


def message_text(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text or "" for part in message.content if part.type in ("text", "input_text"))


__all__ = ["RetrieveRequest", "AskRequest", "ChatCompletionRequest", "ChatMessage", "CollectionRequest",
           "history_pairs", "message_text"]
