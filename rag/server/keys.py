"""API keys for `rag serve`: created by `rag keys create`, stored only as hashes.

The keys file (JSON, mode 0600) holds one record per key::

    {"keys": [{"id": "k-3f9a1c2e", "name": "ci-upload", "hash": "<sha256 hex>",
               "collections": ["handbook"], "read_only": false, "created_at": "..."}]}

A key is ``rag-`` followed by 43 random URL-safe characters (256 bits): a plain SHA-256
is enough to store it (slow password hashes are for guessable secrets). A presented key
is hashed and compared with every stored hash in constant time (``hmac.compare_digest``),
so neither the hash nor the position of a match leaks through timing.

The server re-reads the file when it changes, so `rag keys create` and `rag keys revoke`
take effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.errors import InputError, RagError

KEY_PREFIX = "rag-"
_NAME = re.compile(r"^[\w.@:-]{1,64}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class KeyRecord:
    id: str
    name: str
    hash: str
    collections: list[str] | None = None  # None: every collection
    read_only: bool = False
    created_at: str = ""

    def allows(self, collection: str, write: bool = False) -> bool:
        if write and self.read_only:
            return False
        return self.collections is None or collection in self.collections

    def public(self) -> dict:
        """What `rag keys list` shows: everything but the hash."""
        out = asdict(self)
        out.pop("hash")
        return out


@dataclass
class KeysFile:
    """The keys file at ``path``; :meth:`find` is what the server calls per request."""

    path: Path
    _records: list[KeyRecord] = field(default_factory=list)
    _stamp: tuple | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.path = Path(self.path)

    # -- reading --------------------------------------------------------------------
    def _file_stamp(self):
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def records(self) -> list[KeyRecord]:
        """The keys, re-read when the file changed since the last call."""
        stamp = self._file_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._records = self._read() if stamp is not None else []
                self._stamp = stamp
            return list(self._records)

    def _read(self) -> list[KeyRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [KeyRecord(**item) for item in data.get("keys", [])]
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise RagError(f"keys file {self.path} is unreadable ({type(exc).__name__}): "
                           f"fix it or move it away and create keys again with `rag keys create`") from None

    @property
    def configured(self) -> bool:
        return bool(self.records())

    def find(self, key: str | None) -> KeyRecord | None:
        """The record of ``key``, or None. Every stored hash is compared, in constant time."""
        return self.check(key)[1]

    def check(self, key: str | None) -> tuple[bool, KeyRecord | None]:
        """(are keys configured, the record of ``key`` or None) from one look at the file: what
        a request needs, with one stat() instead of two (revocation stays immediate)."""
        records = self.records()
        if not key or not records:
            return bool(records), None
        presented = hash_key(key)  # hashed once; then compared with every stored hash
        match = None
        for record in records:
            if hmac.compare_digest(presented, record.hash):
                match = record
        return True, match

    # -- writing (rag keys) ---------------------------------------------------------
    def _write(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        payload = json.dumps({"keys": [asdict(r) for r in records]}, indent=2, ensure_ascii=False)
        # Created 0600 from the start: the hashes are not secrets, but nobody else
        # should be able to add a key of their own to the file.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        os.chmod(self.path, 0o600)

    def create(self, name: str | None = None, collections: list[str] | None = None,
               read_only: bool = False) -> tuple[str, KeyRecord]:
        """A new key (returned once, never stored) and its record."""
        records = self.records()
        name = name or f"key-{len(records) + 1}"
        if not _NAME.match(name):
            raise InputError(f"key name {name!r}: use 1-64 letters, digits, '.', '_', '-', '@' or ':'")
        if any(r.name == name for r in records):
            raise InputError(f"a key named {name!r} exists: choose another --name (or `rag keys revoke {name}`)")
        from .collections import check_collection_name

        for collection in collections or []:
            check_collection_name(collection)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(id="k-" + secrets.token_hex(4), name=name, hash=hash_key(key),
                           collections=sorted(set(collections)) if collections else None,
                           read_only=bool(read_only), created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._write(records + [record])
        self._stamp = None
        return key, record

    def revoke(self, id_or_name: str) -> KeyRecord:
        records = self.records()
        keep = [r for r in records if id_or_name not in (r.id, r.name)]
        if len(keep) == len(records):
            known = ", ".join(f"{r.name} ({r.id})" for r in records) or "none"
            raise InputError(f"no key {id_or_name!r} in {self.path}: known keys are {known}")
        removed = next(r for r in records if id_or_name in (r.id, r.name))
        self._write(keep)
        self._stamp = None
        return removed


def bearer_token(header: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header (also HTTP Basic, password = key,
    which is what a browser can send for the /ui page)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        return value or None
    if scheme == "basic":
        import base64
        import binascii

        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return decoded.partition(":")[2] or None
    return None


__all__ = ["KeysFile", "KeyRecord", "hash_key", "bearer_token", "KEY_PREFIX"]
