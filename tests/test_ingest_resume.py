"""Resuming an interrupted ingest, and its progress.

A long ingest killed at 90% (Ctrl-C, ``kill -9``, a crash) keeps the files it had
embedded (rag.ingest.checkpoint); the next run of the same ingest takes them back,
embeds only the rest, and writes the same index an uninterrupted run writes. The
live index is never touched on the way. The embedding bar moves per micro-batch of
chunks, with chunks/s and an ETA.

The two tests that interrupt a real ingest use the real embedder; the glue tests
(which checkpoint is taken, which is not) use the ``hash`` embedder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers_process import wait_until

from rag.cli import main
from rag.ingest.checkpoint import FOLDER
from rag.ingest.pipeline import IngestInterrupted, ingest
from rag.ingest.run import _EmbeddingWorker
from rag.retrieval import search
from rag.store import load_index, read_current
from rag.types import Chunk

REPO_ROOT = Path(__file__).resolve().parents[1]

# The five text files of the shared corpus, as `rag ingest` takes them; 000 goes in first
# so that the interrupted ingest has a live version it must leave alone.
FIRST = "000_bf1f6216752f7de1.txt"

# Micro-batches of 8 chunks: the four files still to embed (119 chunks) finish one after
# another, so that the kill falls between two of them (by default they would be embedded
# in one or two calls and finish together).
KILLABLE_INGEST = """
import sys
from rag.ingest.pipeline import ingest
from rag.ingest.run import _EmbeddingWorker
_EmbeddingWorker.MICRO_BATCH_CHUNKS = 8
ingest([sys.argv[1]], sys.argv[2], progress=False, on_file=lambda r: print(r.line(), flush=True))
"""


def checkpoints(index: Path) -> list[Path]:
    """Finished checkpoint entries (not the temporary files of a write in progress)."""
    return sorted((Path(index) / FOLDER).glob("*/*.npz"))


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def wait_for_a_checkpoint(index: Path, proc: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    wait_until(lambda: bool(checkpoints(index)), proc, log, "a file was checkpointed", timeout)


def same_index(resumed, clean) -> None:
    """Same chunks in the same order, same vectors (to float rounding: batches differ), same terms."""
    assert [c.to_dict() for c in resumed.chunks] == [c.to_dict() for c in clean.chunks]
    np.testing.assert_allclose(resumed.vectors, clean.vectors, atol=2e-6)
    np.testing.assert_array_equal(resumed.window_owner, clean.window_owner)
    np.testing.assert_allclose(resumed.window_vectors, clean.window_vectors, atol=2e-6)
    resumed_terms, clean_terms = resumed.terms.known_vectors(), clean.terms.known_vectors()
    assert sorted(resumed_terms) == sorted(clean_terms)
    np.testing.assert_allclose(np.stack([resumed_terms[t] for t in clean_terms]),
                               np.stack(list(clean_terms.values())), atol=2e-6)


# --- a real ingest, killed and resumed -------------------------------------------------------------


def test_an_ingest_killed_midway_resumes_and_writes_the_index_a_clean_run_writes(
        corpus_dir, corpus_txt_index, shared_dir, tmp_path):
    docs, index = corpus_dir / "txt", tmp_path / "index"
    first = ingest([docs / FIRST], index, progress=False)
    live = load_index(index)

    log = tmp_path / "ingest.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", KILLABLE_INGEST, str(docs), str(index)], cwd=REPO_ROOT,
                                env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_a_checkpoint(index, proc, log)
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 with some files embedded and others not
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    kept = len(checkpoints(index))
    assert 0 < kept < 4, f"{kept} of the 4 new files were checkpointed: the kill should fall midway"

    # the live index is untouched: same version, same chunks, still loads
    assert read_current(index) == first.version
    assert [c.id for c in load_index(index).chunks] == [c.id for c in live.chunks]

    messages = []
    summary = ingest([docs], index, progress=False, on_resume=messages.append)

    assert summary.ok and (summary.added, summary.unchanged) == (4, 1)
    assert messages == [f"resuming: {kept} of 5 files already embedded"]
    assert summary.files_resumed == kept
    new_chunks = summary.chunks - first.chunks
    assert 0 < summary.chunks_embedded == new_chunks - summary.chunks_resumed < new_chunks  # only the rest
    assert not (index / FOLDER).exists()  # the version is live: its checkpoints are gone

    resumed, clean = load_index(index), corpus_txt_index.load()
    same_index(resumed, clean)
    questions = [json.loads(line)["question"]
                 for line in (shared_dir / "eval" / "dev_questions.jsonl").read_text().splitlines()[:8]]
    for question in questions:
        assert ([s.chunk_id for s in search(resumed, question).sources]
                == [s.chunk_id for s in search(clean, question).sources]), question


def test_ctrl_c_says_in_one_line_that_the_ingest_can_be_resumed(corpus_dir, tmp_path):
    docs, index = corpus_dir / "txt", tmp_path / "index"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(docs), "--index", str(index)],
                                cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for_a_checkpoint(index, proc, err)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    output = err.read_text(errors="replace")

    assert proc.returncode == 130, output[-2000:]  # not an abort of the encoder's threads at exit
    assert "Traceback" not in output and "terminate called" not in output
    kept = len(checkpoints(index))
    # the progress bars go to stderr too (they clear their lines with spaces and cursor moves)
    lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).strip() for line in re.split(r"[\r\n]", output)]
    assert [line for line in lines if "resume" in line] == [
        f"interrupted: {kept} of 5 files are embedded and kept; run the same command again to resume"]
    # the bar counted chunks, with a rate and an ETA, before the interrupt
    assert re.search(r"Embedding: +\d+%\|.*\| \d+/\d+ \[\d\d:\d\d<\d\d:\d\d, +[\d.]+chunk/s\]", output), output[-2000:]
    assert not (index / "CURRENT").exists()  # a first ingest: nothing went live

    result = run_cli("ingest", docs, "--index", index)

    assert result.exit_code == 0, result.output
    assert f"resuming: {kept} of 5 files already embedded" in result.output
    assert re.search(r"5 files, 0 pages, \d+ chunks in [\d.]+ s \(\d+ embedded, \d+ resumed, ", result.output)


# --- which checkpoints are taken: the hash embedder ------------------------------------------------


def write_docs(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"note{i}.txt").write_text(
            f"Note {i}. " + " ".join(f"The glacier number {i} moved {j} metres in year {j}." for j in range(120)),
            encoding="utf-8")
    return folder


def interrupted_ingest(docs: Path, index: Path, at_least: int = 2, **options) -> int:
    """An ingest of ``docs`` interrupted (as by Ctrl-C) once ``at_least`` files are checkpointed,
    while the last file is being read. Returns how many files it kept."""
    last = sorted(docs.iterdir())[-1].name

    def on_file(report):
        if Path(report.path).name == last:
            deadline = time.monotonic() + 30
            while len(checkpoints(index)) < at_least and time.monotonic() < deadline:
                time.sleep(0.01)
            raise KeyboardInterrupt

    with pytest.raises(IngestInterrupted) as caught:
        ingest([docs], index, embed_model="hash", progress=False, on_file=on_file, **options)
    assert isinstance(caught.value, KeyboardInterrupt)  # what callers catching Ctrl-C expect
    kept = len(checkpoints(index))
    assert caught.value.line == (f"interrupted: {kept} of {len(list(docs.iterdir()))} files are embedded "
                                 "and kept; run the same command again to resume")
    return kept


def test_a_resumed_hash_ingest_is_identical_to_a_clean_one(tmp_path):
    docs = write_docs(tmp_path / "docs")
    kept = interrupted_ingest(docs, tmp_path / "index")
    messages = []
    summary = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, on_resume=messages.append)
    clean = ingest([docs], tmp_path / "clean", embed_model="hash", progress=False)

    assert messages == [f"resuming: {kept} of 4 files already embedded"]
    assert summary.files_resumed == kept and summary.chunks_embedded + summary.chunks_resumed == clean.chunks
    resumed_index, clean_index = load_index(tmp_path / "index"), load_index(tmp_path / "clean")
    same_index(resumed_index, clean_index)
    np.testing.assert_array_equal(resumed_index.vectors, clean_index.vectors)  # the hash embedder: exactly
    assert not (tmp_path / "index" / FOLDER).exists()


def test_a_changed_file_is_embedded_again_and_the_others_are_resumed(tmp_path):
    docs = write_docs(tmp_path / "docs")
    kept = interrupted_ingest(docs, tmp_path / "index")
    (docs / "note0.txt").write_text("Note 0 was rewritten: the glacier retreated instead.", encoding="utf-8")

    summary = ingest([docs], tmp_path / "index", embed_model="hash", progress=False)

    assert summary.ok and summary.files_resumed == kept - 1  # note0 was among the first embedded
    texts = [c.text for c in load_index(tmp_path / "index").chunks if c.source == "note0.txt"]
    assert texts == ["Note 0 was rewritten: the glacier retreated instead."]


def test_checkpoints_of_other_settings_are_never_used_and_go_once_a_version_is_live(tmp_path):
    docs = write_docs(tmp_path / "docs")
    interrupted_ingest(docs, tmp_path / "index")

    summary = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, chunk_size=200,
                     chunk_overlap=40)

    assert summary.ok and summary.files_resumed == 0 and summary.chunks_embedded == summary.chunks
    assert not (tmp_path / "index" / FOLDER).exists()


def test_a_damaged_checkpoint_is_ignored_and_its_file_embedded_again(tmp_path):
    docs = write_docs(tmp_path / "docs")
    kept = interrupted_ingest(docs, tmp_path / "index")
    damaged = checkpoints(tmp_path / "index")[0]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a machine crash mid-write
    half_written = damaged.with_name(damaged.name + ".tmp-0badc0de")  # what kill -9 during a write leaves
    half_written.write_bytes(b"PK\x03\x04")

    summary = ingest([docs], tmp_path / "index", embed_model="hash", progress=False)

    assert summary.ok and summary.files_resumed == kept - 1
    assert not (tmp_path / "index" / FOLDER).exists()
    clean = ingest([docs], tmp_path / "clean", embed_model="hash", progress=False)
    same_index(load_index(tmp_path / "index"), load_index(tmp_path / "clean"))
    assert summary.chunks == clean.chunks


def test_no_resume_starts_over(tmp_path):
    docs = write_docs(tmp_path / "docs")
    interrupted_ingest(docs, tmp_path / "index")

    result = run_cli("ingest", docs, "--index", tmp_path / "index", "--embed-model", "hash", "--no-resume", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["files_resumed"] == 0 and summary["chunks_embedded"] == summary["chunks"]


def test_checkpoints_of_another_folder_stay_for_its_next_run(tmp_path):
    """An interrupted ingest of one folder, then a whole ingest of another: the first
    folder's work is still there when its ingest is run again."""
    docs, other = write_docs(tmp_path / "docs"), write_docs(tmp_path / "other", 1)
    kept = interrupted_ingest(docs, tmp_path / "index")

    assert ingest([other], tmp_path / "index", embed_model="hash", progress=False).ok
    assert len(checkpoints(tmp_path / "index")) == kept
    assert ingest([docs], tmp_path / "index", embed_model="hash", progress=False).files_resumed == kept


