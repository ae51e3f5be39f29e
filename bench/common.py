"""Helpers shared by the benchmark scripts: paths, flags, timing, statistics,
tables and JSON results.

The scripts are run from the repository root (``python bench/ingest.py``); that
puts ``bench/`` first on ``sys.path``, where ``ingest.py`` would shadow the
project's ``ingest`` package. :func:`setup_path` puts the repository root in
front so that ``import ingest`` finds the package and ``import common`` still
finds this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SHARED = ROOT.parent / "shared"  # read-only corpus and dev questions, beside the repository
DATA = BENCH / "data"


def setup_path() -> None:
    root = str(ROOT)
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)


# --------------------------------------------------------------------------- inputs


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or exit with a message saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not SHARED.is_dir():
        sys.exit(f"bench: the shared corpus folder {SHARED} does not exist. The benchmarks run on the "
                 f"project's shared corpus, expected beside the repository (../shared/corpus/pdf, "
                 f"../shared/corpus/txt, ../shared/eval/dev_questions.jsonl).")
    if not path.exists():
        sys.exit(f"bench: {path} is missing from the shared folder {SHARED}: the benchmark needs it.")
    return path


def corpus_files(kind: str) -> list[Path]:
    """The shared corpus files of one kind ('pdf' or 'txt'), sorted."""
    folder = shared_path("corpus", kind)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        sys.exit(f"bench: no files in {folder}")
    return files


def read_questions() -> list[dict]:
    """Dev questions from ../shared/eval plus bench/data/extra_questions.jsonl when present."""
    questions = []
    sources = [shared_path("eval", "dev_questions.jsonl")]
    extra = DATA / "extra_questions.jsonl"
    if extra.exists():
        sources.append(extra)
    for file in sources:
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    sys.exit(f"bench: {file}:{n} is not valid JSON ({exc})")
                item["_file"] = file.name
                questions.append(item)
    return questions


# --------------------------------------------------------------------------- flags and output


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats (a smoke run)")
    p.add_argument("--json", action="store_true", help="print the JSON report only (implies --quiet)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


class Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.started:6.1f}s] {msg}", file=sys.stderr, flush=True)


def write_json(name: str, report: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=_jsonable), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _jsonable(value: Any):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def emit(name: str, report: dict, table: str, as_json: bool) -> Path:
    """Write bench/results/<name>.json and print the table (or the JSON)."""
    path = write_json(name, report)
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=_jsonable))
    else:
        print(table)
        print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def table(headers: list[str], rows: Iterable[Iterable[Any]], align: str | None = None) -> str:
    """A plain text table; ``align`` is one of 'l'/'r' per column (default: first left, rest right)."""
    rows = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    align = align or ("l" + "r" * (len(headers) - 1))

    def line(cells):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)).rstrip()

    out = [line([str(h) for h in headers]), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        a = abs(value)
        if a >= 100:
            return f"{value:.0f}"
        if a >= 10:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


# --------------------------------------------------------------------------- timing and statistics


def timed(fn: Callable, *args, **kwargs) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method)."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def spread(values: list[float]) -> dict:
    """median, min, max and every value of repeated measurements."""
    return {"median": median(values), "min": min(values) if values else None,
            "max": max(values) if values else None, "runs": [float(v) for v in values]}


def target(name: str, value: float | None, op: str, limit: float, unit: str = "") -> dict:
    """A target row in the format bench/scaling.py uses: target, value, limit, met."""
    if value is None or value != value:
        met = None
    else:
        met = bool(value <= limit) if op == "<=" else bool(value >= limit) if op == ">=" else \
            bool(value < limit) if op == "<" else bool(value > limit)
    return {"target": name, "value": value, "limit": f"{op} {limit:g}{unit}", "met": met}


def targets_block(targets: list[dict]) -> str:
    lines = ["Targets:"]
    for t in targets:
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        lines.append(f"  [{state}] {t['target']}: {fmt(t['value'])} (target {t['limit']})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- machine


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def rss_mib() -> float | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return None


def txt_index(given: str | None, prefix: str, log: Callable[[str], None] | None = None) -> tuple[Path, Path | None]:
    """(an index of ../shared/corpus/txt, the temporary folder to delete afterwards or None):
    ``given`` (a bench's --index) when set, else one built now in a new temporary folder."""
    if given:
        return Path(given), None
    import tempfile

    from rag.ingest.pipeline import ingest

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    summary = ingest(corpus_files("txt"), workdir / "index", rebuild=True, progress=False)
    if log:
        log(f"index of {summary.files} txt files, {summary.chunks} chunks built in {summary.seconds:.1f}s")
    return workdir / "index", workdir
