"""Click options shared by every command, derived from the settings objects.

Each field of :class:`~rag.settings.RetrievalSettings` and
:class:`~rag.settings.GenerationSettings` becomes an option (``top_p`` -> ``--top-p``)
with the field's default and help, so a new knob reaches ``rag ask``, ``rag chat``,
``rag eval``, ``rag ui`` and ``rag serve`` by being declared once. Options default to
``None`` ("not given"), so the settings object's own default applies; the environment
is read by :mod:`rag.config` only.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from typing import Any, NoReturn

import click

from . import config
from .errors import RagError, exit_code
from .settings import GenerationSettings, RetrievalSettings


def fail(error: BaseException) -> NoReturn:
    """One line on stderr and the error's exit code; never a traceback for expected errors."""
    click.echo(f"error: {error}", err=True)
    sys.exit(exit_code(error))


class RagCommandMixin:
    """Turns a RagError into its one line and exit code; Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RagError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


class RagCommand(RagCommandMixin, click.Command):
    pass


class RagGroup(RagCommandMixin, click.Group):
    command_class = RagCommand


def _default(f) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


def _option_for(f) -> Any:
    meta = f.metadata
    default = _default(f)
    flag = "--" + f.name.replace("_", "-")
    names = [flag] + ([f"-{meta['short']}"] if meta.get("short") else [])
    help_text = meta.get("help", "")
    if meta.get("multiple"):
        return click.option(*names, f.name, multiple=True, default=None, help=help_text)
    if isinstance(default, bool):
        return click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None,
                            help=f"{help_text} [default: {'on' if default else 'off'}]")
    if meta.get("choices"):
        kind: Any = click.Choice(list(meta["choices"]))
    elif isinstance(default, int):
        kind = int
    elif isinstance(default, float) or f.name == "min_score":
        kind = float
    else:
        kind = str
    shown = "" if default in (None, ()) else f" [default: {default}]"
    return click.option(*names, f.name, type=kind, default=None, help=f"{help_text}{shown}")


def settings_options(*classes, advanced: bool = True):
    """Decorator adding one option per field of ``classes`` (without ``advanced`` ones if asked)."""
    options = [_option_for(f) for cls in classes for f in fields(cls) if advanced or not f.metadata.get("advanced")]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def pop_settings(kwargs: dict[str, Any]) -> tuple[RetrievalSettings, GenerationSettings]:
    """Remove the settings options from a command's ``kwargs`` and build the settings
    (options not given keep the settings' defaults)."""
    def take(cls):
        given = {}
        for f in fields(cls):
            value = kwargs.pop(f.name, None)
            if value is None or (f.metadata.get("multiple") and not value):
                continue
            given[f.name] = tuple(value) if f.metadata.get("multiple") else value
        return cls(**given)

    return take(RetrievalSettings), take(GenerationSettings)


def index_option(func):
    return click.option("--index", "index", default=None, metavar="DIR|URI",
                        help=f"Index directory, or milvus:///abs/file.db (Milvus Lite) or milvus://host:port "
                             f"(token: RAG_MILVUS_TOKEN), optionally #collection "
                             f"[env RAG_INDEX_DIR; default {config.DEFAULT_INDEX_DIR}].")(func)


def embed_model_option(func):
    from .embedders import embedders_help

    return click.option("--embed-model", default=None,
                        help=f"Embedding model [env RAG_EMBED_MODEL; default {config.DEFAULT_EMBED_MODEL}]: "
                             f"{embedders_help()}; or a sentence-transformers id/path.")(func)


def generator_options(func):
    from .generators import generators_help

    func = click.option("--model", "-m", default=None,
                        help="Generator model name or path [env RAG_MODEL; default: the generator's own].")(func)
    return click.option("--generator", "-g", default=None,
                        help=f"[env RAG_GENERATOR; default: openai when OPENAI_API_KEY/OPENAI_BASE_URL is set, "
                             f"else {config.DEFAULT_GENERATOR}] {generators_help()}.")(func)


def output_options(func):
    func = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)
    return click.option("--quiet", "-q", is_flag=True, help="No progress; print only problems and results.")(func)


def answer_options(func):
    """Index, generator and every retrieval and generation setting: `rag ask`, `rag chat`, `rag eval`."""
    func = settings_options(RetrievalSettings, GenerationSettings)(func)
    func = generator_options(func)
    return index_option(func)


__all__ = ["fail", "RagGroup", "RagCommand", "settings_options", "pop_settings", "index_option",
           "embed_model_option", "generator_options", "output_options", "answer_options"]
