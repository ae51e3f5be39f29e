"""The ingest run: walk folders, load, clean, chunk, embed only what changed, and
hand the new version to the store.

Re-running on the same folder re-embeds only new or changed files (by content
hash). Files that were ingested from a walked folder and are gone now are removed
from the index (``prune_missing=False`` keeps them). A file that fails to load but
was ingested before keeps its previous chunks: a bad copy never erases good data.

:class:`IngestRun` is the FAISS-folder run; ``milvus_run.MilvusIngestRun`` builds on
it. :func:`rag.ingest.pipeline.ingest` chooses the run, takes the lock and starts it
(a module above both, so that neither imports the other).
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rag import config
from rag.errors import DocumentError
from rag.progress import on_terminal
from rag.terms import extract_terms
from rag.types import Chunk
from rag.text import sentence_windows

from .checkpoint import Checkpoint, Checkpoints, settings_key
from .chunking import ChunkerSettings, chunk_records, make_splitter
from .limits import Limits
from .loaders import LOADERS, NOT_REGULAR
from .parallel import Loaded, loaded_files, parse_workers, read_and_parse


@dataclass
class FileReport:
    path: str
    status: str  # added | changed | unchanged | removed | failed | skipped
    chunks: int = 0
    pages: int = 0
    reason: str = ""  # why it failed or was skipped
    warning: str = ""

    def line(self) -> str:
        detail = self.reason or self.warning
        return f"{self.status:>9}  {_printable(self.path)}" + (f": {_printable(detail)}" if detail else "")


def _printable(name: str) -> str:
    """A file name on one line: a newline or other control character in it (legal on
    POSIX) is shown escaped, so it cannot split the report or forge a line."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in name)


@dataclass
class IngestSummary:
    index: str
    files: int = 0  # documents now in the index
    pages: int = 0
    chunks: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    skipped: int = 0
    chunks_embedded: int = 0  # by this run (not counting resumed ones)
    files_resumed: int = 0  # files whose embedding an interrupted run had done (rag.ingest.checkpoint)
    chunks_resumed: int = 0
    texts_embedded: int = 0  # chunks plus their sentence windows
    terms_embedded: int = 0  # new corpus terms (rag/terms.py)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    chunks_per_s: float = 0.0  # embedded chunks per second of the whole run
    embed_model: str = ""
    index_type: str = ""
    version: str = ""
    reports: list[FileReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the run, not one file

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def line(self) -> str:
        return (
            f"{self.files} files, {self.pages} pages, {self.chunks} chunks in {self.seconds:.1f} s "
            f"({self.chunks_embedded} embedded, "
            + (f"{self.chunks_resumed} resumed, " if self.files_resumed else "")
            + f"{self.chunks_per_s:.1f} chunks/s); "
            f"added {self.added}, changed {self.changed}, unchanged {self.unchanged}, removed {self.removed}, "
            f"failed {self.failed}, skipped {self.skipped} -> {self.index}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def discover(paths: Iterable[str | os.PathLike], include: list[str] | None = None,
             exclude: list[str] | None = None, follow_links: bool = False,
             ) -> tuple[list[Path], list[Path], list[FileReport]]:
    """(files to load, folders walked, reports for paths that cannot be used).

    A symbolic link found in a walked folder is followed only when it stays inside
    that folder: a link to a file elsewhere (``/etc/passwd``, a home folder) would make
    its content answerable to whoever asks. ``follow_links`` takes them too.
    Folders reached through links are not walked (no loops, no escapes)."""
    files: list[Path] = []
    roots: list[Path] = []
    reports: list[FileReport] = []
    include = include or []
    exclude = exclude or []

    def wanted(rel: str) -> bool:
        if include and not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(Path(rel).name, pat) for pat in include):
            return False
        return not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(Path(rel).name, pat) for pat in exclude)

    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            reports.append(FileReport(str(path), "failed", reason="does not exist: check the path"))
            continue
        path = path.resolve()
        if path.is_file():
            files.append(path)
            continue
        roots.append(path)
        for found in sorted(path.rglob("*")):
            rel = found.relative_to(path)
            if _hidden(rel):
                continue
            if found.is_dir():
                if found.is_symlink() and wanted(rel.as_posix()):
                    reports.append(FileReport(str(found), "skipped", reason=(
                        f"a link to the folder {found.resolve()}: links to folders are not walked")))
                continue
            if not wanted(rel.as_posix()):
                continue
            if found.is_symlink() and not follow_links:
                target = found.resolve()
                if not target.is_relative_to(path):
                    reports.append(FileReport(str(found), "skipped", reason=(
                        f"a link to {target}, outside {path}: not followed (--follow-links takes it)")))
                    continue
            if found.exists() and not found.is_file():  # a FIFO would block the ingest, a device never end
                reports.append(FileReport(str(found), "skipped", reason=NOT_REGULAR))
                continue
            if found.suffix.lower() not in LOADERS:
                reports.append(FileReport(str(found), "skipped",
                                          reason=f"unsupported format '{found.suffix or '(none)'}' "
                                                 f"(supported: {' '.join(sorted(LOADERS))})"))
                continue
            files.append(found)
    unique = list(dict.fromkeys(files))
    return unique, roots, reports


