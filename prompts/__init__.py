"""The prompt templates (Jinja2 files beside this module) and their loader.

Templates are rendered strictly: a missing variable is an error. Point RAG_PROMPTS_DIR at a
folder of your own files with the same names to override any of them."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from rag.errors import InputError

PROMPTS_DIR = Path(__file__).resolve().parent


class Prompts:
    """Templates looked up first in ``folder`` (or $RAG_PROMPTS_DIR), then in the packaged prompts/."""

    def __init__(self, folder: str | os.PathLike | None = None):
        import jinja2

        folder = folder or os.environ.get("RAG_PROMPTS_DIR")
        search = [str(Path(folder).expanduser())] if folder else []
        if folder and not Path(search[0]).is_dir():
            raise InputError(f"prompt folder {folder} does not exist: create it or unset RAG_PROMPTS_DIR")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search + [str(PROMPTS_DIR)]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,
        )
        self.messages = self._load_messages(search + [str(PROMPTS_DIR)])

    @staticmethod
    def _load_messages(folders: list[str]) -> dict:
        # The packaged sentences first, then the user's on top, key by key: a user file
        # that adds or changes one language keeps every other language.
        merged: dict = {}
        for folder in reversed(folders):
            path = Path(folder) / "messages.yaml"
            if not path.exists():
                continue
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise InputError(f"{path} is not valid YAML: {str(exc)[:200]}") from None
            if not isinstance(loaded, dict):
                raise InputError(f"{path} must be a mapping with 'refusal' and 'language_names'")
            for key, value in loaded.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
        if "refusal" not in merged or "en" not in merged.get("refusal", {}):
            raise InputError("messages.yaml with an English 'refusal' sentence not found in the prompt folders")
        merged.setdefault("language_names", {})
        return merged

    def render(self, name: str, **variables) -> str:
        return self.env.get_template(name).render(**variables).strip()

    def refusal(self, lang: str) -> str:
        texts = self.messages["refusal"]
        return texts.get(lang, texts["en"])

    def caution(self, lang: str) -> str:
        """The low-confidence note (Answer.note) in ``lang``."""
        texts = self.messages.get("caution") or {}
        return texts.get(lang) or texts.get("en") or (
            "Low confidence: the documents may not state this directly. Check the quoted sources.")

    def score_label(self, lang: str) -> str:
        """The word shown before the answerability score, in ``lang``."""
        texts = self.messages.get("score") or {}
        return texts.get(lang) or texts.get("en") or "Score"

    def language_name(self, lang: str) -> str:
        return self.messages["language_names"].get(lang, "the language of the question")


def get_prompts(folder: str | os.PathLike | None = None) -> Prompts:
    """The templates of ``folder`` (else $RAG_PROMPTS_DIR, read on every call), loaded once per folder."""
    folder = folder or os.environ.get("RAG_PROMPTS_DIR") or None
    return _prompts(str(folder) if folder else None)


@lru_cache(maxsize=8)
def _prompts(folder: str | None) -> Prompts:
    return Prompts(folder)
