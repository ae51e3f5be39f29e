"""Ingest jobs: uploads and deletions are ingested in the background, one job at a time
per collection, while questions keep being answered from the live index version.

``rag.ingest.pipeline.ingest`` writes a new version beside the live one and makes it
live with an atomic rename, so a job that dies half-way (``kill -9``) leaves the
previous version serving. Each job's record is a JSON file in the collection's
``jobs/`` folder, rewritten at every step: after a restart, jobs that were queued or
running read ``interrupted`` and the same files can simply be submitted again (saved
uploads are reused when their bytes are identical).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .collections import Collection

ACTIVE = ("queued", "running")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class JobFile:
    name: str  # as uploaded (or the deleted document's file name)
    saved_as: str = ""  # the sanitized name in the uploads folder
    status: str = "queued"  # queued | added | changed | unchanged | removed | failed | skipped
    chunks: int = 0
    pages: int = 0
    error: str = ""


@dataclass
class Job:
    id: str
    collection: str
    kind: str  # upload | delete
    status: str = "queued"  # queued | running | succeeded | partial | failed | interrupted
    files: list[JobFile] = field(default_factory=list)
    progress: dict = field(default_factory=lambda: {"done": 0, "total": 0})
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    error: str = ""
    version: str = ""  # the index version the job made live
    pid: int = field(default_factory=os.getpid)  # the server process running it
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["object"] = "ingest.job"
        return out


class Jobs:
    """Job records (in memory and on disk) and one worker thread per collection."""

    def __init__(self, on_finish: Callable[[Job], None] | None = None):
        self._jobs: dict[str, Job] = {}
        self._paths: dict[str, Path] = {}
        self._queues: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self._on_finish = on_finish

    # -- records --------------------------------------------------------------------
    def _save(self, job: Job, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{job.id}.json"
        temporary = folder / f".{job.id}.tmp"
        temporary.write_text(json.dumps(job.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(temporary, path)
        self._paths[job.id] = path

    def recover(self, collection: Collection) -> int:
        """Mark the jobs a dead process left queued or running as ``interrupted``."""
        count = 0
        if not collection.jobs_dir.is_dir():
            return 0
        for path in collection.jobs_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if data.get("status") in ACTIVE and not _alive(data.get("pid")):
                data["status"] = "interrupted"
                data["error"] = ("the server stopped before this job finished; the collection still answers "
                                 "from its last complete version: submit the files again")
                data["finished_at"] = _now()
                path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
                count += 1
        return count

    def get(self, job_id: str, collections) -> Job | None:
        """A job of this process, else one on disk (another worker process, or before a restart)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        if not job_id.startswith("job-") or not job_id[4:].isalnum():
            return None
        for collection in collections:
            path = collection.jobs_dir / f"{job_id}.json"
            if path.is_file():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return None
                data.pop("object", None)
                data["files"] = [JobFile(**f) for f in data.get("files", [])]
                return Job(**data)
        return None

    def running(self) -> int:
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.status in ACTIVE)

    # -- running --------------------------------------------------------------------
    def submit(self, collection: Collection, kind: str, files: list[JobFile],
               remove: list[str] | None = None) -> Job:
        job = Job(id="job-" + secrets.token_hex(8), collection=collection.name, kind=kind, files=files)
        with self._lock:
            self._jobs[job.id] = job
            self._save(job, collection.jobs_dir)
            worker_queue = self._queues.get(collection.name)
            if worker_queue is None:
                worker_queue = self._queues[collection.name] = queue.Queue()
                threading.Thread(target=self._worker, args=(collection, worker_queue), daemon=True,
                                 name=f"ingest-{collection.name}").start()
        worker_queue.put((job, remove or []))
        return job

    def _worker(self, collection: Collection, worker_queue: queue.Queue) -> None:
        while True:
            job, remove = worker_queue.get()
            try:
                self._run(collection, job, remove)
            except BaseException as exc:  # the worker must outlive any one job
                job.status, job.error = "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
            finally:
                job.finished_at = _now()
                self._save(job, collection.jobs_dir)
                if self._on_finish:
                    self._on_finish(job)

    def _run(self, collection: Collection, job: Job, remove: list[str]) -> None:
        from rag.errors import RagError
        from rag.ingest.pipeline import ingest

        job.status, job.started_at = "running", _now()
        for path in remove:  # deletions: the file goes, then ingest prunes its chunks
            try:
                Path(path).unlink()
            except FileNotFoundError:
                pass
        collection.uploads_dir.mkdir(parents=True, exist_ok=True)
        total = sum(1 for p in collection.uploads_dir.rglob("*") if p.is_file() and not _hidden(p, collection))
        job.progress = {"done": 0, "total": total}
        self._save(job, collection.jobs_dir)
        by_saved = {f.saved_as: f for f in job.files if f.saved_as}
        last_saved = [time.monotonic()]

        def on_file(report) -> None:
            job.progress["done"] = min(job.progress["done"] + 1, max(total, job.progress["done"] + 1))
            name = Path(report.path).name
            entry = by_saved.get(name) if _inside(collection.uploads_dir, report.path) else None
            if entry is not None:
                entry.status, entry.chunks, entry.pages = report.status, report.chunks, report.pages
                entry.error = report.reason
            if time.monotonic() - last_saved[0] > 0.5:  # progress on disk for other workers, not per file
                self._save(job, collection.jobs_dir)
                last_saved[0] = time.monotonic()

        try:
            summary = ingest([collection.uploads_dir], collection.index_path, embed_model=collection.qa.embed_model,
                             prune_missing=True, progress=False, on_file=on_file)
        except RagError as exc:
            job.status, job.error = "failed", str(exc)
            for entry in job.files:
                if entry.status == "queued":
                    entry.status, entry.error = "failed", str(exc)
            return
        job.version = summary.version
        job.summary = {k: getattr(summary, k) for k in ("files", "pages", "chunks", "added", "changed", "unchanged",
                                                        "removed", "failed", "skipped", "seconds")}
        for entry in job.files:
            if entry.status == "queued":  # a deleted file, or one ingest did not report
                entry.status = "removed" if job.kind == "delete" else "unchanged"
        failed = [f for f in job.files if f.status in ("failed", "skipped")]
        for entry in failed:
            # A new upload that could not be read never reached the index: it goes, so that later
            # jobs do not trip over it again; the job keeps the reason, the client can fix and resend.
            if job.kind == "upload" and entry.saved_as:
                (collection.uploads_dir / entry.saved_as).unlink(missing_ok=True)
        job.status = "succeeded" if not failed else ("failed" if len(failed) == len(job.files) else "partial")
        job.progress["done"] = job.progress["total"]


def _alive(pid) -> bool:
    """Whether another live process (a sibling worker of `rag serve --workers N`) owns the job."""
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hidden(path: Path, collection: Collection) -> bool:
    return any(part.startswith(".") for part in path.relative_to(collection.uploads_dir).parts)


def _inside(folder: Path, path: str) -> bool:
    try:
        Path(path).resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


__all__ = ["Job", "JobFile", "Jobs"]