class _EmbeddingWorker:
    """Embeds chunks with their sentence windows, and corpus terms not seen before, on
    one background thread while the main thread parses the next files and extracts
    their terms (pypdf and jieba are pure Python; the encoder spends its time in
    numpy, which releases the GIL).

    Whatever is queued when the thread gets to it is embedded in micro-batches of
    ``MICRO_BATCH_CHUNKS`` chunks per forward thread of the embedder, in queue order
    and across file boundaries (a folder of one-chunk notes still gets full
    batches). After each micro-batch
    ``on_progress(chunks)`` is called, so a progress bar moves per chunk rather than
    per file, and every file whose last chunk was in it is finished: its future is
    set and, once its terms are embedded too, its ``then`` callback (a checkpoint,
    see rag.ingest.checkpoint) runs. The fast USE forward works in batches of 4096
    tokens whatever the call size and spreads them over its threads; a call's last
    batches leave threads idle, so a call needs enough of them per thread. With 2
    threads, the corpus' 285 chunks embedded in calls of 128 took 3.38 s (best of 5),
    in one call 3.35 s, in calls of 64 3.72 s: 64 chunks (~10 of its batches) per
    thread. Only this thread touches ``term_vectors`` until ``close``.
    """

    MAX_BATCH_CHUNKS = 2048  # taken from the queue at once: memory stays flat on big folders
    MICRO_BATCH_CHUNKS = 64  # chunks per encode call and forward thread: how often progress moves

    def __init__(self, embedder, window_chars: int, term_vectors: dict[str, np.ndarray],
                 on_progress: Callable[[int], None] | None = None):
        import queue
        import threading

        self.embedder = embedder
        self.window_chars = window_chars
        self.term_vectors = term_vectors
        self.on_progress = on_progress
        self.micro_batch = self.MICRO_BATCH_CHUNKS * max(1, int(getattr(embedder, "workers", 1) or 1))
        self.terms_embedded = 0
        self.error: BaseException | None = None  # a failed terms-only batch, raised by the ingest
        self._closed = False
        self._cancelled = False
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="embed", daemon=True)
        self._thread.start()

    def submit(self, chunks: list[Chunk]):
        """A future of [(vector, window vectors)] for ``chunks``."""
        from concurrent.futures import Future

        future: Future = Future()
        self._queue.put(_ChunkJob(chunks, future))
        return future

    def add_terms(self, terms, then: Callable[[], None] | None = None) -> None:
        """Embed whichever of ``terms`` has no vector yet; then call ``then()`` (on this
        worker's thread). Terms queued after a file's chunks are embedded once those
        chunks are: ``then`` sees the file's vectors and its terms' vectors done."""
        self._queue.put(_TermsJob(list(terms), then))

    def close(self, cancel: bool = False, wait: bool | None = None) -> None:
        """Finish what is queued (``cancel``: stop after the micro-batch being embedded);
        ``wait`` (default: unless cancelling) for the thread to end."""
        if not self._closed:
            self._closed = True
            if cancel:
                self._cancelled = True  # stops at the next micro-batch
                while not self._queue.empty():
                    item = self._queue.get_nowait()
                    if isinstance(item, _ChunkJob):
                        item.future.cancel()
            self._queue.put(None)
        if wait if wait is not None else not cancel:
            self._thread.join()

    def _run(self) -> None:
        import queue

        stop = False
        while not stop:
            batch = [self._queue.get()]
            while sum(len(item.chunks) for item in batch if isinstance(item, _ChunkJob)) < self.MAX_BATCH_CHUNKS:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            items = [item for item in batch if isinstance(item, _TermsJob)
                     or (isinstance(item, _ChunkJob) and item.future.set_running_or_notify_cancel())]
            try:
                self._embed(items)
            except BaseException as exc:  # handed to the main thread through the futures
                for item in items:
                    if isinstance(item, _ChunkJob) and not item.future.done():
                        item.future.set_exception(exc)
                self.error = exc

    def _embed(self, items: list) -> None:
        """Embed a batch of queue items in micro-batches, finishing files as their last chunk is done."""
        jobs = [item for item in items if isinstance(item, _ChunkJob)]
        # a terms item waits for the chunk jobs queued before it (its file's chunks)
        waits_for: list[tuple[int, _TermsJob]] = []
        seen_jobs = 0
        for item in items:
            if isinstance(item, _ChunkJob):
                seen_jobs += 1
            else:
                waits_for.append((seen_jobs, item))
        owner = [(j, i) for j, job in enumerate(jobs) for i in range(len(job.chunks))]
        chunks = [chunk for job in jobs for chunk in job.chunks]
        results: list[list] = [[None] * len(job.chunks) for job in jobs]
        done_jobs = 0
        while done_jobs < len(jobs) and not jobs[done_jobs].chunks:  # nothing to embed (never queued today)
            jobs[done_jobs].future.set_result([])
            done_jobs += 1
        self._finish_terms(waits_for, done_jobs)
        for start in range(0, len(chunks), self.micro_batch):
            if self._cancelled:
                return
            part = chunks[start:start + self.micro_batch]
            windows = [sentence_windows(chunk.text, self.window_chars) for chunk in part]
            # one call for chunks and their windows: USE reuses a chunk's per-token work
            # for the inside of its windows (rag/embedders/use_fast.py)
            vectors, window_vectors = self.embedder.embed_passages_with_windows(
                [chunk.embedding_text() for chunk in part], windows)
            for (j, i), vector, windows_of in zip(owner[start:start + len(part)], vectors, window_vectors):
                results[j][i] = (vector, windows_of)
            # before the futures: the main thread closes the bar once they are all done, and
            # an update after that was lost (the bar stopped at 10/20 under load)
            if self.on_progress is not None:
                self.on_progress(len(part))
            last = owner[start + len(part) - 1]
            finished = last[0] + (1 if last[1] == len(jobs[last[0]].chunks) - 1 else 0)
            for j in range(done_jobs, finished):
                jobs[j].future.set_result(results[j])
                results[j] = None
            done_jobs = max(done_jobs, finished)
            while done_jobs < len(jobs) and not jobs[done_jobs].chunks:
                jobs[done_jobs].future.set_result([])
                done_jobs += 1
            self._finish_terms(waits_for, done_jobs)
        self._finish_terms(waits_for, len(jobs))

    def _finish_terms(self, waits_for: list, done_jobs: int) -> None:
        """Embed the terms of the items whose chunks are all done, then run their callbacks."""
        ready = [item for after, item in waits_for if after <= done_jobs and not item.done]
        if not ready or self._cancelled:
            return
        new_terms = [t for t in dict.fromkeys(t for item in ready for t in item.terms) if t not in self.term_vectors]
        if new_terms:
            self.term_vectors.update(zip(new_terms, self.embedder.embed_passages(new_terms)))
            self.terms_embedded += len(new_terms)
        for item in ready:
            item.done = True
            if item.then is not None:
                item.then()


