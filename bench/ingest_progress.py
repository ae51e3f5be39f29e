"""What the ingest's progress bar and resume checkpoints cost.

Whole-corpus ingests (10 files, ``rebuild=True`` into a fresh folder, the embedder
already loaded), in rounds that interleave four configurations so that a change in
the machine's load hits them alike:

  bar          the default: Embedding bar moving per micro-batch, checkpoints written
  no bar       progress=False (what --quiet and --json run)
  no bar, no checkpoints   as above, Checkpoints.save a no-op
  old calls    as above, and one encode call per queue batch (MICRO_BATCH_CHUNKS
               unbounded): the worker's calls before the micro-batches

The bar writes to a discarded stream: its formatting is counted, a terminal's drawing
is not. Wall and CPU seconds (this process: the parse workers are not counted) per
configuration: median and min over the rounds. On a shared machine these move by more
than the bar could cost, so the time spent inside the bars' own calls (tqdm's
constructor, update, refresh, set_postfix_str, close) is also summed during the "bar"
runs: that is the bar's cost without the noise. Likewise the checkpoint writes (on
their own thread, beside the embedding) are timed and sized in the "no bar" runs.

    python bench/ingest_progress.py              # 3 rounds
    python bench/ingest_progress.py --rounds 5
    python bench/ingest_progress.py --quick      # 1 round, text files only
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import common

common.setup_path()

CONFIGS = ["bar", "no bar", "no bar, no checkpoints", "old calls"]


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=3, help="rounds of the four configurations (default 3)")
    args = p.parse_args()
    log = common.Log(args.quiet or args.json)
    rounds = 1 if args.quick else args.rounds
    files = common.corpus_files("txt") + ([] if args.quick else common.corpus_files("pdf"))

    from rag.embedders import get_embedder
    from rag.ingest import checkpoint
    from rag.ingest.pipeline import ingest
    from rag.ingest.run import _EmbeddingWorker

    get_embedder("use-multilingual")  # loaded once, outside the timings
    in_bar = _BarTimer()
    save, micro = checkpoint.Checkpoints.save, _EmbeddingWorker.MICRO_BATCH_CHUNKS
    work = Path(tempfile.mkdtemp(prefix="bench-progress-"))
    wall: dict[str, list[float]] = {c: [] for c in CONFIGS}
    cpu: dict[str, list[float]] = {c: [] for c in CONFIGS}
    chunks = 0
    loads = []

    saving = {"seconds": 0.0, "files": 0, "bytes": 0}

    def timed_save(self, cp) -> None:
        t0 = time.perf_counter()
        save(self, cp)
        saving["seconds"] += time.perf_counter() - t0
        saving["files"] += 1
        saving["bytes"] += self.entry_file(cp.path).stat().st_size

    def one(config: str, n: int) -> None:
        nonlocal chunks
        checkpoint.Checkpoints.save = (save if config == "bar" or (config == "no bar" and n < 0) else
                                       timed_save if config == "no bar" else (lambda self, cp: None))
        _EmbeddingWorker.MICRO_BATCH_CHUNKS = micro if config != "old calls" else 10**9
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull), \
                (in_bar if config == "bar" and n >= 0 else contextlib.nullcontext()):
            c0, t0 = time.process_time(), time.perf_counter()
            summary = ingest(files, work / f"{n}-{CONFIGS.index(config)}", rebuild=True,
                             progress=(config == "bar"))
            if n >= 0:  # not the warm-up
                wall[config].append(time.perf_counter() - t0)
                cpu[config].append(time.process_time() - c0)
        chunks = summary.chunks

    try:
        one("no bar", -1)  # warm-up: caches, the parse pool's first spawn
        for n in range(rounds):
            order = CONFIGS[n % 4:] + CONFIGS[:n % 4]  # each configuration goes first once in four
            for config in order:
                one(config, n)
                log(f"round {n + 1}/{rounds} {config}: {wall[config][-1]:.2f} s wall, {cpu[config][-1]:.2f} s CPU")
            loads.append(common.load_average())
    finally:
        checkpoint.Checkpoints.save, _EmbeddingWorker.MICRO_BATCH_CHUNKS = save, micro

    base = common.median(wall["no bar"])
    rows = [[config, common.median(wall[config]), min(wall[config]), common.median(cpu[config]),
             min(cpu[config]), (common.median(wall[config]) / base - 1) * 100] for config in CONFIGS]
    report = {
        "machine": common.machine(), "files": len(files), "chunks": chunks, "rounds": rounds,
        "load_average_after_each_round": loads,
        "wall_s": {c: common.spread(v) for c, v in wall.items()},
        "cpu_s": {c: common.spread(v) for c, v in cpu.items()},
        "inside_bar_calls_ms_per_ingest": in_bar.seconds / rounds * 1000,
        "bar_calls_per_ingest": in_bar.calls / rounds,
        "checkpoint_writes_ms_per_ingest": saving["seconds"] / rounds * 1000,
        "checkpoint_mb_per_ingest": saving["bytes"] / rounds / 1e6,
    }
    text = (f"{len(files)} files, {chunks} chunks, {rounds} round(s); load after each round: {loads}\n\n"
            + common.table(["configuration", "wall s (median)", "wall s (min)", "CPU s (median)", "CPU s (min)",
                            "wall vs no bar %"], rows)
            + f"\n\ninside the bars' calls: {in_bar.seconds / rounds * 1000:.1f} ms per ingest "
              f"({in_bar.calls / rounds:.0f} calls), {in_bar.seconds / rounds / common.median(wall['bar']) * 100:.3f}% "
              f"of its median wall time"
            + f"\ncheckpoint writes (own thread): {saving['seconds'] / rounds * 1000:.0f} ms per ingest, "
              f"{saving['files'] / rounds:.0f} files, {saving['bytes'] / rounds / 1e6:.1f} MB")
    common.emit("ingest_progress", report, text, args.json)


class _BarTimer:
    """Sums the time spent inside tqdm's own methods while active (outermost calls only:
    update calls refresh; per thread: the embedding worker moves its bar)."""

    METHODS = ("__init__", "update", "refresh", "set_postfix_str", "close")

    def __init__(self):
        import threading

        self.seconds, self.calls, self._saved = 0.0, 0, {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def __enter__(self):
        from tqdm import std

        for name in self.METHODS:
            original = self._saved[name] = getattr(std.tqdm, name)
            setattr(std.tqdm, name, self._timed(original))
        return self

    def __exit__(self, *exc):
        from tqdm import std

        for name, original in self._saved.items():
            setattr(std.tqdm, name, original)
        return False

    def _timed(self, original):
        def timed(*args, **kwargs):
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._local.depth = depth
                if depth == 0:
                    with self._lock:
                        self.seconds += time.perf_counter() - t0
                        self.calls += 1
        return timed


if __name__ == "__main__":
    main()
