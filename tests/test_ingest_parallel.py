"""Files parsed in worker processes (rag.ingest.parallel) give the same index as files
parsed in the ingest's own process: same chunks, ids, order and languages; a bad file
still fails alone; a script that ingests at top level is not run again by the workers.

The ``hash`` embedder is enough here: these tests are about parsing, not semantics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers_pdf import make_pdf

from rag.ingest.parallel import parse_workers
from rag.ingest.pipeline import ingest
from rag.store import read_previous

SAMPLES = {
    "en.txt": "The warranty covers manufacturing defects for two years after purchase. "
              "Claims need the original receipt and the serial number printed under the battery. " * 6,
    "it.md": "# Garanzia\n\nLa garanzia copre i difetti di fabbricazione per due anni dall'acquisto. "
             "Per i reclami servono lo scontrino originale e il numero di serie. " * 6,
    "zh.txt": "保修期为购买后两年，涵盖制造缺陷。索赔时需要提供原始收据和电池下方印刷的序列号。" * 8,
    "ko.txt": "보증 기간은 구입 후 2년이며 제조상의 결함을 보장합니다. 청구 시 원본 영수증과 배터리 아래에 인쇄된 일련 번호가 필요합니다. " * 6,
    "ja.txt": "保証期間は購入後二年間で、製造上の欠陥が対象です。請求には元のレシートとシリアル番号が必要です。" * 8,
}


def _docs(folder: Path) -> Path:
    folder.mkdir()
    for name, text in SAMPLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    make_pdf(folder / "manual.pdf", [
        "Chapter 1. Installation. Mount the bracket with the four screws supplied in the box. " * 5,
        "Chapter 2. Maintenance. Clean the filter every month with lukewarm water and mild soap. " * 5,
    ])
    return folder


def _chunks(index: Path) -> list[tuple]:
    return [(c.id, c.path, c.page, c.start, c.text, c.lang) for c in read_previous(index).chunks]


def test_worker_processes_give_the_same_chunks_as_parsing_in_process(tmp_path):
    docs = _docs(tmp_path / "docs")
    serial = ingest([docs], tmp_path / "serial", embed_model="hash", progress=False, parse_workers=0)
    pooled = ingest([docs], tmp_path / "pooled", embed_model="hash", progress=False, parse_workers=2)

    assert serial.ok and pooled.ok and serial.added == pooled.added == 6
    assert _chunks(tmp_path / "pooled") == _chunks(tmp_path / "serial")
    langs = {Path(path).name: lang for _, path, _, _, _, lang in _chunks(tmp_path / "pooled")}
    assert langs == {"en.txt": "en", "it.md": "it", "zh.txt": "zh", "ko.txt": "ko", "ja.txt": "ja",
                     "manual.pdf": "en"}


def test_a_bad_file_fails_alone_with_the_pool(tmp_path):
    docs = _docs(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a pdf body\n")

    summary = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, parse_workers=2)

    failed = [r for r in summary.reports if r.status == "failed"]
    assert [Path(r.path).name for r in failed] == ["broken.pdf"]
    assert "\n" not in failed[0].line() and failed[0].reason
    assert summary.added == 6


def test_unchanged_files_are_not_parsed_again_by_the_workers(tmp_path):
    docs = _docs(tmp_path / "docs")
    ingest([docs], tmp_path / "index", embed_model="hash", progress=False, parse_workers=2)
    (docs / "en.txt").write_text(SAMPLES["en.txt"] + " One more sentence at the end.", encoding="utf-8")

    again = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, parse_workers=2)

    assert (again.changed, again.unchanged, again.chunks_embedded) == (1, 5, len(
        [c for c in read_previous(tmp_path / "index").chunks if c.path.endswith("en.txt")]))


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path):
    docs = _docs(tmp_path / "docs")
    runs = tmp_path / "runs.log"
    script = tmp_path / "ingest_script.py"
    # no `if __name__ == "__main__":` -- multiprocessing's spawn would run this again in each worker
    script.write_text(textwrap.dedent(f"""
        from rag.ingest.pipeline import ingest
        with open({str(runs)!r}, "a") as log:
            log.write("run\\n")
        s = ingest([{str(docs)!r}], {str(tmp_path / "index")!r}, embed_model="hash", progress=False,
                   parse_workers=2)
        print(s.added)
    """), encoding="utf-8")

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "6"
    assert runs.read_text().splitlines() == ["run"]


def test_workers_only_where_they_pay():
    assert parse_workers(1) == 0  # one file: starting a process costs more than it saves
    assert parse_workers(10, requested=0) == 0
    assert parse_workers(3, requested=8) == 3


def test_a_re_ingest_starts_workers_only_for_the_files_that_changed(tmp_path, monkeypatch):
    import rag.ingest.parallel as parallel

    docs = _docs(tmp_path / "docs")
    first = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, parse_workers=2)
    assert first.ok and first.added == 6

    started = []
    real_pool = parallel.ProcessPoolExecutor
    monkeypatch.setattr(parallel, "ProcessPoolExecutor",
                        lambda workers, **kw: started.append(workers) or real_pool(workers, **kw))
    again = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, parse_workers=2)
    assert again.ok and again.chunks_embedded == 0 and started == []  # nothing changed: no process

    (docs / "en.txt").write_text(SAMPLES["en.txt"] + " Returns are accepted within 30 days.", encoding="utf-8")
    (docs / "it.md").write_text(SAMPLES["it.md"] + " I resi sono accettati entro 30 giorni.", encoding="utf-8")
    changed = ingest([docs], tmp_path / "index", embed_model="hash", progress=False, parse_workers=2)
    assert changed.ok and started == [1]  # two files to parse: one here, one in a worker
    assert any("30 days" in chunk[4] for chunk in _chunks(tmp_path / "index"))


PARSING_THEN_KILLED = """
import sys, time
from pathlib import Path
from rag.ingest.limits import Limits
from rag.ingest.parallel import loaded_files
loads = loaded_files([Path(p) for p in sys.argv[1:]], {}, Limits(), workers=1)
next(loads)  # the first file parsed here, the others handed to the worker process
print("parsing", flush=True)
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_parse_workers_leave_when_the_ingest_is_killed_outright(tmp_path):
    # kill -9 (or the OOM killer) gives the ingest no chance to shut its pool down; its
    # workers, which hold both ends of their task pipe, must not wait on it for ever.
    docs = _docs(tmp_path / "docs")
    files = sorted(str(p) for p in docs.iterdir())
    proc = subprocess.Popen([sys.executable, "-c", PARSING_THEN_KILLED, *files], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "parsing"
        workers = _children(proc.pid)
        assert workers, "no worker process was started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while [p for p in workers if Path(f"/proc/{p}").exists()] and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [p for p in workers if Path(f"/proc/{p}/status").exists()
                 and "Z" not in Path(f"/proc/{p}/status").read_text().split("State:")[1][:4]]
        assert not alive, f"processes {alive} outlived the killed ingest"
    finally:
        proc.kill()
