"""Files uploaded in the UI: checked, copied into the upload folder under safe names,
then ingested incrementally. No gradio import here: the rules are plain functions.

    outcomes = save_uploads(["/tmp/x/../../etc/passwd.txt"], "uploads/")   # -> uploads/passwd.txt
    result = ingest_uploads(paths, index="idx", upload_dir="uploads/")
    result.markdown()   # one line per file: added / unchanged / why it failed

Rules for a saved file:

* only the base name is kept (``../../etc/passwd`` -> ``passwd``; Windows ``C:\\x\\y.pdf`` -> ``y.pdf``);
* characters other than letters, digits, ``-``, ``_`` and ``.`` become ``_``; no leading dots
  (hidden files are not ingested from folders), at most ``MAX_NAME_LENGTH`` characters;
* never overwritten: a name already taken gets ``-1``, ``-2``, ... unless the bytes are the same
  (then the existing copy is reused and ingest reports it unchanged);
* the final path is checked to lie inside the upload folder;
* a file over the size limit (``DEFAULT_MAX_UPLOAD_MB``, or $RAG_UI_MAX_UPLOAD_MB) or in a format
  ingest cannot read is rejected with a reason; the other files go on.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from rag.config import DEFAULT_MAX_UPLOAD_MB  # noqa: E402,F401  (the limit is declared in rag.config)
MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def supported_suffixes() -> list[str]:
    from rag.ingest.loaders import LOADERS

    return sorted(LOADERS)


def max_upload_bytes(max_mb: float | None = None) -> int:
    """The per-file size limit in bytes: the argument, else $RAG_UI_MAX_UPLOAD_MB, else 50 MB."""
    from rag.config import max_upload_mb

    return int(max_upload_mb(max_mb) * 1024 * 1024)


def human_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


def sanitize_filename(name: str, default: str = "upload") -> str:
    """A safe base name for ``name``: no folders, no traversal, no odd characters, not hidden."""
    name = unicodedata.normalize("NFKC", str(name or ""))
    name = name.replace("\x00", "")
    name = re.split(r"[\\/]", name)[-1]  # basename for POSIX and Windows paths alike
    name = _UNSAFE.sub("_", name)
    name = re.sub(r"_{2,}", "_", name)
    name = name.lstrip("._-")  # no hidden files, no "..", no option-like names
    name = re.sub(r"\.{2,}", ".", name).rstrip(". ")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = suffix.lower()[:16]
    room = MAX_NAME_LENGTH - (len(suffix) + 1 if suffix else 0)
    stem = stem[:room].strip("._-") or default
    return f"{stem}.{suffix}" if suffix else stem


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(folder: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def destination_for(upload_dir: str | os.PathLike, name: str, source: str | os.PathLike | None = None
                    ) -> tuple[Path, bool]:
    """(where to save ``name`` in ``upload_dir``, whether an identical copy is already there).

    A taken name gets a ``-1``, ``-2``, ... suffix; when ``source`` has the same bytes as a file
    already saved under the name (or a suffixed one), that file is returned instead.
    """
    folder = Path(upload_dir)
    safe = sanitize_filename(name)
    stem, dot, suffix = safe.rpartition(".")
    if not dot:
        stem, suffix = safe, ""
    source_hash = _file_hash(Path(source)) if source is not None else None
    for attempt in range(10_000):
        candidate_name = safe if attempt == 0 else (f"{stem}-{attempt}.{suffix}" if suffix else f"{stem}-{attempt}")
        candidate = folder / candidate_name
        if not _inside(folder, candidate):  # cannot happen with a sanitized name; belt and braces
            raise ValueError(f"refusing to write outside {folder}: {candidate_name}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate, False
        if source_hash is not None and candidate.is_file() and not candidate.is_symlink() \
                and candidate.stat().st_size == Path(source).stat().st_size and _file_hash(candidate) == source_hash:
            return candidate, True
    raise ValueError(f"too many files called {safe} in {folder}")


@dataclass
class UploadOutcome:
    """What happened to one uploaded file before ingest."""

    name: str  # the name the user uploaded
    status: str  # saved | duplicate | rejected
    saved_as: Path | None = None
    reason: str = ""
    size: int = 0


def save_uploads(files: Iterable[str | os.PathLike], upload_dir: str | os.PathLike,
                 max_bytes: int | None = None) -> list[UploadOutcome]:
    """Copy uploaded files into ``upload_dir`` (see the module rules); one outcome per file."""
    limit = max_upload_bytes() if max_bytes is None else int(max_bytes)
    folder = Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    known = supported_suffixes()
    outcomes = []
    for item in files or []:
        # gradio hands over paths; older versions passed tempfile wrappers with the path in .name
        path = Path(item if isinstance(item, (str, os.PathLike)) else getattr(item, "name", item))
        original = path.name
        try:
            size = path.stat().st_size
        except OSError as exc:
            outcomes.append(UploadOutcome(original, "rejected", reason=f"cannot read the upload ({exc.strerror or exc})"))
            continue
        if not path.is_file():
            outcomes.append(UploadOutcome(original, "rejected", reason="not a regular file"))
            continue
        suffix = Path(sanitize_filename(original)).suffix.lower()
        if suffix not in known:
            outcomes.append(UploadOutcome(original, "rejected", size=size, reason=(
                f"unsupported format '{suffix or '(none)'}': upload one of {', '.join(known)}")))
            continue
        if size > limit:
            outcomes.append(UploadOutcome(original, "rejected", size=size, reason=(
                f"{human_size(size)} is over the {human_size(limit)} limit: split the file or raise the limit "
                f"(RAG_UI_MAX_UPLOAD_MB)")))
            continue
        if size == 0:
            outcomes.append(UploadOutcome(original, "rejected", size=0, reason="the file is empty"))
            continue
        try:
            target, duplicate = destination_for(folder, original, path)
            if not duplicate:
                # "x" mode: never replace a file that appeared since destination_for looked.
                with open(path, "rb") as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, ValueError) as exc:
            outcomes.append(UploadOutcome(original, "rejected", size=size,
                                          reason=f"could not be saved ({getattr(exc, 'strerror', None) or exc})"))
            continue
        outcomes.append(UploadOutcome(original, "duplicate" if duplicate else "saved", target, size=size))
    return outcomes


@dataclass
class UploadResult:
    """Outcomes of saving plus the ingest reports, for the page."""

    outcomes: list[UploadOutcome] = field(default_factory=list)
    summary: object | None = None  # ingest.pipeline.IngestSummary
    reports: dict[str, object] = field(default_factory=dict)  # saved path -> FileReport
    error: str = ""  # ingest as a whole failed (another ingest running, embedder mismatch, ...)

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(name, reason) of every file that did not get into the index."""
        out = []
        for outcome in self.outcomes:
            report = self.reports.get(str(outcome.saved_as.resolve())) if outcome.saved_as else None
            if outcome.status == "rejected":
                out.append((outcome.name, outcome.reason))
            elif report is not None and report.status in ("failed", "skipped"):
                out.append((outcome.name, report.reason))
            elif report is None and self.error:
                out.append((outcome.name, self.error))
        return out

    @property
    def ingested(self) -> list[str]:
        return [o.name for o in self.outcomes if o.saved_as is not None
                and getattr(self.reports.get(str(o.saved_as.resolve())), "status", "") in ("added", "changed", "unchanged")]

    def lines(self) -> list[tuple[str, str]]:
        """(kind, text) per file: kind is ok, same or bad."""
        lines = []
        for outcome in self.outcomes:
            saved = outcome.saved_as
            report = self.reports.get(str(saved.resolve())) if saved else None
            renamed = f" (saved as {saved.name})" if saved and saved.name != outcome.name else ""
            if outcome.status == "rejected":
                lines.append(("bad", f"{outcome.name}: {outcome.reason}"))
            elif report is None:
                lines.append(("bad", f"{outcome.name}: {self.error or 'not ingested'}"))
            elif report.status in ("failed", "skipped"):
                lines.append(("bad", f"{outcome.name}: {report.reason}"))
            elif report.status == "unchanged":
                lines.append(("same", f"{outcome.name}: already in the index{renamed}"))
            else:
                pages = f", {_count(report.pages, 'page')}" if report.pages else ""
                warning = f" ({report.warning})" if report.warning else ""
                lines.append(("ok", f"{outcome.name}: {report.status}, {_count(report.chunks, 'chunk')}{pages}"
                                    f"{renamed}{warning}"))
        return lines

    def markdown(self) -> str:
        icons = {"ok": "✅", "same": "☑️", "bad": "❌"}
        body = "\n".join(f"- {icons[kind]} {_md_escape(text)}" for kind, text in self.lines())
        if self.error:
            body = f"**Ingest failed:** {_md_escape(self.error)}\n\n" + body
        return body


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", str(text))


