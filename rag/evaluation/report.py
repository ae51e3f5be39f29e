"""Reports of a `rag eval` run: ``report.md`` (plots as PNG files beside it) and a
self-contained ``report.html`` (plots embedded as base64 PNG), plus run comparison."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Iterable

from . import metrics as M
from .questions import rows_count
from .runs import REPORT_HTML, REPORT_MD, load_run

# Fewer labelled questions than this make the recommended threshold a hint, not a calibration.
SMALL_SAMPLE = 30

TIMING_PREFIX = "latency."
# Per-question verdicts whose flips a comparison lists.
FLIP_FIELDS = ("hit", "source_hit", "correct", "refused", "keyword_correct")


# --------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_delta(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) < 1e-12:
        return "0"
    return f"{value:+.4f}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def headline(metrics: dict) -> list[tuple[str, str, str]]:
    """(metric, value, n) rows: the console table and the top of the report."""
    k = metrics.get("k", 5)
    rows: list[tuple[str, str, str]] = []
    c = metrics.get("counts", {})
    rows.append(("questions (answerable / unanswerable)",
                 f"{c.get('evaluated', 0)} ({c.get('answerable', 0)} / {c.get('unanswerable', 0)})",
                 f"{c.get('errors', 0)} errors" if c.get("errors") else ""))
    for name, label in (("evidence", "evidence"), ("source", "source file")):
        r = metrics.get("retrieval", {}).get(name)
        if r:
            rows.append((f"{label} hit@{k}", fmt(r.get(f"hit@{k}")), str(r["n"])))
            rows.append((f"{label} MRR@{k}", fmt(r.get(f"mrr@{k}")), str(r["n"])))
            rows.append((f"{label} recall@{k}", fmt(r.get(f"recall@{k}")), str(r["n"])))
    a = metrics.get("answer", {})
    for key, label in (("keyword_accuracy", "keyword-group accuracy"), ("exact_match", "exact match"),
                       ("token_f1", "token F1"), ("semantic_similarity", "semantic similarity"),
                       ("accuracy", "overall accuracy (answer right or correctly refused)")):
        if key in a:
            rows.append((label, fmt(a[key]), str(a.get(f"{key}_n", ""))))
    g = metrics.get("grounding", {})
    if "groundedness" in g:
        rows.append(("groundedness (sentences supported)", fmt(g["groundedness"]), str(g.get("groundedness_n", ""))))
    if g.get("citations"):
        rows.append(("citation validity ([n] names a source)", fmt(g.get("citation_validity")), str(g["citations"])))
        rows.append(("citation support (source supports sentence)", fmt(g.get("citation_support")), str(g["citations"])))
    if g.get("citation_precision") is not None or g.get("citation_recall") is not None:
        rows.append(("citation precision (cited sources that support)", fmt(g.get("citation_precision")),
                     str(g.get("cited", ""))))
        rows.append(("citation recall (supported sentences that cite)", fmt(g.get("citation_recall")),
                     str(g.get("claims_supported", ""))))
        rows.append(("sentences no source supports (marked)", str(g.get("unsupported_sentences", 0)), ""))
    if "judge_groundedness" in g:
        rows.append(("LLM judge groundedness", fmt(g["judge_groundedness"]), str(g.get("judge_n", ""))))
        rows.append(("LLM judge correctness", fmt(g.get("judge_correct")), str(g.get("judge_n", ""))))
    ref = metrics.get("refusal", {})
    conf = ref.get("confusion")
    if conf:
        rows.append(("refusal accuracy", fmt(conf.get("accuracy")), str(conf["n"])))
        rows.append(("refusal precision / recall / F1 (unanswerable = positive)",
                     f"{fmt(conf.get('precision'))} / {fmt(conf.get('recall'))} / {fmt(conf.get('f1'))}", str(conf["n"])))
        rows.append(("refusal confusion TP / FP / FN / TN",
                     f"{conf['tp']} / {conf['fp']} / {conf['fn']} / {conf['tn']}", ""))
    flagged = ref.get("flagged")
    if flagged:
        answerable = flagged["fp"] + flagged["tn"]
        rows.append(("refused or low confidence: unanswerable / answerable",
                     f"{fmt(flagged['recall'])} / {fmt(flagged['fp'] / answerable if answerable else None)}",
                     str(flagged["n"])))
    if ref.get("roc"):
        rows.append(("answerability ROC AUC", fmt(ref["roc"].get("auc")), ""))
    th = ref.get("threshold")
    if th:
        labelled = conf["n"] if conf else 0
        rows.append(("refusal threshold: current -> recommended",
                     f"{fmt(ref.get('current_threshold'), 2)} -> {fmt(th['threshold'], 3)}",
                     f"max {th['criterion']}" + (f"; a hint only: {labelled} labelled questions"
                                                 if labelled < SMALL_SAMPLE else "")))
    lat = metrics.get("latency", {})
    for stage in ("retrieval", "generation", "total"):
        if lat.get(stage):
            rows.append((f"latency {stage} p50 / p95", f"{fmt_seconds(lat[stage]['p50'])} / {fmt_seconds(lat[stage]['p95'])}",
                         str(lat[stage]["n"])))
    return rows


def console_table(result) -> str:
    rows = headline(result.metrics)
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [f"{label:<{width}}  {value:>{vwidth}}  {n}".rstrip() for label, value, n in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- comparison


def compare_runs(summary: dict, rows: list[dict], other_dir: Path) -> dict:
    """Per-metric deltas and per-question flips of this run against the run in ``other_dir``."""
    other_summary, other_rows = load_run(other_dir)
    before = M.flatten(other_summary.get("metrics", {}))
    after = M.flatten(summary.get("metrics", {}))
    deltas, timing = [], []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        entry = {"metric": key, "before": b, "after": a, "delta": (a - b) if a is not None and b is not None else None}
        (timing if key.startswith(TIMING_PREFIX) else deltas).append(entry)
    changed_metrics = [d for d in deltas if d["delta"] is None or abs(d["delta"]) > 1e-9]

    old_rows = {r["id"]: r for r in other_rows if not r.get("error")}
    new_rows = {r["id"]: r for r in rows if not r.get("error")}
    changes, counts = [], {f: {"gained": 0, "lost": 0} for f in FLIP_FIELDS}
    answers_changed: list[str] = []
    for qid, new in new_rows.items():
        old = old_rows.get(qid)
        if old is None:
            continue
        if (old.get("answer") or "") != (new.get("answer") or ""):
            answers_changed.append(qid)
        for field in FLIP_FIELDS:
            b, a = old.get(field), new.get(field)
            if b is None or a is None or bool(b) == bool(a):
                continue
            counts[field]["gained" if a else "lost"] += 1
            changes.append({"id": qid, "field": field, "before": bool(b), "after": bool(a),
                            "question": new.get("question", "")[:160]})
    old_settings = other_summary.get("settings", {})
    new_settings = summary.get("settings", {})
    settings_changed = {
        key: {"before": old_settings.get(key), "after": new_settings.get(key)}
        for key in sorted(set(old_settings) | set(new_settings))
        if key not in ("concurrency",) and old_settings.get(key) != new_settings.get(key)
    }
    return {
        "other_run": str(Path(other_dir).resolve()),
        "other_created_at": other_summary.get("created_at"),
        "settings_changed": settings_changed,
        "metric_deltas": deltas,
        "changed_metrics": len(changed_metrics),
        "timing_deltas": timing,
        "question_changes": changes,
        "flip_counts": counts,
        "answers_changed": len(answers_changed),
        "answers_changed_ids": answers_changed,
        "only_in_other": sorted(set(old_rows) - set(new_rows)),
        "only_in_this": sorted(set(new_rows) - set(old_rows)),
        "identical": not changed_metrics and not changes and not answers_changed,
    }


def comparison_text(comparison: dict, limit: int = 20) -> str:
    """The console view of a comparison."""
    lines = [f"compared with {comparison['other_run']}"]
    if comparison["settings_changed"]:
        for key, v in comparison["settings_changed"].items():
            lines.append(f"  setting {key}: {v['before']!r} -> {v['after']!r}")
    changed = [d for d in comparison["metric_deltas"] if d["delta"] is None or abs(d["delta"]) > 1e-9]
    lines.append(f"  metrics changed: {len(changed)} of {len(comparison['metric_deltas'])}")
    for d in changed[:limit]:
        lines.append(f"    {d['metric']:<48} {fmt(d['before'], 4):>8} -> {fmt(d['after'], 4):<8} {fmt_delta(d['delta'])}")
    flips = comparison["question_changes"]
    lines.append(f"  questions changed: {len(flips)} verdict flips, {comparison['answers_changed']} answers differ"
                 + (f" ({', '.join(comparison['answers_changed_ids'][:10])})" if comparison["answers_changed"] else ""))
    for c in flips[:limit]:
        lines.append(f"    {c['id']}: {c['field']} {fmt(c['before'])} -> {fmt(c['after'])}  {c['question'][:70]}")
    if comparison["only_in_this"] or comparison["only_in_other"]:
        lines.append(f"  only in this run: {len(comparison['only_in_this'])}; only in the other: "
                     f"{len(comparison['only_in_other'])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _figure(width: float = 6.4, height: float = 4.2):
    # An Agg canvas on a bare Figure: no pyplot, no global backend switch, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_roc(metrics: dict) -> bytes | None:
    roc = metrics.get("refusal", {}).get("roc")
    if not roc:
        return None
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot()
    ax.plot(roc["fpr"], roc["tpr"], marker="o", color="#1f77b4", label=f"answerability score (AUC {fmt(roc['auc'])})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", label="chance")
    current = metrics["refusal"].get("current_threshold")
    conf = metrics["refusal"].get("threshold", {}) or {}
    if current is not None and conf.get("current"):
        n_pos = metrics["refusal"]["confusion"]["tp"] + metrics["refusal"]["confusion"]["fn"]
        n_neg = metrics["refusal"]["confusion"]["fp"] + metrics["refusal"]["confusion"]["tn"]
        scores = metrics["refusal"].get("scores", {})
        tpr = sum(1 for s in scores.get("unanswerable", []) if s < current) / max(1, n_pos)
        fpr = sum(1 for s in scores.get("answerable", []) if s < current) / max(1, n_neg)
        ax.plot([fpr], [tpr], marker="*", markersize=14, color="#d62728", linestyle="none",
                label=f"current threshold {current:.2f}")
    ax.set_xlabel("false positive rate (answerable questions refused)")
    ax.set_ylabel("true positive rate (unanswerable refused)")
    ax.set_title("ROC: detecting unanswerable questions")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_threshold(metrics: dict) -> bytes | None:
    refusal = metrics.get("refusal", {})
    sweep = refusal.get("sweep")
    if not sweep:
        return None
    fig = _figure(7.2, 5.2)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    xs = [r["threshold"] for r in sweep]
    for key, color in (("precision", "#1f77b4"), ("recall", "#ff7f0e"), ("f1", "#2ca02c")):
        ax.plot(xs, [r[key] if r[key] is not None else float("nan") for r in sweep], label=key,
                color=color, drawstyle="steps-post", marker=".")
    ax.plot(xs, [r["youden_j"] if r["youden_j"] is not None else float("nan") for r in sweep],
            label="Youden J", color="#9467bd", linestyle=":", drawstyle="steps-post")
    current = refusal.get("current_threshold")
    rec = refusal.get("threshold") or {}
    for a in (ax, ax2):
        if current is not None:
            a.axvline(current, color="#d62728", linestyle="--", label="current" if a is ax else None)
        if rec.get("threshold") is not None:
            a.axvline(rec["threshold"], color="#2ca02c", linestyle="-.", label="recommended" if a is ax else None)
    ax.set_ylabel("unanswerable detection")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Refusal threshold on the answerability score (refuse below it)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    scores = refusal.get("scores", {})
    ans, unans = scores.get("answerable", []), scores.get("unanswerable", [])
    ax2.scatter(ans, [1] * len(ans), marker="|", s=300, color="#1f77b4")
    ax2.scatter(unans, [0] * len(unans), marker="|", s=300, color="#d62728")
    ax2.set_yticks([0, 1], ["unanswerable", "answerable"])
    ax2.set_ylim(-0.6, 1.6)
    ax2.set_xlabel("answerability score (best chunk's cosine) / threshold")
    ax2.grid(alpha=0.3, axis="x")
    return _png(fig)


def _bars(groups: dict[str, dict], title: str, xlabel: str) -> bytes | None:
    if not groups:
        return None
    import numpy as np

    series = [("hit", "evidence hit@k"), ("keyword_accuracy", "keyword accuracy"),
              ("refusal_accuracy", "refusal accuracy"), ("accuracy", "overall accuracy")]
    series = [(key, label) for key, label in series if any(g.get(key) is not None for g in groups.values())]
    if not series:
        return None
    names = list(groups)
    fig = _figure(max(6.0, 1.2 * len(names) + 2.5), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        values = [groups[n].get(key) for n in names]
        heights = [v if v is not None else 0.0 for v in values]  # no data: no bar
        ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label)
    ax.set_xticks(x, [f"{n}\n(n={groups[n]['n']})" for n in names], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=min(4, len(series)), loc="upper center")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def plot_languages(metrics: dict) -> bytes | None:
    return _bars(metrics.get("by_language", {}), "By question language", "language")


def plot_sources(metrics: dict) -> bytes | None:
    groups = {name[:22]: g for name, g in metrics.get("by_source", {}).items()}
    return _bars(groups, "By source document", "document")


def plot_latency(rows: list[dict]) -> bytes | None:
    values = {stage: [r.get(f"{stage}_s") for r in rows if r.get(f"{stage}_s") is not None]
              for stage in ("retrieval", "generation", "total")}
    values = {k: v for k, v in values.items() if v}
    if not values:
        return None
    fig = _figure(6.4, 3.4)
    ax = fig.add_subplot()
    ax.boxplot(list(values.values()), tick_labels=list(values), vert=False, showfliers=True)
    ax.set_xlabel("seconds")
    ax.set_title("Latency per question")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


PLOTS = (
    ("roc", "ROC curve of the answerability score", plot_roc),
    ("threshold", "Precision / recall against the refusal threshold", plot_threshold),
    ("languages", "Per-language results", plot_languages),
    ("sources", "Per-document results", plot_sources),
)


# --------------------------------------------------------------------------- the report as blocks


class Doc:
    """A tiny document model rendered both to Markdown and to HTML."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str, cls: str = ""):
        self.blocks.append(("p", text, cls))

    def table(self, headers: list[str], rows: Iterable[Iterable[Any]], classes: list[list[str]] | None = None):
        self.blocks.append(("table", headers, [list(r) for r in rows], classes))

    def img(self, name: str, title: str, png: bytes):
        self.blocks.append(("img", name, title, png))

    def details(self, summary: str, rows: list[tuple[str, str]]):
        self.blocks.append(("details", summary, rows))


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Doc) -> str:
    out: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "table":
            headers, rows = block[1], block[2]
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        elif kind == "img":
            out.append(f"![{block[2]}](plots/{block[1]}.png)")
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(block[1])}</summary>\n")
            out += [f"- **{html.escape(k)}**: {html.escape(v)}" for k, v in block[2]]
            out.append("\n</details>")
        out.append("")
    return "\n".join(out)


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,"Noto Sans CJK SC","Noto Sans CJK KR",sans-serif;
 margin:2rem auto;max-width:1150px;padding:0 1rem;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3rem}h2{margin-top:2rem;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.3rem .55rem;
 text-align:left;vertical-align:top}th{background:#f4f6f8}tr:nth-child(even) td{background:#fafafa}
td.good{background:#e3f4e3!important}td.bad{background:#fbe3e3!important}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0;display:inline-block;vertical-align:top}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}.muted{color:#777;font-size:.9rem}.note{background:#fff8e1;padding:.5rem .8rem;
 border-left:4px solid #f0c000}details{margin:.2rem 0}details summary{cursor:pointer}pre{white-space:pre-wrap;margin:0}
"""


def to_html(doc: Doc, title: str) -> str:
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
             f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{CSS}</style></head><body>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
        elif kind == "p":
            cls = f" class=\"{block[2]}\"" if block[2] else ""
            parts.append(f"<p{cls}>{esc(block[1])}</p>")
        elif kind == "table":
            headers, rows, classes = block[1], block[2], block[3]
            parts.append("<table><thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in headers) + "</tr></thead><tbody>")
            for i, row in enumerate(rows):
                cells = []
                for j, cell in enumerate(row):
                    cls = classes[i][j] if classes and i < len(classes) and j < len(classes[i]) else ""
                    text = str(cell)
                    if cls == "long" and len(text) > 140:
                        cells.append(f"<td><details><summary>{esc(text[:140])}…</summary><pre>{esc(text)}</pre></details></td>")
                        continue
                    cells.append(f"<td class=\"{cls}\">{esc(text)}</td>" if cls else f"<td>{esc(text)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(block[3]).decode("ascii")
            parts.append(f"<figure><img alt=\"{esc(block[2])}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{esc(block[2])}</figcaption></figure>")
        elif kind == "details":
            parts.append(f"<details><summary>{esc(block[1])}</summary><ul>"
                         + "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in block[2]) + "</ul></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _verdict(value: Any) -> str:
    if value is None:
        return ""
    return "good" if value else "bad"


def build_doc(result, plots: dict[str, tuple[str, bytes]]) -> Doc:
    summary, metrics, rows = result.summary, result.metrics, result.rows
    settings = summary["settings"]
    k = metrics.get("k", settings.get("k"))
    doc = Doc()
    doc.h(1, "rag eval report")
    doc.p(f"Run {summary['run_dir']} · {summary['created_at']} · rag {summary['rag_version']}", "muted")
    q = summary["questions"]
    doc.p(f"Questions: {q['path'] or '(in memory)'} ({q['format']}) · {q['evaluated']} evaluated"
          + (f" · {rows_count(q['skipped_rows'])} skipped" if q["skipped_rows"] else "")
          + (f" · {q['resumed']} resumed from an earlier run" if q["resumed"] else ""))

    doc.h(2, "Summary")
    doc.table(["metric", "value", "n"], headline(metrics))

    doc.h(2, "Settings")
    shown = {k2: v for k2, v in settings.items() if k2 not in ("questions",)}
    doc.table(["setting", "value"], [(key, json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else fmt(v))
                                     for key, v in shown.items()])
    idx = summary.get("index", {})
    doc.p(f"Index {idx.get('path')} (version {idx.get('version')}): {idx.get('n_chunks')} chunks of "
          f"{idx.get('n_files')} files, embedder {idx.get('embedder')}, {idx.get('index_type')} index, chunks of "
          f"{(idx.get('chunker') or {}).get('chunk_size')} tokens; updated {idx.get('updated_at')}.")

    ref = metrics.get("refusal", {})
    doc.h(2, "Refusal (unanswerable = positive class)")
    conf = ref.get("confusion")
    if conf:
        doc.table(["", "refused", "answered"], [
            ("unanswerable", f"{conf['tp']} (TP)", f"{conf['fn']} (FN: answered anyway)"),
            ("answerable", f"{conf['fp']} (FP: wrongly refused)", f"{conf['tn']} (TN)"),
        ], [["", "good", "bad"], ["", "bad", "good"]])
        doc.p(f"accuracy {fmt(conf['accuracy'])} · precision {fmt(conf['precision'])} · recall {fmt(conf['recall'])} · "
              f"F1 {fmt(conf['f1'])} · ROC AUC of the answerability score "
              f"{fmt((ref.get('roc') or {}).get('auc'))}")
    else:
        doc.p("No question says whether it is answerable: refusal metrics need an `answerable` field.", "note")
    th = ref.get("threshold")
    if th:
        cur = th.get("current", {})
        change = th.get("change", {})
        doc.table(["threshold (refuse when score is below)", "value", f"F1", "Youden J", "answerable refused",
                   "unanswerable answered"], [
            ("current", fmt(ref.get("current_threshold"), 3), fmt(cur.get("f1")), fmt(cur.get("youden_j")),
             cur.get("answerable_refused", "–"), cur.get("unanswerable_answered", "–")),
            (f"recommended (max {th['criterion']}; any value in {_interval(th['range'])} does the same)",
             fmt(th["threshold"], 3),
             fmt(th.get("f1")), fmt(th.get("youden_j")), th["answerable_refused"], th["unanswerable_answered"]),
        ] + [
            (f"alternative: max {name} (any value in {_interval(alt['range'])})", fmt(alt["threshold"], 3),
             fmt(alt.get("f1")), fmt(alt.get("youden_j")), alt["answerable_refused"], alt["unanswerable_answered"])
            for name, alt in (th.get("alternatives") or {}).items()
        ])
        if change:
            doc.p(f"Moving to {th['threshold']:.3f}: {change['answerable_newly_refused']} answerable questions would "
                  f"newly be refused, {change['answerable_no_longer_refused']} no longer refused; "
                  f"{change['unanswerable_newly_refused']} unanswerable questions would newly be refused, "
                  f"{change['unanswerable_newly_answered']} newly answered. Set it with --min-score or RAG_MIN_SCORE. "
                  f"(The analysis covers refusals by score only; a generator may also refuse on its own.)")
        n_small = conf["n"] if conf else 0
        if n_small < SMALL_SAMPLE:
            doc.p(f"Only {n_small} labelled questions: treat the recommendation as a hint, not a calibration.", "note")
    elif conf:
        doc.p("A recommended threshold needs both answerable and unanswerable questions.", "note")
    for name in ("roc", "threshold"):
        if name in plots:
            doc.img(name, *plots[name])

    doc.h(2, "By question language")
    _group_table(doc, metrics.get("by_language", {}), "language", k)
    if metrics.get("by_generator"):
        doc.h(3, "By generator")
        _group_table(doc, metrics["by_generator"], "generator", k)
    if "languages" in plots:
        doc.img("languages", *plots["languages"])
    doc.h(2, "By source document")
    _group_table(doc, metrics.get("by_source", {}), "document", k)
    if "sources" in plots:
        doc.img("sources", *plots["sources"])

    doc.h(2, "Latency")
    lat = metrics.get("latency", {})
    doc.table(["stage", "p50", "p95", "mean", "max", "n"], [
        (stage, fmt_seconds(v["p50"]), fmt_seconds(v["p95"]), fmt_seconds(v["mean"]), fmt_seconds(v["max"]), v["n"])
        for stage, v in lat.items() if v])
    if "latency" in plots:
        doc.img("latency", *plots["latency"])

    if result.comparison:
        _comparison_section(doc, result.comparison)

    doc.h(2, "Questions")
    table_rows, classes = [], []
    for r in rows:
        rank = r.get("evidence_rank") if r.get("hit") is not None else r.get("source_rank")
        hit = r.get("hit") if r.get("hit") is not None else r.get("source_hit")
        table_rows.append((
            r["id"], r.get("lang") or "", fmt(r.get("answerable")), fmt(r.get("refused")), fmt(r.get("score")),
            "–" if hit is None else (f"@{rank}" if hit else "miss"), fmt(r.get("correct")),
            fmt(r.get("f1")), fmt(r.get("groundedness"), 2), r["question"],
            r.get("error") or (r.get("answer") or ""),
            ", ".join(dict.fromkeys(x["source"] for x in (r.get("retrieved") or [])[:k])),
        ))
        classes.append(["", "", "", _verdict(None if r.get("answerable") is None or r.get("refused") is None
                                             else r["refused"] == (r["answerable"] is False)),
                        "num", _verdict(hit), _verdict(r.get("correct")), "num", "num", "long",
                        "bad" if r.get("error") else "long", "long"])
    doc.table(["id", "lang", "answerable", "refused", "score", "evidence", "correct", "F1", "grounded", "question",
               "answer", "retrieved from"], table_rows, classes)

    problems = summary["questions"].get("problems") or []
    if problems:
        doc.h(2, "Skipped rows of the question file")
        doc.table(["line", "reason"], [(p["line"], p["reason"]) for p in problems])
    doc.p("Metrics: evidence hit = a retrieved chunk contains the gold passage ignoring whitespace; source hit compares "
          "file stems; keyword accuracy = one alternative of every gold group appears in the answer (as text: "
          "\"0.82\" appears in \"0.8246\", so write alternatives as exact as the answer must be); F1 tokenizes "
          "CJK by character; groundedness = share of answer sentences that a retrieved chunk supports (token overlap "
          f">= {M.TOKEN_SUPPORT} or embedding cosine >= {M.COSINE_SUPPORT}); citation support = the cited source "
          "supports its sentence. Refusal treats 'unanswerable' as the positive class; the answerability score "
          "combines the best dense cosine, the question words the top chunks hold, the words the corpus knows and "
          "whether the best passage holds the kind of answer asked for (rag/answerability.py).", "muted")
    return doc


def _interval(bounds) -> str:
    low, high = bounds
    return f"({'-inf' if low is None else f'{low:.4f}'}, {'+inf' if high is None else f'{high:.4f}'}]"


def _group_table(doc: Doc, groups: dict, label: str, k: int) -> None:
    if not groups:
        doc.p("(no data)", "muted")
        return
    doc.table([label, "n", "answerable", f"hit@{k}", "MRR", "source hit", "keyword acc.", "F1", "grounded",
               "citation prec.", "citation rec.", "refusal acc.", "accuracy"], [
        (name, g["n"], g["answerable"], fmt(g["hit"]), fmt(g["mrr"]), fmt(g["source_hit"]), fmt(g["keyword_accuracy"]),
         fmt(g["f1"]), fmt(g["groundedness"]), fmt(g.get("citation_precision")), fmt(g.get("citation_recall")),
         fmt(g["refusal_accuracy"]), fmt(g["accuracy"]))
        for name, g in groups.items()])


def _comparison_section(doc: Doc, comparison: dict) -> None:
    doc.h(2, "Comparison with an earlier run")
    doc.p(f"Against {comparison['other_run']} ({comparison.get('other_created_at')}). "
          f"{comparison['changed_metrics']} of {len(comparison['metric_deltas'])} metrics changed; "
          f"{len(comparison['question_changes'])} verdict flips; {comparison['answers_changed']} answers differ."
          + (" The runs agree on every metric and every question." if comparison["identical"] else ""))
    if comparison["settings_changed"]:
        doc.table(["setting", "before", "after"], [(k, fmt(v["before"]), fmt(v["after"]))
                                                  for k, v in comparison["settings_changed"].items()])
    rows, classes = [], []
    for d in comparison["metric_deltas"]:
        rows.append((d["metric"], fmt(d["before"], 4), fmt(d["after"], 4), fmt_delta(d["delta"])))
        delta = d["delta"]
        classes.append(["", "num", "num", "num" if not delta or abs(delta) < 1e-9 else ("num good" if delta > 0 else "num bad")])
    doc.details(f"metric deltas ({len(rows)} metrics; higher is not always better: e.g. refused counts)",
                [(r[0], f"{r[1]} -> {r[2]} ({r[3]})") for r in rows])
    changed = [(r, c) for r, c in zip(rows, classes) if r[3] not in ("0",)]
    if changed:
        doc.table(["changed metric", "before", "after", "delta"], [r for r, _ in changed], [c for _, c in changed])
    timing = [d for d in comparison["timing_deltas"] if d["metric"].endswith((".p50", ".p95"))]
    if timing:
        doc.table(["timing (varies run to run)", "before", "after", "delta"],
                  [(d["metric"], fmt_seconds(d["before"]), fmt_seconds(d["after"]), fmt_delta(d["delta"])) for d in timing])
    if comparison.get("answers_changed_ids"):
        doc.p("Answer text differs (same verdicts unless listed below): "
              + ", ".join(comparison["answers_changed_ids"][:50]))
    if comparison["question_changes"]:
        doc.table(["question", "verdict", "before", "after", "text"],
                  [(c["id"], c["field"], fmt(c["before"]), fmt(c["after"]), c["question"]) for c in comparison["question_changes"]],
                  [["", "", _verdict(c["before"]), _verdict(c["after"]), ""] for c in comparison["question_changes"]])


def write_reports(result) -> dict[str, Path]:
    """report.md, report.html and plots/*.png in the run folder."""
    run_dir: Path = result.run_dir
    plots: dict[str, tuple[str, bytes]] = {}
    for name, title, make in PLOTS:
        png = make(result.metrics)
        if png:
            plots[name] = (title, png)
    latency = plot_latency(result.rows)
    if latency:
        plots["latency"] = ("Latency per question", latency)
    folder = run_dir / "plots"
    folder.mkdir(exist_ok=True)
    for name, (_, png) in plots.items():
        (folder / f"{name}.png").write_bytes(png)
    doc = build_doc(result, plots)
    (run_dir / REPORT_MD).write_text(to_markdown(doc), encoding="utf-8")
    (run_dir / REPORT_HTML).write_text(to_html(doc, f"rag eval · {run_dir.name}"), encoding="utf-8")
    return {"md": run_dir / REPORT_MD, "html": run_dir / REPORT_HTML}