# --- progress ------------------------------------------------------------------------------------


def test_the_embedding_worker_reports_progress_per_micro_batch_across_files(tmp_path):
    from rag.embedders import get_embedder

    embedder = get_embedder("hash")
    steps, finished = [], []
    worker = _EmbeddingWorker(embedder, 200, {}, on_progress=steps.append)
    files = [[Chunk(id=f"{n}-{i}", text=f"Chunk {i} of file {n}. It has two sentences.", path=str(n), source=str(n))
              for i in range(size)] for n, size in enumerate([50, 100, 30])]
    futures = []
    for n, chunks in enumerate(files):
        futures.append(worker.submit(chunks))
        worker.add_terms([f"term{n}"], then=lambda n=n: finished.append((n, futures[n].done())))
    worker.close()

    size = worker.micro_batch
    assert size == _EmbeddingWorker.MICRO_BATCH_CHUNKS  # the hash embedder has one forward thread
    assert sum(steps) == 180 and max(steps) <= size and len(steps) >= 180 // size
    assert [len(f.result()) for f in futures] == [50, 100, 30]
    assert finished == [(0, True), (1, True), (2, True)]  # each file's callback after its vectors
    assert sorted(worker.term_vectors) == ["term0", "term1", "term2"]


def test_quiet_shows_no_bar_and_json_prints_only_the_summary(tmp_path):
    docs = write_docs(tmp_path / "docs")

    quiet = run_cli("ingest", docs, "--index", tmp_path / "a", "--embed-model", "hash", "--quiet")
    as_json = run_cli("ingest", docs, "--index", tmp_path / "b", "--embed-model", "hash", "--json")
    shown = run_cli("ingest", docs, "--index", tmp_path / "c", "--embed-model", "hash")

    assert quiet.exit_code == 0 and quiet.output == ""
    assert as_json.exit_code == 0 and as_json.stderr == ""
    assert json.loads(as_json.stdout)["chunks_embedded"] > 0
    assert "Embedding: 100%" in shown.output and "chunk/s" in shown.output


def test_the_embedding_total_is_estimated_from_the_bytes_still_to_read(tmp_path):
    from rag.ingest.run import _ChunkEstimate

    sizes = {"a.txt": 1000, "b.txt": 2000, "c.pdf": 4000, "live.txt": 9000}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    estimate = _ChunkEstimate()
    estimate.plan([tmp_path / name for name in sizes], live={str(tmp_path / "live.txt"): {}})  # likely unchanged

    estimate.queued = 10
    estimate.loaded(tmp_path / "a.txt", 10)  # 0.01 chunks per text byte; a PDF byte a quarter of that
    assert estimate.total() == 10 + 2000 * 0.01 + 4000 * 0.01 * 0.25
    estimate.queued = 30
    estimate.loaded(tmp_path / "b.txt", 20)
    assert estimate.total() == 30 + 10
    estimate.queued = 36
    estimate.loaded(tmp_path / "c.pdf", 6)
    assert estimate.total() == 36  # everything read: exact