@dataclass
class _ChunkJob:
    chunks: list[Chunk]
    future: object  # concurrent.futures.Future of [(vector, window vectors)]


@dataclass
class _TermsJob:
    terms: list[str]
    then: Callable[[], None] | None = None
    done: bool = False


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during an ingest. Still a KeyboardInterrupt; its message is the one line
    to show: how many files are embedded and kept for the next run (rag.ingest.checkpoint)."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


class _ChunkEstimate:
    """The Embedding bar's total while files are still being read: the chunks queued
    so far plus, for the files still to read, their bytes times the chunks per byte
    seen so far (PDFs and text apart: a PDF byte holds far less text). Files in the
    live version are assumed unchanged (most are, on a re-run). Exact once all are read."""

    def __init__(self):
        self.queued = 0  # chunks handed to the embedding worker
        self._sizes: dict[str, tuple[bool, int]] = {}  # files still to read: (is a PDF, bytes)
        self._left = {True: 0, False: 0}  # their bytes, by is-a-PDF
        self._bytes = {True: 0, False: 0}  # of files read and chunked, by is-a-PDF
        self._chunks = {True: 0, False: 0}

    def plan(self, files: list[Path], live: dict) -> None:
        for path in files:
            if str(path) in live:
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            pdf = path.suffix.lower() == ".pdf"
            self._sizes[str(path)] = (pdf, size)
            self._left[pdf] += size

    def loaded(self, path: Path, chunks: int) -> None:
        """File ``path`` was read; ``chunks`` of it queued (0: unchanged or failed)."""
        pdf, size = self._sizes.pop(str(path), (None, 0))
        if pdf is None:
            return
        self._left[pdf] -= size
        if chunks:
            self._bytes[pdf] += size
            self._chunks[pdf] += chunks

    # Before the first file of a kind is read, its chunks per byte are guessed from the
    # other kind's: a PDF byte holds about a quarter of a text byte's chunks (0.24 on
    # the shared corpus, where the same five documents exist as .txt and .pdf).
    PDF_PER_TEXT = 0.25

    def total(self) -> int:
        rate = {pdf: self._chunks[pdf] / self._bytes[pdf] if self._bytes[pdf] else None for pdf in (True, False)}
        if rate[True] is None and rate[False] is not None:
            rate[True] = rate[False] * self.PDF_PER_TEXT
        if rate[False] is None and rate[True] is not None:
            rate[False] = rate[True] / self.PDF_PER_TEXT
        guess = sum(left * (rate[pdf] or 0.0) for pdf, left in self._left.items())
        return self.queued + int(guess)


