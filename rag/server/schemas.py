"""Request bodies of the JSON endpoints (pydantic: types only).

Ranges and allowed values are checked by :mod:`rag.settings`, so the server says the
same thing as the CLI and the Python API ("temperature=3: choose a value from 0 to 2").
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

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


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send fields this server has no use for (seed, user, penalties, ...): accepted, ignored.
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
