"""Question files for `rag eval`: JSONL, JSON, CSV/TSV or YAML, one question a row.

Only a question is required. Field names of the project's dev set and of the
common RAG-evaluation formats (RAGAS and friends) are all accepted:

=================  ==========================================================================
field              accepted names (first found wins)
=================  ==========================================================================
question           ``question``, ``user_input`` (RAGAS), ``query``, ``input``, ``prompt``
id                 ``id``, ``qid``, ``question_id`` (default: ``q<line>``); must be unique
language           ``lang``, ``language`` (default: detected from the question)
reference answer   ``reference`` (RAGAS), ``ground_truth``, ``ground_truths``, ``answer`` as a
                   string, ``reference_answer``, ``expected_answer``, ``expected_output``
keyword groups     ``answer`` as a list of groups of alternatives (dev schema:
                   ``[["0.82", "0.8197"], ["recall"]]`` = one of each group), ``keywords``,
                   ``answer_groups``; a flat list of strings is one group of alternatives
evidence passages  ``evidence``, ``reference_contexts`` (RAGAS), ``ground_truth_contexts``,
                   ``contexts``, ``reference_context`` (string or list)
source files       ``source``, ``sources``, ``source_file``, ``reference_sources``,
                   ``document``, ``file`` (string or list; compared by file stem)
answerable         ``answerable`` (true/false/yes/no/1/0), or ``unanswerable``; when absent a
                   question with a reference, keywords, evidence or source is answerable,
                   one without any gold field is left out of the refusal metrics
=================  ==========================================================================

In CSV/TSV cells a list is written as JSON (``["Dialogflow", "Rasa"]``); a plain
string is a single value. Other columns are kept as ``meta``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from rag.errors import QuestionFileError

QUESTION_KEYS = ("question", "user_input", "query", "input", "prompt")
ID_KEYS = ("id", "qid", "question_id")
LANG_KEYS = ("lang", "language")
REFERENCE_KEYS = ("reference", "ground_truth", "ground_truths", "reference_answer", "expected_answer",
                  "expected_output", "gold_answer")
ANSWER_KEYS = ("answer", "answers")  # string -> reference; list -> keyword groups
GROUP_KEYS = ("keywords", "answer_groups", "answer_keywords")
EVIDENCE_KEYS = ("evidence", "reference_contexts", "ground_truth_contexts", "reference_context", "contexts",
                 "evidence_passages")
SOURCE_KEYS = ("source", "sources", "source_file", "source_files", "reference_sources", "document", "file")
ANSWERABLE_KEYS = ("answerable",)
UNANSWERABLE_KEYS = ("unanswerable",)
KNOWN_KEYS = set(QUESTION_KEYS + ID_KEYS + LANG_KEYS + REFERENCE_KEYS + ANSWER_KEYS + GROUP_KEYS + EVIDENCE_KEYS
                 + SOURCE_KEYS + ANSWERABLE_KEYS + UNANSWERABLE_KEYS)

EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".csv": "csv", ".tsv": "tsv",
    ".yaml": "yaml", ".yml": "yaml",
}
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


@dataclass
class Question:
    """One evaluation question and whatever gold information came with it."""

    id: str
    question: str
    lang: str | None = None
    lang_detected: bool = False
    references: list[str] = field(default_factory=list)  # reference answers (any one is right)
    groups: list[list[str]] = field(default_factory=list)  # keyword groups: one alternative of each
    evidence: list[str] = field(default_factory=list)  # passages a retrieved chunk should contain
    sources: list[str] = field(default_factory=list)  # expected source file names
    answerable: bool | None = None
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A hash of everything that decides this question's result (for resuming)."""
        data = [self.question, self.references, self.groups, self.evidence, self.sources, self.answerable]
        return hashlib.sha1(json.dumps(data, ensure_ascii=False).encode("utf-8")).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class QuestionSet:
    questions: list[Question]
    problems: list[RowProblem] = field(default_factory=list)
    path: str | None = None
    format: str = "list"

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)


