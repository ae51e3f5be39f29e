#!/usr/bin/env python
"""Run every benchmark (ingest, query, scaling) and print one combined table.

Each script runs in its own process with the same --quick/--json/--quiet flags
(bench/query.py runs with --local, the full run adds --hf) and writes bench/results/<name>.json;
this one reads those back and writes bench/results/summary.json.

    python bench/run.py --quick     # a few minutes on a 2-core machine
    python bench/run.py             # the full benchmarks (with the hf generator's first token)
    python bench/run.py --only ingest,query
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPTS = ["ingest", "query", "scaling"]


def run_script(name: str, args, log) -> dict:
    script = common.BENCH / f"{name}.py"
    cmd = [sys.executable, str(script)]
    cmd += [flag for flag, on in (("--quick", args.quick), ("--json", args.json), ("--quiet", args.quiet)) if on]
    if name == "query":
        cmd.append("--local")  # the offline LLM's first token: seconds, so in the quick run too
    if name == "query" and not args.quick and not args.no_hf:
        cmd.append("--hf")
    shown = " ".join(["python", str(script.relative_to(common.ROOT))] + cmd[2:])
    log(f"running {shown}")
    result_file = common.RESULTS / f"{name}.json"
    started_wall = time.time()
    started = time.perf_counter()
    tail: deque[str] = deque(maxlen=40)
    quiet = args.quiet or args.json

    proc = subprocess.Popen(cmd, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", errors="replace")

    def relay():
        for line in proc.stderr:
            tail.append(line.rstrip("\n"))
            if not quiet and "DeprecationWarning" not in line and "warnings.warn" not in line:
                print(f"  {name} | {line.rstrip()}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    stdout = proc.stdout.read()
    rc = proc.wait()
    reader.join(timeout=5)
    wall = time.perf_counter() - started
    entry: dict = {"command": shown, "rc": rc, "wall_s": wall, "results_file": str(result_file.relative_to(common.ROOT))}
    if not quiet and stdout.strip() and not args.json:
        print(f"\n--- {name} ---\n{stdout.rstrip()}\n", file=sys.stderr, flush=True)
    fresh = result_file.exists() and result_file.stat().st_mtime >= started_wall - 1
    if rc != 0 or not fresh:
        entry["error"] = (f"exit status {rc}" if rc != 0 else "it wrote no new results") + (
            ": " + " | ".join(list(tail)[-5:]) if tail else "")
        log(f"{name}: FAILED ({entry['error']})")
        return entry
    report = json.loads(result_file.read_text(encoding="utf-8"))
    entry["headline"] = report.get("headline") or scaling_headline(report)
    entry["targets"] = report.get("targets", [])
    entry["load_average"] = [report.get("meta", {}).get("load_average_at_start"),
                             report.get("meta", {}).get("load_average_at_end")]
    log(f"{name}: done in {wall:.0f}s")
    return entry


def scaling_headline(report: dict) -> list[dict]:
    """Key numbers of bench/scaling.py's report (which has no headline of its own)."""
    rows = []
    for n_str, r in sorted(report.get("results", {}).items(), key=lambda kv: int(kv[0])):
        n = int(n_str)
        label = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)
        parts = []
        if "exact" in r:
            parts.append(f"exact {r['exact']['p50_ms']:.2f}")
        if "hnsw" in r:
            parts.append(f"HNSW {r['hnsw']['p50_ms']:.2f} (recall@10 {r['hnsw']['recall_at_10']:.3f})")
        if "bm25" in r:
            parts.append(f"BM25 {r['bm25']['p50_ms']:.2f}")
        rows.append({"metric": f"p50 ms at {label} chunks", "value": ", ".join(parts)})
    rule = report.get("auto_threshold", {})
    if rule.get("suggested_threshold"):
        rows.append({"metric": "exact-vs-HNSW threshold: measured / in rag.store",
                     "value": f"{rule['suggested_threshold']:,} / {rule.get('current_store_threshold', 0):,}"})
    return rows


def format_summary(summary: dict) -> str:
    meta = summary["meta"]
    rows = []
    for name, entry in summary["scripts"].items():
        if "error" in entry:
            rows.append([name, "FAILED", entry["error"][:90], "", ""])
            continue
        for h in entry.get("headline", []):
            rows.append([name, h["metric"], common.fmt(h["value"]), "", ""])
        for t in entry.get("targets", []):
            state = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
            rows.append([name, t["target"], common.fmt(t["value"]), t["limit"], state])
        rows.append([name, "wall time (s)", common.fmt(entry["wall_s"]), "", ""])
    met = sum(1 for t in summary["targets"] if t["met"])
    missed = sum(1 for t in summary["targets"] if t["met"] is False)
    lines = [
        f"Benchmark summary ({'quick' if meta['quick'] else 'full'}): {meta.get('cpu', '?')}, "
        f"{meta['cpu_count']} cores, load average {meta['load_average_at_start']} at start, "
        f"{meta['load_average_at_end']} at end",
        "",
        common.table(["script", "metric", "value", "target", "status"], rows, "llrll"),
        "",
        f"targets: {met} met, {missed} missed; total wall time {meta['wall_s']:.0f}s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SCRIPTS)}")
    p.add_argument("--no-hf", action="store_true", help="full run without the hf generator's first-token timing")
    args = p.parse_args(argv)
    log = common.Log(args.quiet or args.json)
    names = SCRIPTS if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(SCRIPTS)}")
    common.shared_path("corpus")  # exits with a message when the shared corpus is absent
    started = time.perf_counter()
    meta = common.machine()
    meta["quick"] = args.quick
    scripts = {name: run_script(name, args, log) for name in names}
    meta["wall_s"] = time.perf_counter() - started
    meta["load_average_at_end"] = common.load_average()
    targets = [dict(t, script=name) for name, e in scripts.items() for t in e.get("targets", [])]
    summary = {"meta": meta, "scripts": scripts, "targets": targets}
    common.emit("summary", summary, format_summary(summary), args.json)
    return 0 if all(e["rc"] == 0 and "error" not in e for e in scripts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
