"""Reading and parsing files in worker processes, so that PDF parsing (pure Python,
holding the GIL) runs beside the embedding thread on another core.

The workers only hash and parse: chunking (which needs the embedder's tokenizer) and
everything that builds the index stay in the ingest's own process, in file order, so
the chunks, their ids and their order are the same with or without the pool.

Processes are *spawned* (a fork of a process running the embedding thread and numpy's
threads is unsafe), and without the caller's ``__main__``: a script that calls
``rag.ingest(...)`` at top level, without ``if __name__ == "__main__":``, is not run
again in each worker (multiprocessing's spawn would otherwise re-execute it).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import types
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import context, popen_spawn_posix, spawn
from pathlib import Path
from typing import Iterator

from rag.errors import DocumentError
from rag.text import sha256

from .limits import Limits
from .loaders import Record, load_document, read_limited


@dataclass
class Loaded:
    """One file read and parsed: ``records`` is None when it is unchanged (same hash
    as ``previous_hash``) or failed (``error`` says why; ``file_hash`` None when the
    file could not even be read)."""

    file_hash: str | None
    records: list[Record] | None = None
    error: str = ""


def read_and_parse(path: str | Path, previous_hash: str | None, limits: Limits) -> Loaded:
    """Hash the file and, unless it is unchanged, parse it. Never raises for the file's
    own problems: they come back as ``error`` (one line), the ingest goes on."""
    path = Path(path)
    try:
        # the size limit before reading: hashing a 2 GB file would read it all first
        file_hash = sha256(read_limited(path, limits))
    except DocumentError as exc:
        return Loaded(None, error=exc.reason)
    except OSError as exc:
        return Loaded(None, error=f"cannot read the file ({exc.strerror or exc})")
    if previous_hash is not None and previous_hash == file_hash:
        return Loaded(file_hash)
    try:
        return Loaded(file_hash, load_document(path, limits))
    except DocumentError as exc:
        return Loaded(file_hash, error=exc.reason)


def parse_workers(files: int, requested: int | None = None) -> int:
    """Worker processes for ``files`` files: none for one file or one core (starting a
    process costs more than it saves), else one less than the cores (the embedding
    thread needs one), at most 4 (parsing is rarely the bottleneck beyond that)."""
    if requested is not None:
        return max(0, min(requested, files))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if files < 2 or cores < 2:
        return 0
    return max(1, min(cores - 1, 4, files - 1))


# --- spawn without re-running __main__ -------------------------------------------------

class _SpawnWithoutMain:
    """multiprocessing.spawn, except that the preparation data names no main module."""

    def __getattr__(self, name):
        return getattr(spawn, name)

    @staticmethod
    def get_preparation_data(name):
        data = spawn.get_preparation_data(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data


class _Popen(popen_spawn_posix.Popen):
    # popen_spawn_posix.Popen._launch itself, reading `spawn` from globals where it is
    # _SpawnWithoutMain: no process-wide patching, other spawns are untouched.
    _launch = types.FunctionType(
        popen_spawn_posix.Popen._launch.__code__,
        {**vars(popen_spawn_posix), "spawn": _SpawnWithoutMain()},
        "_launch", popen_spawn_posix.Popen._launch.__defaults__,
        popen_spawn_posix.Popen._launch.__closure__)


class _Process(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):
        return _Popen(process_obj)


class _Context(context.SpawnContext):
    Process = _Process


def _worker_start(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the ingest's process handles it and shuts
    # the pool down; a worker's own KeyboardInterrupt traceback would only be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An ingest killed outright (kill -9, the OOM killer) never tells its workers, and
    # they hold both ends of the task queue's pipe: they would wait on it for ever
    # (found as orphans after the kill -9 test). They leave when their parent is gone.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def unchanged(path: Path, previous_hash: str | None, limits: Limits) -> Loaded | None:
    """``Loaded(file_hash)`` when the file still hashes to ``previous_hash``, else None
    (it is new, changed or unreadable: ``read_and_parse`` parses it or says why)."""
    if previous_hash is None:
        return None
    try:
        file_hash = sha256(read_limited(path, limits))
    except (DocumentError, OSError):
        return None
    return Loaded(file_hash) if file_hash == previous_hash else None


def loaded_files(files: list[Path], previous_hashes: dict[str, str], limits: Limits,
                 workers: int) -> Iterator[tuple[Path, Loaded]]:
    """(path, Loaded) for each file, in the order given.

    Files that still have their previous hash are told apart here first (hashing is
    cheap; starting worker processes for a re-ingest that changes nothing cost more
    than the whole rest of it). With ``workers`` > 0 and at least two files to parse,
    those are parsed in that many spawned processes, a few files ahead of the caller
    (memory stays bounded); the first one is parsed here while the workers start. A
    pool that breaks (a worker killed, out of memory) does not fail the ingest: the
    remaining files are parsed here. The pool is shut down when the caller stops early
    (Ctrl-C, an error): the generator's ``close``.
    """
    def here(path: Path) -> Loaded:
        return read_and_parse(path, previous_hashes.get(str(path)), limits)

    known = {path: unchanged(path, previous_hashes.get(str(path)), limits) for path in files}
    to_parse = [path for path in files if known[path] is None]
    if workers <= 0 or len(to_parse) < 2:
        for path in files:
            yield path, known[path] or here(path)
        return
    pool = ProcessPoolExecutor(min(workers, len(to_parse) - 1), mp_context=_Context(),
                               initializer=_worker_start, initargs=(os.getpid(),))
    ahead: dict[Path, object] = {}
    queue = deque(to_parse[1:])  # the first is parsed here while the workers start
    broken = False

    def refill() -> None:
        while not broken and queue and len(ahead) < 2 * workers:
            path = queue.popleft()
            ahead[path] = pool.submit(read_and_parse, str(path), previous_hashes.get(str(path)), limits)

    try:
        refill()
        for path in files:
            if known[path] is not None:
                yield path, known[path]
                continue
            future = ahead.pop(path, None)
            if future is None:  # the first file, or the pool broke
                loaded = here(path)
            else:
                try:
                    loaded = future.result()
                except Exception:  # the pool broke (a worker died): parse here from now on
                    broken = True
                    loaded = here(path)
            yield path, loaded
            refill()
    finally:
        pool.shutdown(wait=not broken and not ahead, cancel_futures=True)
