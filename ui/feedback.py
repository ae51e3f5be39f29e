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

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_write_lock = threading.Lock()


def default_feedback_path(index: str | os.PathLike | None = None) -> Path:
    """``feedback.jsonl`` beside the index folder: ``<index>/../feedback.jsonl``."""
    from rag import config

    return config.index_dir(index).expanduser().absolute().parent / "feedback.jsonl"


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
    """Append ``record`` as one JSON line to ``path`` (folders are created; safe across threads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _write_lock, open(path, "a", encoding="utf-8") as out:
        out.write(line)
        out.flush()
    return path


def read_feedback(path: str | os.PathLike) -> list[dict]:
    """Every record in a feedback file (an empty list when there is none yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