class RowError(ValueError):
    """A row that cannot be used; the message says why."""


# --------------------------------------------------------------------------- reading files


def _read_text(path: Path) -> str:
    if not path.exists():
        raise QuestionFileError(f"no question file at {path}: check the path")
    if path.is_dir():
        raise QuestionFileError(f"{path} is a folder: give a question file (.jsonl, .json, .csv, .tsv, .yaml)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise QuestionFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise QuestionFileError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    if not text.strip():
        raise QuestionFileError(f"{path} is empty: add one question a row")
    return text


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            # json's "Unterminated string starting at" expects the position after it
            yield number, RowError(f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})")
        except RecursionError:  # [[[[...: the parser recurses once per level
            yield number, RowError("invalid JSON (nested too deeply)")


def _json_rows(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # A .json file holding JSON lines is common enough to accept.
        if exc.msg == "Extra data":
            yield from _jsonl_rows(text)
            return
        raise QuestionFileError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); fix it or use one object a line (.jsonl)") from None
    except RecursionError:
        raise QuestionFileError(f"{path}: invalid JSON (nested too deeply): a question file is a flat list") from None
    rows = _unwrap(data, path)
    # Line numbers of a JSON array are not tracked: the row's position stands in.
    for number, row in enumerate(rows, start=1):
        yield number, row


def _unwrap(data: Any, path: Path) -> list:
    if isinstance(data, dict):
        for key in ("questions", "data", "samples", "items", "rows"):
            if isinstance(data.get(key), list):
                return data[key]
        if any(k in data for k in QUESTION_KEYS):
            return [data]
        raise QuestionFileError(f"{path}: expected a list of questions (or a 'questions' list), found an object "
                                f"with keys {', '.join(list(data)[:8])}")
    if isinstance(data, list):
        return data
    raise QuestionFileError(f"{path}: expected a list of questions, found {type(data).__name__}")


def _csv_rows(text: str, delimiter: str, path: Path) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    last_line = 0
    for cells in _csv_records(reader, path):
        start = last_line + 1
        last_line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            if not any(h.lower() in QUESTION_KEYS for h in header):
                raise QuestionFileError(
                    f"{path}:{start}: the header has no question column (found: {', '.join(header[:10])}); "
                    f"name one of: {', '.join(QUESTION_KEYS)}")
            continue
        if len(cells) > len(header):
            yield start, RowError(f"{len(cells)} cells but the header has {len(header)} columns")
            continue
        yield start, {h: (_cell(v)) for h, v in zip(header, cells) if h}


def _csv_records(reader, path: Path) -> Iterator[list[str]]:
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a cell over csv's field limit (128 KB), a NUL byte in some versions
            raise QuestionFileError(f"{path}:{reader.line_num}: bad CSV ({exc}): check the quoting, and keep each "
                                    f"cell under 128 KB") from None


