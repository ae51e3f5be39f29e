"""Thumbs up/down on answers, appended to a JSONL file.

One line per vote::

    {"timestamp": "2025-01-31T12:00:00+0100", "vote": "up", "question": "...", "response": "...",
     "refused": false, "response_sources": [{"file": "guide.pdf", "page": 2, "score": 0.0328, "cosine": 0.61}],
     "settings": {"generator": "extractive", "model": null, "temperature": 0.2, "top_p": 0.9,
                  "max_tokens": 512, "k": 5},
     "history": [["earlier question", "earlier answer"]], "index": "/abs/index", ...}

``question`` is a top-level field, so the file can be given to ``rag eval`` as a question
file to replay the questions (votes tell which answers to look at first). The answer that
was rated is ``response`` (RAGAS's name) and its sources ``response_sources``, not
``answer``/``sources``: ``rag eval`` reads those as the *reference* answer and gold files,
and a rated answer is not a reference. ``vote`` is ``up``, ``down`` or ``cleared`` (the
user took the vote back).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

_write_lock = threading.Lock()
FILE_MODE = 0o600  # votes hold questions and answers: readable by their owner only
FOLDER_MODE = 0o700


class FeedbackError(OSError):
    """The votes file cannot be written safely (a link where it should be, not a file, ...)."""


def default_feedback_path(index: str | os.PathLike | None = None) -> Path:
    """``feedback.jsonl`` inside the index's own folder (``<index>/feedback.jsonl``): never
    beside it, where ``--index /tmp/x`` would put it in a shared folder. Index versions
    live in subfolders, so an ingest never replaces it."""
    from rag import config

    return config.index_dir(index).expanduser().absolute() / "feedback.jsonl"


def vote_name(liked: Any) -> str:
    """gr.LikeData.liked (True, False, "Like", "Dislike", "" when taken back) -> up / down / cleared."""
    if liked is True:
        return "up"
    if liked is False:
        return "down"
    text = str(liked or "").strip().lower()
    if text in ("like", "up", "liked", "1", "true"):
        return "up"
    if text in ("dislike", "down", "disliked", "0", "false"):
        return "down"
    return "cleared" if not text else text


def feedback_record(vote: str, turn: dict, index: str | os.PathLike | None = None,
                    history: list | None = None) -> dict:
    """The JSONL record for a vote on ``turn`` (a turn as the UI keeps it, see ui.app)."""
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vote": vote,
        "question": turn.get("question", ""),
        "response": turn.get("answer", ""),
        "refused": bool(turn.get("refused")),
        "standalone_question": turn.get("standalone_question") or turn.get("question", ""),
        "lang": turn.get("lang"),
        "response_sources": [
            {"file": s.get("source"), "page": s.get("page"), "score": s.get("score"),
             "cosine": s.get("dense_score"), "path": s.get("path"), "chunk_id": s.get("chunk_id")}
            for s in turn.get("sources", [])
        ],
        "settings": dict(turn.get("settings", {})),
        "generator": turn.get("generator"),
        "model": turn.get("model"),
        "history": [list(pair) for pair in (history or [])],
        "index": str(index) if index is not None else None,
    }


def append_feedback(path: str | os.PathLike, record: dict) -> Path:
    """Append ``record`` as one JSON line to ``path``, mode 0600 (folders are created 0700;
    safe across threads). A symbolic link at ``path`` is refused, never followed: a planted
    link must not redirect votes into another file."""
    path = Path(path)
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a FIFO planted there must not hang the page
    with _write_lock:
        try:
            fd = os.open(path, flags, FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP or path.is_symlink():
                raise FeedbackError(f"{path} is a symbolic link: refusing to follow it; remove the link "
                                    f"(votes are written to a plain file)") from None
            raise FeedbackError(f"cannot write votes to {path} ({exc.strerror}): choose another file "
                                f"with --feedback") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FeedbackError(f"{path} is not a regular file: choose another file with --feedback")
            if stat.S_IMODE(info.st_mode) != FILE_MODE:
                os.fchmod(fd, FILE_MODE)  # a file created by an older version was 0644
            os.write(fd, line)
        finally:
            os.close(fd)
    return path


def read_feedback(path: str | os.PathLike) -> list[dict]:
    """Every record in a feedback file (an empty list when there is none yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
