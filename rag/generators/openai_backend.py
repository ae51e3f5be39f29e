"""OpenAI Chat Completions, or any OpenAI-compatible server (llama.cpp, vLLM, Ollama)
through OPENAI_BASE_URL, with the official ``openai`` client and token streaming."""

from __future__ import annotations

from typing import Iterator

from rag import config
from rag.errors import ConfigurationError, GeneratorError, ServerUnavailableError

from .base import GenerationRequest, Generator

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIGenerator(Generator):
    name = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 2):
        from openai import OpenAI

        env_url, env_key = config.openai_endpoint()
        self.base_url = base_url or env_url
        api_key = api_key or env_key
        if not api_key:
            if not self.base_url:
                raise ConfigurationError(
                    "OPENAI_API_KEY is not set: export your key, or set OPENAI_BASE_URL to a local "
                    "OpenAI-compatible server (llama.cpp, vLLM, Ollama), or use --generator extractive"
                )
            api_key = "not-needed"  # local servers accept any key
        self.model = config.openai_model(model) or DEFAULT_MODEL
        self.client = OpenAI(api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=max_retries)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        import openai

        url = self.base_url or "https://api.openai.com/v1"
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=request.messages,
                temperature=request.temperature,
                top_p=request.top_p,
                max_tokens=request.max_tokens,
                stop=request.stop or None,
                stream=True,
            )
            for event in response:
                if event.choices and event.choices[0].delta and event.choices[0].delta.content:
                    yield event.choices[0].delta.content
        except openai.APIConnectionError as exc:
            raise ServerUnavailableError(url, type(exc).__name__) from None
        except openai.AuthenticationError:
            raise ConfigurationError(f"the server at {url} rejected the API key: check OPENAI_API_KEY") from None
        except openai.NotFoundError:
            raise GeneratorError(f"model '{self.model}' not found at {url}: choose one with --model") from None
        except openai.APIStatusError as exc:
            raise GeneratorError(f"the server at {url} answered {exc.status_code}: {str(exc)[:200]}") from None
