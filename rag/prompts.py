"""Prompt templates from files, rendered strictly: a missing variable is an error."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from prompts import PROMPTS_DIR

from .errors import InputError


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
        for folder in folders:
            path = Path(folder) / "messages.yaml"
            if path.exists():
                return yaml.safe_load(path.read_text(encoding="utf-8"))
        raise InputError("messages.yaml not found in the prompt folders")

    def render(self, name: str, **variables) -> str:
        return self.env.get_template(name).render(**variables).strip()

    def refusal(self, lang: str) -> str:
        texts = self.messages["refusal"]
        return texts.get(lang, texts["en"])

    def language_name(self, lang: str) -> str:
        return self.messages["language_names"].get(lang, "the language of the question")


@lru_cache(maxsize=4)
def get_prompts(folder: str | None = None) -> Prompts:
    return Prompts(folder)