def ingest_uploads(files: Iterable[str | os.PathLike], index: str | os.PathLike | None, upload_dir: str | os.PathLike,
                   max_bytes: int | None = None, *, embed_model: str | None = None,
                   progress: Callable[[float, str], None] | None = None) -> UploadResult:
    """Save ``files`` (see :func:`save_uploads`) and ingest the saved ones into ``index``.

    A file that fails to ingest is removed from the upload folder again (it was just copied
    there), so the folder only holds documents that are in the index.
    """
    from rag.ingest.pipeline import ingest
    from rag.errors import RagError

    files = list(files or [])
    report_progress = progress or (lambda fraction, desc: None)
    report_progress(0.0, "Saving uploads")
    result = UploadResult(outcomes=save_uploads(files, upload_dir, max_bytes))
    to_ingest = [o.saved_as for o in result.outcomes if o.saved_as is not None]
    if not to_ingest:
        return result
    done = [0]

    def on_file(report) -> None:
        done[0] += 1
        report_progress(0.1 + 0.7 * done[0] / len(to_ingest), f"Read {Path(report.path).name}")

    report_progress(0.1, f"Ingesting {len(to_ingest)} file(s)")
    try:
        summary = ingest([str(p) for p in to_ingest], index, embed_model=embed_model, progress=False,
                         prune_missing=False, on_file=on_file)
    except RagError as exc:
        result.error = str(exc)
        fresh = [o.saved_as for o in result.outcomes if o.status == "saved"]
        for path in fresh:
            path.unlink(missing_ok=True)
        return result
    result.summary = summary
    result.reports = {str(Path(r.path).resolve()): r for r in summary.reports}
    for outcome in result.outcomes:
        report = result.reports.get(str(outcome.saved_as.resolve())) if outcome.saved_as else None
        if outcome.status == "saved" and report is not None and report.status in ("failed", "skipped"):
            outcome.saved_as.unlink(missing_ok=True)
    report_progress(1.0, "Done")
    return result
