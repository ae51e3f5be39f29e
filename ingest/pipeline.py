"""Incremental ingest, the entry point: :func:`ingest` picks the run for the index
(a FAISS folder: :class:`~rag.ingest.run.IngestRun` under the folder's lock; a
``milvus://`` URI: :class:`~rag.ingest.milvus_run.MilvusIngestRun`) and runs it.

The run itself (discovery, loading, embedding, publishing) is in :mod:`.run`; its
names are importable from here too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from rag import config
from rag.errors import IndexError_, InputError, RagError

from .chunking import ChunkerSettings
from .limits import Limits
from .run import FileReport, IngestInterrupted, IngestRun, IngestSummary, discover  # noqa: F401  (the public names)


GIL_SWITCH_INTERVAL = 0.0002  # seconds, while an ingest runs
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.005


@contextmanager
def _short_gil_switch():
    """The main thread parses (pure Python) while the worker embeds: each time the
    worker comes back from a numpy call it waits for the GIL, by default up to 5 ms.
    A shorter interval hands it back sooner (bench/ingest.py: ~2 points of throughput).
    The interpreter's own value is back once the last concurrent ingest ends."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


def ingest(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    index: str | os.PathLike | None = None,
    *,
    embed_model: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    chunk_size: int = ChunkerSettings.chunk_size,
    chunk_overlap: int = ChunkerSettings.chunk_overlap,
    window_chars: int = ChunkerSettings.window_chars,
    index_type: str = "auto",
    rebuild: bool = False,
    prune_missing: bool = True,
    progress: bool = True,
    on_file: Callable[[FileReport], None] | None = None,
    lock_timeout: float = 600.0,
    limits: Limits | None = None,
    follow_links: bool = False,
    on_wait: Callable[[str], None] | None = None,
    parse_workers: int | None = None,
    resume: bool = True,
    on_resume: Callable[[str], None] | None = None,
) -> IngestSummary:
    """Ingest files and folders into the index at ``index`` (default: $RAG_INDEX_DIR or ./.rag/index).

    ``limits``: per-file resource limits (default: ``Limits.from_config()``);
    ``follow_links``: also take links that lead out of a walked folder;
    ``on_wait(message)``: called once when another ingest holds the index's lock;
    ``parse_workers``: processes that parse files beside the embedding (default: by files
    and cores, see rag.ingest.parallel; 0 parses in this process);
    ``resume``: take back the files an interrupted run of the same ingest already embedded
    (rag.ingest.checkpoint; False drops them and starts over); ``on_resume(message)``:
    called once when it does ("resuming: 7 of 10 files already embedded").

    Ctrl-C raises :class:`IngestInterrupted` (a KeyboardInterrupt) whose ``line`` says how
    many files are kept for the next run.
    """
    from filelock import FileLock, Timeout

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if chunk_overlap >= chunk_size or chunk_size < 16:
        raise InputError(f"chunk size {chunk_size} with overlap {chunk_overlap}: need size >= 16 and overlap < size")
    started = time.perf_counter()
    index_path = config.index_dir(index)
    if not isinstance(index_path, Path):  # a milvus:// URI: no folder lock, each file switches alone
        from .milvus_run import MilvusIngestRun

        with _short_gil_switch():
            run = MilvusIngestRun(index_path, ChunkerSettings(chunk_size, chunk_overlap, window_chars),
                                  embed_model=embed_model, index_type=index_type, rebuild=rebuild,
                                  prune_missing=prune_missing, progress=progress, on_file=on_file, started=started,
                                  limits=limits, follow_links=follow_links, parse_workers=parse_workers)
            return run.run(paths, include, exclude)
    limits = limits or Limits.from_config()  # a bad RAG_MAX_* is reported before waiting for the lock
    try:
        index_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file by that name, a file above it, a read-only or missing place
        what = "it is a file" if index_path.is_file() else (exc.strerror or str(exc))
        raise IndexError_(f"cannot create the index folder {index_path} ({what}): give --index (or RAG_INDEX_DIR) "
                          "a folder that can be created") from None
    lock_path = index_path / ".lock"
    lock = FileLock(str(lock_path))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait:
                on_wait(f"waiting for another ingest of this index… ({index_path})")
            lock.acquire(timeout=lock_timeout)
    except Timeout:
        raise RagError(f"another ingest is writing {index_path}: wait for it to finish") from None
    except OSError as exc:  # a link planted as .lock (filelock will not follow it), a read-only folder
        what = "is a symbolic link: remove it" if lock_path.is_symlink() else "cannot be opened: check the permissions"
        raise RagError(f"cannot lock {lock_path} ({exc.strerror or exc}): it {what}") from None
    try:
        from rag.store import remove_leftovers

        remove_leftovers(index_path)  # of ingests killed mid-write: under the lock, nobody is writing them
        with _short_gil_switch():
            run = IngestRun(index_path, ChunkerSettings(chunk_size, chunk_overlap, window_chars),
                            embed_model=embed_model, index_type=index_type, rebuild=rebuild,
                            prune_missing=prune_missing, progress=progress, on_file=on_file, started=started,
                            limits=limits, follow_links=follow_links, parse_workers=parse_workers,
                            resume=resume, on_resume=on_resume)
            return run.run(paths, include, exclude)
    finally:
        lock.release()
