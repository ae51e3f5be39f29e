"""The document sets a server answers from: one index (and one :class:`rag.qa.QA`) per collection.

Layout of ``rag serve --data DATA``::

    DATA/
      keys.json               API keys (hashes), mode 0600
      <collection>/
        index/                the collection's index (rag ingest ... --index DATA/<collection>/index)
        uploads/              files uploaded through POST /v1/documents (sanitized names)
        jobs/                 one JSON record per ingest job

``rag serve --index DIR`` serves one collection called ``default`` whose index is DIR;
its uploads and jobs go beside it (``DIR/../uploads``, ``DIR/../jobs``), where `rag ui`
keeps its uploads too.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rag import config
from rag.errors import InputError

DEFAULT_COLLECTION = "default"
_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION.match(name) or ".." in name:
        raise InputError(f"collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
                         f"starting with a letter or digit")
    return name


def document_id(path: str) -> str:
    """A document's id in the API: stable for a file path across re-ingests."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


@dataclass
class Collection:
    name: str
    index_path: Path
    uploads_dir: Path
    jobs_dir: Path
    qa: object = None  # rag.qa.QA, built once by Collections
    lock: threading.Lock = field(default_factory=threading.Lock)  # naming uploaded files

    @property
    def has_index(self) -> bool:
        from rag.store import read_current

        return read_current(self.index_path) is not None

    def manifest(self) -> dict | None:
        from rag.store import read_manifest

        if not self.has_index:
            return None
        return read_manifest(self.index_path)

    def documents(self) -> list[dict]:
        """The files in the live index version, with pages, chunks, hash and ingest time."""
        manifest = self.manifest()
        if not manifest:
            return []
        out = []
        for path, meta in sorted(manifest.get("files", {}).items(), key=lambda kv: kv[1].get("source", kv[0])):
            out.append({
                "id": document_id(path),
                "file": meta.get("source") or Path(path).name,
                "pages": meta.get("pages", 0),
                "chunks": meta.get("chunks", 0),
                "hash": meta.get("hash", ""),
                "ingested_at": meta.get("ingested_at", ""),
                "uploaded": _inside(self.uploads_dir, Path(path)),
            })
        return out

    def document_path(self, doc_id: str) -> str | None:
        manifest = self.manifest() or {}
        for path in manifest.get("files", {}):
            if document_id(path) == doc_id:
                return path
        return None

    def describe(self) -> dict:
        manifest = self.manifest()
        return {
            "name": self.name,
            "documents": len(manifest.get("files", {})) if manifest else 0,
            "chunks": sum(m.get("chunks", 0) for m in manifest.get("files", {}).values()) if manifest else 0,
            "embed_model": manifest["embedder"]["name"] if manifest else None,
            "version": _current(self.index_path),
        }


def _current(index_path: Path) -> str | None:
    from rag.store import read_current

    return read_current(index_path)


def _inside(folder: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


class Collections:
    """Every collection of a server, each with its QA built once and reused.

    With ``data``, folders appearing later (``rag ingest --index DATA/new/index``, or
    ``POST /v1/collections``) are picked up on first use without a restart.
    """

    def __init__(self, *, index: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
                 generator: str | None = None, model: str | None = None, retrieval=None, generation=None,
                 embed_model: str | None = None):
        if index and data:
            raise InputError("give --index DIR (one collection) or --data DIR (one folder per collection), not both")
        self.data = Path(data).expanduser().resolve() if data else None
        self.index = None if data else config.index_dir(index).expanduser().resolve()
        self.generator, self.model = generator, model
        self.retrieval, self.generation = retrieval, generation
        self.embed_model = embed_model
        self._items: dict[str, Collection] = {}
        self._lock = threading.Lock()
        if self.data:
            if self.data.exists() and not self.data.is_dir():
                raise InputError(f"--data {self.data}: not a folder; give the folder that holds one folder per collection")
            self.data.mkdir(parents=True, exist_ok=True)
        self.scan()

    @property
    def root(self) -> Path:
        """The folder the keys file sits in by default."""
        return self.data if self.data else self.index.parent

    def _make(self, name: str, index_path: Path, base: Path) -> Collection:
        from rag.qa import QA

        qa = QA(index_path, self.generator, self.model, retrieval=self.retrieval, generation=self.generation,
                embed_model=self.embed_model)
        return Collection(name, index_path, base / "uploads", base / "jobs", qa)

    def scan(self) -> None:
        with self._lock:
            if self.index is not None:
                if DEFAULT_COLLECTION not in self._items:
                    self._items[DEFAULT_COLLECTION] = self._make(DEFAULT_COLLECTION, self.index, self.index.parent)
                return
            for folder in sorted(self.data.iterdir()):
                if folder.is_dir() and _COLLECTION.match(folder.name) and folder.name not in self._items:
                    self._items[folder.name] = self._make(folder.name, folder / "index", folder)

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> Collection | None:
        if name not in self._items and self.data is not None and _COLLECTION.match(name or ""):
            if (self.data / name).is_dir():
                self.scan()
        return self._items.get(name)

    def create(self, name: str) -> tuple[Collection, bool]:
        """(the collection, whether it is new); only with ``--data``."""
        check_collection_name(name)
        if self.data is None:
            raise InputError("this server serves one index (--index): start it with --data DIR to create collections")
        existing = self.get(name)
        if existing:
            return existing, False
        (self.data / name).mkdir(parents=True, exist_ok=True)
        self.scan()
        return self._items[name], True

    def __iter__(self):
        return iter([self._items[n] for n in self.names()])


__all__ = ["Collection", "Collections", "DEFAULT_COLLECTION", "check_collection_name", "document_id"]