# Files from this size on get their own "Loading" line in a log (rag/progress.py).
LOG_FILE_BYTES = 256 * 1024


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _progress(iterable, total: int, desc: str, enabled: bool, unit: str):
    if not enabled:
        return iterable
    from rag.progress import progress_bar

    return progress_bar(iterable, total=total, desc=desc, unit=unit, leave=False)


class IngestRun:
    """One ingest into one index, run while holding the index's lock.

    ``kept`` is the new version being assembled, in chunk-row order: each entry is
    (chunk, (vector, window vectors)) for a chunk reused from the live version, or
    (chunk, None) for a new one whose vectors the embedding worker is computing
    (``pending`` holds its futures). Steps: :meth:`load_file` for each file found,
    :meth:`keep_unseen` for files ingested before and not named this time, then
    :meth:`publish` writes the new version when anything changed.
    """

    def __init__(self, index_path: Path, settings: ChunkerSettings, *, embed_model: str | None = None,
                 index_type: str = "auto", rebuild: bool = False, prune_missing: bool = True,
                 progress: bool = True, on_file: Callable[[FileReport], None] | None = None,
                 started: float | None = None, limits: Limits | None = None, follow_links: bool = False,
                 parse_workers: int | None = None, resume: bool = True,
                 on_resume: Callable[[str], None] | None = None):
        from rag.errors import EmbedderMismatchError
        from rag.store import read_previous

        self.index_path = index_path
        self.settings = settings
        self.index_type = index_type
        self.prune_missing = prune_missing
        self.progress = progress
        self.on_file = on_file
        self.started = time.perf_counter() if started is None else started
        self.limits = limits or Limits.from_config()
        self.follow_links = follow_links
        self.parse_workers = parse_workers  # None: by files and cores (rag.ingest.parallel); 0: none

        previous = None if rebuild else read_previous(index_path)
        self.model_name = (config.embed_model(embed_model) if (embed_model or previous is None)
                           else previous.embed_model)
        if previous is not None and previous.embed_model != self.model_name:
            raise EmbedderMismatchError(str(index_path), previous.embed_model, self.model_name)
        # Term vectors depend on the words only, whatever the chunking: always reusable.
        self.term_vectors: dict[str, np.ndarray] = previous.term_vectors if previous else {}
        # the terms the live version has: a checkpoint stores the vectors of the others
        self.live_terms = frozenset(self.term_vectors)
        if previous is not None and previous.chunker != settings.describe():
            previous = None  # other chunk sizes: every file must be chunked and embedded again
        self.previous = previous
        self.old_files: dict[str, dict] = previous.files if previous else {}
        self.rows_by_file: dict[str, list[int]] = previous.rows_by_file() if previous else {}

        self.summary = IngestSummary(index=str(index_path), embed_model=self.model_name)
        wanted = os.environ.get("RAG_EMBED_MODEL", "").strip()
        if not embed_model and previous is not None and wanted and wanted != self.model_name:
            # The index keeps its model (an environment left set must not break it), but say so.
            self.summary.warnings.append(
                f"RAG_EMBED_MODEL={wanted} is not used: {index_path} was built with '{self.model_name}'; "
                f"add --rebuild to embed everything again with '{wanted}'")
        self.kept: list[tuple[Chunk, tuple[np.ndarray, np.ndarray] | None]] = []
        self.files_meta: dict[str, dict] = {}
        self.seen: set[str] = set()
        self.pending: list[tuple[int, int, object]] = []  # (first kept row, count, future)
        self.terms_of: dict[int, list[str]] = {}  # terms of each new chunk, by kept row
        self.embedder = self.splitter = None
        self.worker: _EmbeddingWorker | None = None

        # Resuming an interrupted ingest (rag.ingest.checkpoint): a FAISS folder only
        # (a Milvus index switches file by file and has no folder of its own here).
        self.on_resume = on_resume
        self.checkpoints: Checkpoints | None = None
        if isinstance(index_path, Path):
            self.checkpoints = Checkpoints(index_path, settings_key(self.model_name, settings.describe(), self.limits))
            if not resume:
                self.checkpoints.clear()  # start over: what an interrupted run left is dropped
        self._saver = None  # the thread that writes checkpoints, started with the embedding worker
        self._saving = True
        self._saved = 0  # files checkpointed by this run
        self._embed_bar = None
        self._bar = None  # the Loading bar
        self._estimate = _ChunkEstimate()
        self._resumed_embedder: dict = {}

    # ----------------------------------------------------------------- the steps

    def run(self, paths, include: list[str] | None = None, exclude: list[str] | None = None) -> IngestSummary:
        files, roots, early = discover(paths, include, exclude, self.follow_links)
        for item in early:  # paths that do not exist (failed), unsupported formats (skipped)
            self._count(item.status)
            self.report(item)
        self._files = len(files)
        try:
            self._load_all(files)
            self.keep_unseen(roots)
            summary = self.publish()
        except KeyboardInterrupt:  # Ctrl-C answers within a micro-batch, see _interrupted
            raise self._interrupted() from None
        except BaseException:
            self._close_worker(cancel=True, wait=True)
            raise
        finally:
            self._close_bar()
        self._close_worker()  # done already when anything was embedded (_collect_vectors)
        return summary

    def _load_all(self, files: list[Path]) -> None:
        loads = None
        try:
            # Each file's chunks are embedded on the worker thread while this thread
            # parses the next files (_EmbeddingWorker).
            # Files are parsed in worker processes a few files ahead (rag.ingest.parallel):
            # PDF parsing then runs beside embedding instead of taking turns with it.
            ordered = _quick_to_parse_first(files)
            resumed = self._resumable(ordered)
            todo = [path for path in ordered if str(path) not in resumed]
            previous_hashes = {key: meta["hash"] for key, meta in self.old_files.items()}
            loads = loaded_files(todo, previous_hashes, self.limits, parse_workers(len(todo), self.parse_workers))
            self._estimate.plan(todo, self.old_files)
            bar = _progress(ordered, len(files), "Loading", self.progress, "file")
            self._bar = bar if hasattr(bar, "set_postfix_str") else None
            for path in bar:
                if str(path) in resumed:
                    self.resume_file(path, resumed.pop(str(path)))
                    continue
                if self._bar is not None:  # which file, and how big: a slow one shows why
                    # Drawn at once on a terminal; a log gets a line for a file big enough to take
                    # a while, the others ride along with the bar's next line.
                    bar.set_postfix_str(_printable(f"{path.name[:40]} ({_size_mb(path)})"),
                                        refresh=on_terminal() or _file_size(path) >= LOG_FILE_BYTES)
                loaded_path, loaded = next(loads)
                assert loaded_path == path  # loaded_files yields in the order given
                queued = self._estimate.queued
                self.load_file(path, loaded)
                self._estimate.loaded(path, self._estimate.queued - queued)
                self._update_total()
            if self._bar is not None:
                self._bar.close()
        except BaseException:
            if getattr(self, "_bar", None) is not None:
                self._bar.close()
            self._close_worker(cancel=True)
            raise
        finally:
            if loads is not None:
                loads.close()  # shuts the parse pool down, also on Ctrl-C

    def _resumable(self, files: list[Path]) -> dict[str, "Checkpoint"]:
        """The files an interrupted run of this ingest already embedded, by path: their
        checkpoint was made with these settings from the bytes the file has now."""
        from rag.text import sha256

        from .loaders import read_limited

        cps = self.checkpoints
        if cps is None or not cps.any():
            return {}
        cps.remove_partial()
        dim = self.previous.dim if self.previous is not None else None
        found = {}
        for path in files:
            key = str(path)
            if not cps.has(key):
                continue
            try:
                file_hash = sha256(read_limited(path, self.limits))
            except (DocumentError, OSError):
                continue  # it fails the same way below, with its reason
            if key in self.old_files and self.old_files[key]["hash"] == file_hash:
                continue  # unchanged since the live version: kept from there
            checkpoint = cps.load(key, file_hash)
            if checkpoint is None or checkpoint.embedder.get("name") != self.model_name:
                continue
            dim = dim or checkpoint.vectors.shape[1]
            if checkpoint.vectors.shape[1] != dim:
                continue
            found[key] = checkpoint
        if found:
            for checkpoint in found.values():  # before the worker starts: it owns term_vectors then
                self.term_vectors.update(checkpoint.term_vectors)
            if self.on_resume is not None:
                self.on_resume(f"resuming: {len(found)} of {len(files)} files already embedded")
        return found

    def load_file(self, path: Path, loaded: Loaded | None = None) -> None:
        """Hash, load and chunk one file; reuse its previous chunks when unchanged, else
        queue the new chunks for embedding. ``loaded``: the file already hashed and
        parsed (by a parse worker, rag.ingest.parallel)."""
        key = str(path)
        self.seen.add(key)
        previous = self.old_files.get(key)
        if loaded is None:
            loaded = read_and_parse(path, previous["hash"] if previous else None, self.limits)
        file_hash, records = loaded.file_hash, loaded.records
        if file_hash is not None and previous and previous["hash"] == file_hash:
            self._keep_previous(key)
            self.summary.unchanged += 1
            self.report(FileReport(key, "unchanged", previous["chunks"], previous.get("pages", 0)))
            return
        try:
            if loaded.error:
                raise DocumentError(key, loaded.error)
            self._start_worker()
            chars = sum(len(record.text) for record in records)
            if getattr(self, "_bar", None) is not None and chars > 250_000:  # seconds of chunking, or minutes
                self._bar.set_postfix_str(_printable(f"{path.name[:40]}: chunking {chars:,} characters"),
                                          refresh=True)
            try:
                chunks = chunk_records(records, path=key, file_hash=file_hash, splitter=self.splitter)
            except Exception as exc:  # one file's odd text must not end the ingest: it fails alone
                raise DocumentError(key, f"could not be split into chunks ({type(exc).__name__}: "
                                         f"{str(exc)[:120]})") from None
            if not chunks:
                raise DocumentError(key, "no text left after cleaning: nothing to index")
        except DocumentError as exc:
            self.summary.failed += 1
            if previous:  # keep what we had: a broken copy must not erase good data
                self._keep_previous(key)
                self.report(FileReport(key, "failed", reason=exc.reason + " (kept its previous version in the index)"))
            else:
                self.report(FileReport(key, "failed", reason=exc.reason))
            return
        pages = sum(1 for r in records if r.page is not None)
        warning = next((r.warning for r in records if r.warning), None) or ""
        status = "changed" if previous else "added"
        self._count(status)
        first = len(self.kept)
        future = self.worker.submit(chunks)
        self.pending.append((first, len(chunks), future))
        self._estimate.queued += len(chunks)
        # terms are extracted here, while the worker embeds this file's chunks
        file_terms = [extract_terms(chunk.embedding_text()) for chunk in chunks]
        self.terms_of.update(zip(range(first, first + len(chunks)), file_terms))
        self.kept.extend((chunk, None) for chunk in chunks)
        meta = {"hash": file_hash, "chunks": len(chunks), "pages": pages,
                "source": path.name, "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.files_meta[key] = meta
        # once the worker has embedded the file's chunks and terms, it is saved for a resume
        self.worker.add_terms((t for terms in file_terms for t in terms),
                              then=lambda: self._checkpoint(key, meta, warning, chunks, file_terms, future))
        self.report(FileReport(key, status, len(chunks), pages, warning=warning))

    def resume_file(self, path: Path, checkpoint: "Checkpoint") -> None:
        """Take file ``path``'s chunks and vectors from what an interrupted run embedded."""
        key = str(path)
        self.seen.add(key)
        status = "changed" if key in self.old_files else "added"
        self._count(status)
        first = len(self.kept)
        self.kept.extend(zip(checkpoint.chunks, zip(checkpoint.vectors, checkpoint.windows)))
        self.terms_of.update(zip(range(first, first + len(checkpoint.chunks)), checkpoint.terms))
        self.files_meta[key] = checkpoint.meta
        self._resumed_embedder = checkpoint.embedder
        self.summary.files_resumed += 1
        self.summary.chunks_resumed += len(checkpoint.chunks)
        self.report(FileReport(key, status, len(checkpoint.chunks), checkpoint.meta.get("pages", 0),
                               warning=checkpoint.warning))

    def keep_unseen(self, roots: list[Path]) -> None:
        """Files ingested before and not found this time: removed when they are gone
        from a walked folder (``prune_missing``), otherwise kept as they were."""
        for key, meta in self.old_files.items():
            if key in self.seen or key in self.files_meta:
                continue
            under_walked_root = any(Path(key).is_relative_to(root) for root in roots)
            if self.prune_missing and under_walked_root and not Path(key).exists():
                self.summary.removed += 1
                self.report(FileReport(key, "removed", meta["chunks"], meta.get("pages", 0)))
                continue
            self._keep_previous(key)

    def publish(self) -> IngestSummary:
        """Collect the embeddings, write the new version (when anything changed), fill the summary."""
        from rag.store import read_manifest, write_version

        summary = self.summary
        changed = summary.added + summary.changed + summary.removed
        if self.previous is None and not self.kept:
            pass  # a first ingest where every file failed: no index to write, none half-made
        elif self.previous is not None and changed == 0 and not self.previous.damaged:
            summary.version = self.previous.version
            summary.index_type = self.previous.manifest.get("index_type", "")
        else:
            if self.previous is not None and self.previous.damaged:
                # rebuilt below from the stored vectors: say so, an unchanged folder would be silent
                self.report(FileReport(str(self.index_path), "repaired",
                                       reason=f"{self.previous.damaged}: rebuilt in a new version"))
            embed_started = time.perf_counter()
            vectors, window_blocks = self._collect_vectors()
            terms = self._term_index(vectors.shape[1])
            if self.embedder is not None:
                self.embedder.release_memory()
            summary.embed_seconds = time.perf_counter() - embed_started
            self._flush_checkpoints()  # all embedding work is on disk before the (long) write
            window_owner = window_vectors = None
            if self.settings.window_chars:
                window_owner = np.concatenate(
                    [np.full(len(block), row, dtype=np.int32) for row, block in enumerate(window_blocks)] or
                    [np.zeros(0, dtype=np.int32)])
                window_vectors = (np.concatenate(window_blocks) if window_blocks
                                  else np.zeros((0, vectors.shape[1]), np.float32))
            summary.version = write_version(self.index_path, [c for c, _ in self.kept], vectors, self._manifest(),
                                            self.index_type, window_vectors=window_vectors,
                                            window_owner=window_owner, terms=terms)
            summary.index_type = read_manifest(self.index_path)["index_type"]
        if self.checkpoints is not None:  # these files are live now (or failed): their checkpoints are done
            self._flush_checkpoints()
            self.checkpoints.finish(self.seen)

        summary.files = len(self.files_meta)
        summary.pages = sum(m.get("pages", 0) for m in self.files_meta.values())
        summary.chunks = len(self.kept)
        summary.seconds = time.perf_counter() - self.started
        summary.chunks_per_s = summary.chunks_embedded / summary.seconds if summary.seconds else 0.0
        return summary

    # ----------------------------------------------------------------- helpers

    def report(self, item: FileReport) -> None:
        self.summary.reports.append(item)
        if self.on_file:
            self.on_file(item)

    def _count(self, status: str) -> None:
        setattr(self.summary, status, getattr(self.summary, status) + 1)

    def _keep_previous(self, key: str) -> None:
        """Carry file ``key``'s chunks and vectors over from the live version."""
        for row in self.rows_by_file.get(key, []):
            self.kept.append((self.previous.chunks[row], self.previous.stored(row)))
        self.files_meta[key] = self.old_files[key]

    def _start_worker(self) -> None:
        """Load the embedder on the first file that needs it (an ingest of unchanged files never does)."""
        if self.worker is not None:
            return
        from rag.embedders import get_embedder

        self.embedder = get_embedder(self.model_name)
        self.splitter = make_splitter(self.settings, self.embedder.count_tokens, self.embedder.max_tokens)
        if self.progress:
            # chunks embedded, moved by the worker after each micro-batch; its total grows
            # as files are chunked, with an estimate for those still to read (_ChunkEstimate)
            self._embed_bar = _progress(None, 0, "Embedding", True, "chunk")
        if self.checkpoints is not None:
            from concurrent.futures import ThreadPoolExecutor

            # its own thread: writing a file's checkpoint never holds up the encoder
            self._saver = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
        self.worker = _EmbeddingWorker(self.embedder, self.settings.window_chars, self.term_vectors,
                                       on_progress=self._embed_bar.update if self._embed_bar is not None else None)

    def _close_worker(self, cancel: bool = False, wait: bool | None = None) -> None:
        if self.worker is not None:
            self.worker.close(cancel=cancel, wait=wait)

    def _update_total(self) -> None:
        if self._embed_bar is not None:
            self._embed_bar.total = self._estimate.total()
            if on_terminal():  # a log gets the new total with the bar's next line
                self._embed_bar.refresh()

    def _close_bar(self) -> None:
        if self._embed_bar is not None:
            bar, self._embed_bar = self._embed_bar, None
            # tqdm draws at most every 0.1 s: the last updates of a fast run would never
            # be shown before this bar (below the Loading one) clears its line
            bar.refresh()
            bar.close()
            if getattr(bar, "pos", 0) and getattr(bar, "fp", None) is not None:
                # a bar below another one clears its line and moves the cursor back up
                # without going back to the first column: what is printed next (the
                # summary, the Ctrl-C line) would start mid-line
                bar.fp.write("\r")
                bar.fp.flush()

    # ----------------------------------------------------------------- resuming

    def _checkpoint(self, key: str, meta: dict, warning: str, chunks: list[Chunk], terms: list[list[str]],
                    future) -> None:
        """Called on the worker's thread once file ``key`` is embedded: hand its
        checkpoint to the saver thread."""
        if not self._saving or self._saver is None or not future.done() or future.cancelled():
            return
        if future.exception() is not None:
            return
        describe = self.embedder.describe()

        def save() -> None:
            if not self._saving:
                return
            vectors_windows = future.result()
            file_terms = dict.fromkeys(t for ts in terms for t in ts if t not in self.live_terms)
            try:
                self.checkpoints.save(Checkpoint(
                    path=key, file_hash=meta["hash"], meta=meta, chunks=chunks,
                    vectors=np.stack([v for v, _ in vectors_windows]),
                    windows=[w for _, w in vectors_windows], terms=terms,
                    term_vectors={t: self.term_vectors[t] for t in file_terms if t in self.term_vectors},
                    warning=warning, embedder=describe))
            except OSError:
                # a full disk or a read-only folder: the ingest goes on without checkpoints
                # (it needs the same disk for the new version and will say so there)
                self._saving = False
                return
            self._saved += 1

        try:
            self._saver.submit(save)
        except RuntimeError:  # the saver was shut down (interrupted): nothing more is saved
            pass

    def _flush_checkpoints(self) -> None:
        """Wait for the checkpoints handed to the saver so far to be written."""
        if self._saver is not None:
            self._saver.shutdown(wait=True)

    def _interrupted(self) -> "IngestInterrupted":
        """Ctrl-C: keep what is embedded, say how to go on."""
        self._close_bar()
        # The worker stops after the micro-batch it is embedding (a second or two); an
        # interpreter that exits while it is still inside the encoder aborts
        # ("terminate called without an active exception") instead of exiting 130.
        self._close_worker(cancel=True, wait=True)
        try:
            self._flush_checkpoints()  # the files already embedded are written (milliseconds each)
        finally:
            self._saving = False
        if self.checkpoints is None:
            # Milvus: files already switched in stay; the others were not touched
            return IngestInterrupted("interrupted: run the same command again to finish "
                                     "(files already written are not embedded again)")
        kept = self.summary.files_resumed + self._saved
        return IngestInterrupted(
            f"interrupted: {kept} of {getattr(self, '_files', kept)} files are embedded and kept; "
            f"run the same command again to resume")

    def _dim(self) -> int:
        if self.embedder is not None:
            return self.embedder.dim
        if self.previous is not None:
            return self.previous.dim
        # every file came from checkpoints: the embedder was never needed
        return next((stored[0].shape[0] for _, stored in self.kept if stored is not None), 0)

    def _collect_vectors(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Every kept chunk's vector and window vectors: reused ones, then the worker's results."""
        dim = self._dim()
        vectors = np.zeros((len(self.kept), dim), dtype=np.float32)
        window_blocks: list[np.ndarray] = [np.zeros((0, dim), dtype=np.float32)] * len(self.kept)
        for i, (_, stored) in enumerate(self.kept):
            if stored is not None:
                vectors[i], window_blocks[i] = stored
        queued = sum(count for _, count, _ in self.pending)
        self._update_total()  # every file is chunked: the total is exact now
        for first, count, future in self.pending:  # embedded on the worker thread during loading
            for row, (vector, windows) in enumerate(future.result(), start=first):
                vectors[row], window_blocks[row] = vector, windows
        self._close_bar()
        if self.worker is not None:
            self.worker.close()  # its last term vectors are in
            if self.worker.error is not None:
                raise self.worker.error
        self.summary.chunks_embedded = queued
        self.summary.texts_embedded = queued + sum(len(window_blocks[r]) for first, count, _ in self.pending
                                                   for r in range(first, first + count))
        self.summary.terms_embedded = self.worker.terms_embedded if self.worker else 0
        return vectors, window_blocks

    def _term_index(self, dim: int):
        """The corpus terms of every kept chunk with their vectors (rag.terms)."""
        from rag.terms import TermIndex

        chunk_terms = [self.terms_of[row] if row in self.terms_of else extract_terms(chunk.embedding_text())
                       for row, (chunk, _) in enumerate(self.kept)]
        missing = list(dict.fromkeys(t for terms in chunk_terms for t in terms if t not in self.term_vectors))
        if missing:  # chunks kept from an index written before term expansion existed
            if self.embedder is None:
                from rag.embedders import get_embedder

                self.embedder = get_embedder(self.model_name)
            self.term_vectors.update(zip(missing, self.embedder.embed_passages(missing)))
            self.summary.terms_embedded += len(missing)
        return TermIndex.build(chunk_terms, self.term_vectors, dim, self.index_type)

    def _manifest(self) -> dict:
        previous = self.previous.manifest if self.previous is not None else None
        if self.embedder is not None:
            embedder = self.embedder.describe()
        else:  # nothing embedded in this run: the live version's, or the checkpoints' (same model)
            embedder = previous["embedder"] if previous else self._resumed_embedder
        return {
            "embedder": embedder,
            "chunker": self.settings.describe(),
            "created_at": previous.get("created_at") if previous else time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": self.files_meta,
        }


def _size_mb(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        return "?"


def _quick_to_parse_first(files: list[Path]) -> list[Path]:
    """The embedder idles until the first file is parsed: start with the cheapest
    (text formats, then PDFs by size), so that embedding starts at once and the
    slow parses hide behind it."""
    def cost(path: Path) -> tuple[int, int]:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        return (path.suffix.lower() == ".pdf", size)

    return sorted(files, key=cost)