def _cell(value: str) -> Any:
    value = value.strip()
    if value == "":
        return None
    if value[0] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _yaml_rows(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    import yaml

    class LineLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            # An alias re-uses a node: nine aliases of nine aliases ... ("billion laughs")
            # is a few lines that expand to 9**8 strings and half a minute of CPU before
            # any row is read. Question files do not need them: refuse the first one.
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not accepted in question files: write the value out",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)

    def construct_mapping(loader, node, deep=False):
        mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        data = yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise QuestionFileError(f"{path}{where}: invalid YAML ({problem})") from None
    except RecursionError:  # the composer recurses once per level of [[[[...
        raise QuestionFileError(f"{path}: invalid YAML (nested too deeply): a question file is a flat list") from None
    if data is None:
        raise QuestionFileError(f"{path} is empty: add one question a row")
    if isinstance(data, dict) and "__line__" in data and not any(k in data for k in QUESTION_KEYS):
        data.pop("__line__")
    rows = _unwrap(data, path)
    for position, row in enumerate(rows, start=1):
        line = row.pop("__line__", position) if isinstance(row, dict) else position
        if isinstance(row, dict):
            _strip_lines(row)
        yield line, row


def _strip_lines(value: Any) -> None:
    if isinstance(value, dict):
        value.pop("__line__", None)
        for v in value.values():
            _strip_lines(v)
    elif isinstance(value, list):
        for v in value:
            _strip_lines(v)


# --------------------------------------------------------------------------- parsing rows


def _first(row: dict, keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        if key in row and row[key] is not None and row[key] != "":
            return key, row[key]
    return None, None


def _scalar_text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(f"'{name}' must be text, not {_type_name(value)}")
    return str(value).strip()


def rows_count(n: int) -> str:
    """ "1 bad row", "3 bad rows"."""
    return f"{n} bad row" + ("" if n == 1 else "s")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", type(None): "null"}.get(type(value),
                                                                                       type(value).__name__)


def _text_list(value: Any, name: str) -> list[str]:
    """A string or a list of strings (numbers are taken as text)."""
    if value is None:
        return []
    if isinstance(value, list):
        out = []
        for item in value:
            if item is None:
                continue
            out.append(_scalar_text(item, name))
        return [v for v in out if v]
    text = _scalar_text(value, name)
    return [text] if text else []


def _groups(value: Any, name: str) -> list[list[str]]:
    """Keyword groups: a list of lists of alternatives; a flat list is one group."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        groups = [_text_list(group, name) for group in value]
        if any(not g for g in groups):
            raise RowError(f"'{name}' has an empty group: every group needs at least one alternative")
        return groups
    if isinstance(value, list) and any(isinstance(v, list) for v in value):
        raise RowError(f"'{name}' mixes lists and strings: use a list of groups, e.g. [[\"0.82\", \"82%\"], [\"recall\"]]")
    if isinstance(value, list):
        alternatives = _text_list(value, name)
        return [alternatives] if alternatives else []
    raise RowError(f"'{name}' must be a list of groups of alternatives, not {_type_name(value)}")


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RowError(f"'{name}' must be true or false, not {value!r}")


def parse_row(row: Any, line: int) -> Question:
    """A :class:`Question` from one row (a dict), or :class:`RowError` saying what is wrong."""
    if isinstance(row, RowError):
        raise row
    if isinstance(row, Question):
        if not isinstance(row.question, str) or not row.question.strip():
            raise RowError("the question is empty")
        return row
    if not isinstance(row, dict):
        raise RowError(f"expected an object with a 'question', found {_type_name(row)}")
    row = {str(k).strip(): v for k, v in row.items()}
    lowered = {k.lower(): v for k, v in row.items()}
    key, question = _first(lowered, QUESTION_KEYS)
    if key is None:
        if any(k in lowered for k in QUESTION_KEYS):
            raise RowError("the question is empty")
        raise RowError(f"no question (expected a field named one of: {', '.join(QUESTION_KEYS)})")
    if not isinstance(question, str):  # ids and answers may be numbers; a question is text
        raise RowError(f"'{key}' must be text, not {_type_name(question)}")
    question = question.strip()
    if not question:
        raise RowError("the question is empty")

    _, qid = _first(lowered, ID_KEYS)
    qid = _scalar_text(qid, "id") if qid is not None else f"q{line}"
    _, lang = _first(lowered, LANG_KEYS)
    lang = _scalar_text(lang, "lang").lower() if lang is not None else None

    references: list[str] = []
    for name in REFERENCE_KEYS:
        if lowered.get(name) not in (None, ""):
            references += _text_list(lowered[name], name)
    groups: list[list[str]] = []
    name, answer = _first(lowered, ANSWER_KEYS)
    if answer is not None:
        if isinstance(answer, list):
            groups += _groups(answer, name)
        elif isinstance(answer, (str, int, float)) and not isinstance(answer, bool):
            references.append(str(answer).strip())
        else:
            raise RowError(f"'{name}' must be a string (reference answer) or a list of groups of alternatives, "
                           f"not {_type_name(answer)}")
    name, keywords = _first(lowered, GROUP_KEYS)
    if keywords is not None:
        groups += _groups(keywords if isinstance(keywords, list) else [keywords], name)
    references = list(dict.fromkeys(r for r in references if r))

    evidence: list[str] = []
    for name in EVIDENCE_KEYS:
        evidence += _text_list(lowered.get(name), name)
    sources: list[str] = []
    for name in SOURCE_KEYS:
        sources += _text_list(lowered.get(name), name)

    answerable: bool | None = None
    name, value = _first(lowered, ANSWERABLE_KEYS)
    if value is not None:
        answerable = _boolean(value, name)
    else:
        name, value = _first(lowered, UNANSWERABLE_KEYS)
        if value is not None:
            answerable = not _boolean(value, name)
    if answerable is None and (references or groups or evidence or sources):
        answerable = True
    if answerable is False:
        # Gold answers of an unanswerable question would be scored against a refusal.
        groups, evidence, sources = [], [], []

    meta = {k: v for k, v in row.items() if k.lower() not in KNOWN_KEYS}
    return Question(id=qid, question=question, lang=lang, references=references, groups=groups,
                    evidence=list(dict.fromkeys(evidence)), sources=list(dict.fromkeys(sources)),
                    answerable=answerable, line=line, meta=meta)


def _rows(path: Path) -> tuple[str, Iterator[tuple[int, Any]]]:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise QuestionFileError(
            f"{path}: unknown question file type '{path.suffix or '(none)'}': use one of "
            f"{', '.join(sorted(EXTENSIONS))}")
    text = _read_text(path)
    if fmt == "jsonl":
        return fmt, _jsonl_rows(text)
    if fmt == "json":
        return fmt, _json_rows(text, path)
    if fmt in ("csv", "tsv"):
        return fmt, _csv_rows(text, "\t" if fmt == "tsv" else ",", path)
    return fmt, _yaml_rows(text, path)


def build_set(rows: Iterable[tuple[int, Any]], *, strict: bool = False, where: str = "questions",
              detect_lang: bool = True) -> QuestionSet:
    questions: list[Question] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        try:
            question = parse_row(row, line)
            if question.id in seen:
                raise RowError(f"duplicate id '{question.id}' (first on line {seen[question.id]})")
        except RowError as exc:
            if strict:
                raise QuestionFileError(f"{where}:{line}: {exc} (without --strict bad rows are skipped)") from None
            problems.append(RowProblem(line, str(exc)))
            continue
        seen[question.id] = line
        questions.append(question)
    if not questions:
        detail = "; ".join(str(p) for p in problems[:3])
        if problems:
            raise QuestionFileError(f"{where}: no usable question ({rows_count(len(problems))}: {detail})")
        raise QuestionFileError(f"{where} is empty: add one question a row")
    if detect_lang:
        from rag.language import detect_language

        for question in questions:
            if not question.lang:
                question.lang = detect_language(question.question)
                question.lang_detected = True
    return QuestionSet(questions, problems)


def load_questions(source: Any, *, strict: bool = False, detect_lang: bool = True) -> QuestionSet:
    """Questions from a file path, or from a list of dicts / :class:`Question` objects.

    Bad rows are collected in ``.problems`` (line and reason) and skipped; with
    ``strict=True`` the first one raises :class:`QuestionFileError`.
    """
    if isinstance(source, QuestionSet):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        fmt, rows = _rows(path)
        result = build_set(rows, strict=strict, where=str(path), detect_lang=detect_lang)
        result.path, result.format = str(path), fmt
        return result
    if isinstance(source, Iterable):
        items = list(source)
        if not items:
            raise QuestionFileError("the question list is empty: give at least one question")
        rows = [(i, {"question": q} if isinstance(q, str) else q) for i, q in enumerate(items, start=1)]
        return build_set(rows, strict=strict, where="questions", detect_lang=detect_lang)
    raise QuestionFileError(f"questions must be a file path or a list of questions, not {type(source).__name__}")


def file_digest(path: str | os.PathLike | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None
