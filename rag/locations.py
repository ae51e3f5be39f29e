"""Where an index lives: a folder (a Path) or a Milvus collection (a ``milvus://`` URI).

Parsing the location needs nothing of Milvus itself; it lives here, low in the core,
so that rag.config (which resolves --index / $RAG_INDEX_DIR) and rag.store (which
dispatches on it) need not import rag.milvus_store, which builds on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

SCHEME = "milvus:"
DEFAULT_COLLECTION = "default"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$")


@dataclass(frozen=True)
class MilvusURI:
    """A parsed ``milvus://`` index location. Quacks enough like a Path for callers
    that only print it, resolve it or put files beside it (``parent``)."""

    target: str  # absolute .db path (Milvus Lite) or host:port
    collection: str = DEFAULT_COLLECTION

    @property
    def is_lite(self) -> bool:
        return self.target.startswith("/")

    @property
    def client_uri(self) -> str:
        return self.target if self.is_lite else f"http://{self.target}"

    def __str__(self) -> str:
        prefix = "milvus://" + self.target
        return prefix if self.collection == DEFAULT_COLLECTION else f"{prefix}#{self.collection}"

    def __fspath__(self) -> str:  # Path(uri) keeps enough of it for parse() to recover it
        return str(self)

    # Path-like no-ops: the location is already absolute and canonical.
    def expanduser(self) -> "MilvusURI":
        return self

    def absolute(self) -> "MilvusURI":
        return self

    def resolve(self) -> "MilvusURI":
        return self

    @property
    def parent(self) -> Path:
        """Where files that live beside an index go (feedback, API keys)."""
        return Path(self.target).parent if self.is_lite else Path(".rag")

    @property
    def name(self) -> str:
        return self.collection

    def exists(self) -> bool:
        return True

    def mkdir(self, *args, **kwargs) -> None:
        pass


def is_milvus(location) -> bool:
    return isinstance(location, MilvusURI) or str(location).startswith(SCHEME)


def parse(location) -> MilvusURI:
    """``milvus:///abs/file.db[#name]`` or ``milvus://host:port[#name]``; also the forms a
    Path makes of them (``milvus:/abs/file.db``, ``milvus:/host:port``)."""
    if isinstance(location, MilvusURI):
        return location
    text = str(location)
    if not text.startswith(SCHEME):
        raise InputError(f"'{text}' is not a Milvus URI: use milvus:///abs/path/file.db or milvus://host:port")
    rest, _, collection = text[len(SCHEME):].partition("#")
    collection = collection or DEFAULT_COLLECTION
    if not _NAME.match(collection):
        raise InputError(f"collection name '{collection}' in {text}: use letters, digits and _ "
                         f"(starting with a letter or _)")
    body = rest.lstrip("/")
    if _HOST_PORT.match(body) and not body.endswith(".db"):
        return MilvusURI(body, collection)
    if rest.startswith("///") or (rest.startswith("/") and not rest.startswith("//")):
        path = "/" + body
        if not path.endswith(".db"):
            raise InputError(f"Milvus Lite file '{path}' in {text}: the name must end in .db "
                             f"(milvus:///abs/path/file.db)")
        return MilvusURI(str(Path(path)), collection)
    raise InputError(f"cannot read Milvus URI {text}: use milvus:///abs/path/file.db (Milvus Lite, absolute "
                     f"path) or milvus://host:port, optionally with #collection")


__all__ = ["MilvusURI", "is_milvus", "parse", "SCHEME", "DEFAULT_COLLECTION"]
