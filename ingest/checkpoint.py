"""Checkpoints that make an interrupted ingest resumable.

An ingest writes its new version beside the live one and switches at the end, so a
long ingest killed at 90% (Ctrl-C, ``kill -9``, a crash) used to lose all its
embedding work. Now each file is saved here as soon as its chunks are embedded, and
the next run of the same ingest takes it back instead of embedding it again::

    INDEX/.resume/<settings>/<path key>.npz

``<settings>`` is a digest of everything that decides a file's chunks and vectors
besides its bytes (the embedding model, the chunker settings, the file limits, this
code's version and the checkpoint format), so a run with other settings never sees
another's checkpoints. Each entry records the file's path and content hash and is
used only when the file still has those bytes. An entry is written to a temporary
name and renamed, so a kill mid-write leaves no half entry under the real name; one
that is unreadable anyway (a crash of the machine) is ignored and its file embedded
again. The live index is never touched: checkpoints only ever feed the next version.

Entries are removed once their files are in a live version; checkpoints of other
settings go then too. Everything here runs under the index's lock.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag.text import sha256
from rag.types import Chunk
from rag.version import __version__

FOLDER = ".resume"
FORMAT = 1
_TMP = ".tmp-"


def settings_key(embed_model: str, chunker: dict, limits) -> str:
    """The digest naming the folder of checkpoints made with these settings."""
    described = {"format": FORMAT, "rag": __version__, "embed_model": embed_model,
                 "chunker": chunker, "limits": asdict(limits)}
    return sha256(json.dumps(described, sort_keys=True, ensure_ascii=False))[:24]


@dataclass
class Checkpoint:
    """One file's finished embedding work: everything its place in a new version needs."""

    path: str
    file_hash: str
    meta: dict  # the file's manifest entry (hash, chunks, pages, source, ingested_at)
    chunks: list[Chunk]
    vectors: np.ndarray  # (chunks, dim)
    windows: list[np.ndarray]  # per chunk: (its windows, dim)
    terms: list[list[str]]  # per chunk: its corpus terms (rag.terms.extract_terms)
    # vectors of the file's terms that the live version did not have when it was embedded
    term_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    warning: str = ""
    embedder: dict = field(default_factory=dict)  # Embedder.describe(), for the manifest

    @property
    def window_count(self) -> int:
        return sum(len(w) for w in self.windows)


class Checkpoints:
    """The checkpoints of one index made with one set of settings (``key``)."""

    def __init__(self, index_path: Path, key: str):
        self.root = Path(index_path) / FOLDER
        self.key = key
        self.folder = self.root / key

    def entry_file(self, path: str) -> Path:
        return self.folder / (sha256(path)[:32] + ".npz")

    def remove_partial(self) -> None:
        """Temporary files of writes a kill interrupted (under the lock: nobody is writing)."""
        if not self.folder.is_dir():
            return
        for item in self.folder.iterdir():
            if _TMP in item.name:
                item.unlink(missing_ok=True)

    def has(self, path: str) -> bool:
        return self.entry_file(path).is_file()

    def any(self) -> bool:
        return self.folder.is_dir() and any(p.suffix == ".npz" for p in self.folder.iterdir())

    def load(self, path: str, file_hash: str) -> Checkpoint | None:
        """The checkpoint of ``path`` if it was made from the bytes hashing to ``file_hash``
        and reads back whole; else None (a damaged one is removed)."""
        file = self.entry_file(path)
        if not file.is_file():
            return None
        try:
            checkpoint = _read(file, self.key)
        except Exception:  # truncated or garbled (zip CRC, shapes, JSON): embed the file again
            file.unlink(missing_ok=True)
            return None
        if checkpoint.path != path or checkpoint.file_hash != file_hash:
            return None  # the file changed since: its entry is replaced when it is embedded again
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        file = self.entry_file(checkpoint.path)
        tmp = file.with_name(f"{file.name}{_TMP}{secrets.token_hex(4)}")
        try:
            _write(tmp, checkpoint, self.key)
            os.replace(tmp, file)  # the entry appears whole or not at all
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def files(self) -> int:
        return sum(1 for p in self.folder.iterdir() if p.suffix == ".npz") if self.folder.is_dir() else 0

    def discard(self, paths) -> None:
        """Drop the entries of ``paths`` (their files are live now, or changed since)."""
        for path in paths:
            self.entry_file(path).unlink(missing_ok=True)

    def finish(self, paths) -> None:
        """After a version went live: drop the entries of ``paths`` and every checkpoint
        made with other settings; the folder goes when nothing is left in it. Entries of
        other files (an interrupted ingest of another folder) stay for its next run."""
        if not self.root.is_dir():
            return
        self.discard(paths)
        self.remove_partial()
        for item in self.root.iterdir():
            if item.name != self.key:
                shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
        for folder in (self.folder, self.root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass

    def clear(self) -> None:
        """Forget every checkpoint of the index (``resume=False``: start over)."""
        shutil.rmtree(self.root, ignore_errors=True)


# --- the entry file: one .npz, no pickles ---------------------------------------------

def _write(file: Path, cp: Checkpoint, key: str) -> None:
    dim = cp.vectors.shape[1] if cp.vectors.ndim == 2 else 0
    terms = list(cp.term_vectors)
    meta = {
        "format": FORMAT, "settings": key, "path": cp.path, "file_hash": cp.file_hash, "meta": cp.meta,
        "warning": cp.warning, "embedder": cp.embedder, "chunks": [c.to_dict() for c in cp.chunks],
        "terms": cp.terms, "term_names": terms,
    }
    windows = [w for w in cp.windows if len(w)]
    with open(file, "wb") as out:
        np.savez(
            out,
            meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
            vectors=np.ascontiguousarray(cp.vectors, dtype=np.float32),
            windows=(np.concatenate(windows).astype(np.float32, copy=False) if windows
                     else np.zeros((0, dim), np.float32)),
            window_counts=np.asarray([len(w) for w in cp.windows], dtype=np.int32),
            term_vectors=(np.stack([cp.term_vectors[t] for t in terms]).astype(np.float32, copy=False) if terms
                          else np.zeros((0, dim), np.float32)),
        )


def _read(file: Path, key: str) -> Checkpoint:
    with np.load(file, allow_pickle=False) as data:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
        vectors, windows = data["vectors"], data["windows"]
        counts, term_vectors = data["window_counts"], data["term_vectors"]
    if meta.get("format") != FORMAT or meta.get("settings") != key:
        raise ValueError("another checkpoint format, or made with other settings")
    chunks = [Chunk(**c) for c in meta["chunks"]]
    n, dim = len(chunks), vectors.shape[1]
    consistent = (
        vectors.shape == (n, dim) and len(counts) == n and len(meta["terms"]) == n
        and windows.shape == (int(counts.sum()), dim) and term_vectors.shape == (len(meta["term_names"]), dim)
        and all(np.isfinite(a).all() for a in (vectors, windows, term_vectors))
    )
    if not consistent:
        raise ValueError("inconsistent checkpoint")
    starts = np.concatenate([[0], np.cumsum(counts)])
    return Checkpoint(
        path=meta["path"], file_hash=meta["file_hash"], meta=meta["meta"], chunks=chunks, vectors=vectors,
        windows=[windows[starts[i]:starts[i + 1]] for i in range(n)], terms=meta["terms"],
        term_vectors=dict(zip(meta["term_names"], term_vectors)), warning=meta.get("warning", ""),
        embedder=meta.get("embedder") or {},
    )
