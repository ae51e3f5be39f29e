"""`rag eval`: question files, metrics, the resumable runner, reports, --compare.

The unit tests run without any model. The end-to-end tests answer the shared dev
questions over the shared corpus (the session's ``corpus_txt_index``) with the
extractive generator, which is fast and deterministic; they skip when ../shared is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rag.errors import ConfigurationError, InputError, QuestionFileError
from rag.evaluation import metrics as M
from rag.evaluation.questions import load_questions

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEV_QUESTIONS = SHARED / "eval" / "dev_questions.jsonl"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- question files


DEV_ROWS = [
    {"id": "d01", "lang": "en", "question": "What recall at 0.4?", "source": "000_x.txt", "evidence": "재현율: 0.8197",
     "answer": [["0.8197", "0.82"]], "answerable": True},
    {"id": "d09", "lang": "en", "question": "Which platforms?", "source": "004_y.txt", "evidence": "Dialogflow",
     "answer": [["Dialogflow"], ["Rasa"]], "answerable": True},
    {"id": "d11", "lang": "en", "question": "Boiling point on Mars?", "source": None, "evidence": None,
     "answer": [], "answerable": False},
]


def test_jsonl_dev_schema(tmp_path):
    path = write(tmp_path, "dev.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in DEV_ROWS) + "\n\n")
    qs = load_questions(path)
    assert qs.format == "jsonl" and qs.skipped == 0 and [q.id for q in qs] == ["d01", "d09", "d11"]
    d01, d09, d11 = qs.questions
    assert d01.groups == [["0.8197", "0.82"]] and d01.evidence == ["재현율: 0.8197"] and d01.sources == ["000_x.txt"]
    assert d09.groups == [["Dialogflow"], ["Rasa"]] and d09.answerable is True and d09.line == 2
    assert d11.answerable is False and d11.groups == [] and d11.sources == [] and d11.evidence == []
    assert all(q.lang == "en" and not q.lang_detected for q in qs)


def test_csv_with_json_cells_and_line_numbers(tmp_path):
    path = write(tmp_path, "q.csv", (
        "id,question,answer,source,answerable,notes\n"
        'c1,What batch size?,16,001_a.pdf,yes,first\n'
        'c2,"Which platforms,\nbesides ChatGPT?","[[""Dialogflow""],[""Rasa""]]","[""004_b.txt""]",true,\n'
        "c3,Weather in Seoul?,,,no,\n"
        ",,,,,\n"
        "c4,,16,,,\n"
    ))
    qs = load_questions(path)
    assert [q.id for q in qs] == ["c1", "c2", "c3"]
    c1, c2, c3 = qs.questions
    assert c1.references == ["16"] and c1.groups == [] and c1.sources == ["001_a.pdf"] and c1.meta == {"notes": "first"}
    assert c2.question.startswith("Which platforms,\nbesides") and c2.groups == [["Dialogflow"], ["Rasa"]]
    assert c2.sources == ["004_b.txt"] and c2.line == 3
    assert c3.answerable is False
    assert [(p.line, p.reason) for p in qs.problems] == [(7, "the question is empty")]
    assert c1.lang == "en" and c1.lang_detected  # detected from the question


def test_yaml_with_line_numbers(tmp_path):
    path = write(tmp_path, "q.yaml", (
        "questions:\n"
        "  - id: y1\n"
        "    question: 检索增强生成特别适用于哪些场景?\n"
        "    answer: 客服\n"
        "    sources: [003_c.txt]\n"
        "  - question: How many epochs?\n"
        "    answer: 3\n"
        "  - question: {nested: true}\n"
    ))
    qs = load_questions(path)
    assert qs.format == "yaml" and [q.id for q in qs] == ["y1", "q6"]
    assert qs.questions[0].references == ["客服"] and qs.questions[0].lang == "zh"
    assert qs.questions[1].references == ["3"] and qs.questions[1].line == 6  # a YAML number is taken as text
    assert qs.problems[0].line == 8 and "must be text" in qs.problems[0].reason


def test_ragas_names(tmp_path):
    rows = [{"user_input": "What is LoRA?", "reference": "Low-rank adaptation of the weights.",
             "reference_contexts": ["LoRA freezes the weights", "and trains low-rank matrices"]},
            {"user_input": "Who wrote it?", "ground_truth": "Alice", "retrieved_contexts": ["ignored"]}]
    path = write(tmp_path, "ragas.json", json.dumps(rows))
    qs = load_questions(path)
    first, second = qs.questions
    assert first.question == "What is LoRA?" and first.references == ["Low-rank adaptation of the weights."]
    assert first.evidence == ["LoRA freezes the weights", "and trains low-rank matrices"]
    assert first.answerable is True  # it has a reference answer
    assert second.references == ["Alice"] and second.meta == {"retrieved_contexts": ["ignored"]}
    assert first.id == "q1" and second.id == "q2"
    # also as a {"questions": [...]} object, and as a list in memory
    assert len(load_questions(write(tmp_path, "wrapped.json", json.dumps({"questions": rows})))) == 2
    assert [q.question for q in load_questions(["Only a question?", {"question": "And a dict?"}])] == [
        "Only a question?", "And a dict?"]


def test_bad_rows_are_skipped_with_line_and_reason(tmp_path):
    path = write(tmp_path, "bad.jsonl", "\n".join([
        json.dumps({"id": "ok1", "question": "Fine?"}),
        '{"id": "broken", "question": "unterminated',
        json.dumps({"id": "noq", "answer": "x"}),
        json.dumps({"id": "empty", "question": "   "}),
        json.dumps({"id": "badanswer", "question": "Typed?", "answer": {"text": "x"}}),
        json.dumps({"id": "ok1", "question": "Duplicate id?"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "badbool", "question": "Answerable?", "answerable": "perhaps"}),
        json.dumps({"id": "ok2", "question": "Also fine?", "answer": [["a"], []]}),
        json.dumps({"id": "ok3", "question": "Fine too?"}),
        json.dumps({"id": "number", "question": 5}),
    ]))
    qs = load_questions(path)
    assert [q.id for q in qs] == ["ok1", "ok3"]
    reasons = {p.line: p.reason for p in qs.problems}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert reasons[2] == "invalid JSON (Unterminated string starting at column 30)"
    assert reasons[11] == "'question' must be text, not int"
    assert reasons[3].startswith("no question")
    assert reasons[4] == "the question is empty"
    assert "'answer' must be a string" in reasons[5] and "an object" in reasons[5]
    assert "duplicate id 'ok1'" in reasons[6] and "line 1" in reasons[6]
    assert "expected an object" in reasons[7]
    assert "true or false" in reasons[8]
    assert "empty group" in reasons[9]
    with pytest.raises(QuestionFileError, match=r"bad\.jsonl:2: invalid JSON"):
        load_questions(path, strict=True)


@pytest.mark.parametrize("name, content, message", [
    ("questions.txt", "What?\n", "unknown question file type '.txt'"),
    ("questions.jsonl", "", "is empty"),
    ("blank.jsonl", "\n  \n", "is empty"),
    ("empty.csv", "question,answer\n", "is empty"),
    ("empty.yaml", "# nothing\n", "is empty"),
    ("latin1.jsonl", "caf\xe9".encode("latin-1"), "not UTF-8"),
    ("allbad.jsonl", '{"answer": "x"}\n{"question": ""}\n', "no usable question .2 bad rows"),
    ("noheader.csv", "foo,bar\n1,2\n", "no question column"),
    ("broken.yaml", "questions: [\n", "invalid YAML"),
    ("scalar.json", "42", "expected a list of questions"),
])
def test_unusable_files(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(QuestionFileError, match=message):
        load_questions(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(QuestionFileError, match="no question file at"):
        load_questions(tmp_path / "nope.jsonl")
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    with pytest.raises(QuestionFileError, match="is a folder"):
        load_questions(folder)


def test_cli_reports_file_errors_with_usage_exit_code(tmp_path):
    from rag.evaluation.command import eval_command

    runner = CliRunner()
    result = runner.invoke(eval_command, [str(tmp_path / "missing.jsonl"), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 2
    assert "error: no question file at" in result.output
    result = runner.invoke(eval_command, [str(write(tmp_path, "q.xlsx", "x")), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 2 and "unknown question file type" in result.output
    # a good file but no index: exit 3 (index problem), with the fix in the message
    result = runner.invoke(eval_command, [str(write(tmp_path, "q.jsonl", '{"question": "q?"}\n')),
                                          "--index", str(tmp_path / "idx"), "--generator", "extractive",
                                          "--out", str(tmp_path / "run")])
    assert result.exit_code == 3 and "rag ingest" in result.output


# --------------------------------------------------------------------------- metrics


def test_evidence_hit_rank_mrr_ignore_whitespace():
    chunks = ["nothing here", "the recall was\n재현율:   0.8197 at 0.4", "재현율: 0.8197 again"]
    assert M.evidence_ranks(chunks, ["재현율: 0.8197"]) == [2]
    assert M.ranking_scores([2], k=5) == {"hit": 1.0, "mrr": 0.5, "recall": 1.0}
    assert M.ranking_scores([2], k=1) == {"hit": 0.0, "mrr": 0.0, "recall": 0.0}
    assert M.ranking_scores([None, 3], k=5) == {"hit": 1.0, "mrr": pytest.approx(1 / 3), "recall": 0.5}
    assert M.ranking_scores([], k=5) is None
    # a long reference context cut across chunks still counts where a chunk shares a long run with it
    context = "A" * 10 + " ".join(f"word{i}" for i in range(60))
    assert M.passage_in_chunk(context, "prefix " + " ".join(f"word{i}" for i in range(20, 45)) + " suffix")
    assert not M.passage_in_chunk(context, "word1 word2 unrelated")


def test_source_ranks_compare_file_stems():
    retrieved = ["002_b.pdf", "000_a.pdf", "000_a.pdf"]
    assert M.source_ranks(retrieved, ["000_a.txt"]) == [2]
    assert M.source_ranks(retrieved, ["docs/002_B.txt", "009.txt"]) == [1, None]
    assert M.file_stem("C:\\docs\\x.tar.gz") == "x.tar"


def test_keyword_groups():
    groups = [["Dialogflow"], ["Rasa"]]
    assert M.keyword_groups_match("Try **dialogflow** or RASA.", groups) is True
    assert M.keyword_groups_match("Try Dialogflow.", groups) is False
    assert M.keyword_groups_match("recall 0.82 at 0.4", [["0.8197", "0.82"]]) is True
    # containment, as the question-file format defines it: write alternatives as exact as needed
    assert M.keyword_groups_match("'train_runtime': 843.3063", [["843"]]) is True
    assert M.keyword_groups_match("anything", []) is None
    assert M.keyword_groups_match("localhost: 6789/score", [["localhost:6789/score"]]) is True  # PDF-style spaces


def test_exact_match_and_token_f1_with_cjk():
    assert M.exact_match("The Rasa [1].", ["rasa"]) == 1.0
    assert M.exact_match("Rasa and Dialogflow", ["rasa"]) == 0.0
    assert M.token_f1("检索增强生成", "检索增强") == pytest.approx(0.8)  # 4 of 6 characters, all 4 of the reference
    assert M.token_f1("客服问答 [2]", ["客服"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert M.token_f1("the cat sat", ["a cat sat down"]) == pytest.approx(0.8)
    assert M.token_f1("", ["x"]) == 0.0 and M.token_f1("x", []) is None
    assert M.answer_tokens("XLNet은 BERT보다") == ["xlnet", "은", "bert", "보", "다"]


def test_refusal_confusion():
    c = M.confusion([True, True, False, False, False], [True, False, True, False, False])
    assert (c["tp"], c["fn"], c["fp"], c["tn"]) == (1, 1, 1, 2)
    assert c["precision"] == 0.5 and c["recall"] == 0.5 and c["f1"] == 0.5 and c["accuracy"] == 0.6
    none = M.confusion([False, False], [False, False])
    assert none["precision"] is None and none["recall"] is None and none["f1"] is None and none["accuracy"] == 1.0


def test_roc_auc_known_cases():
    # "unanswerable" is detected by a LOW answerability score
    perfect = M.roc_auc([True, True, False, False], [0.1, 0.2, 0.5, 0.6])
    assert perfect["auc"] == pytest.approx(1.0)
    assert M.roc_auc([True, False, True, False], [0.1, 0.2, 0.3, 0.4])["auc"] == pytest.approx(0.75)
    assert M.roc_auc([True, False], [0.3, 0.3])["auc"] == pytest.approx(0.5)  # a tie is a coin flip
    inverted = M.roc_auc([True, True, False, False], [0.9, 0.8, 0.1, 0.2])
    assert inverted["auc"] == pytest.approx(0.0)
    assert M.roc_auc([False, False], [0.1, 0.2]) is None  # one class only
    fpr, tpr, _ = M.roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6])
    assert list(fpr) == [0, 0, 0.5, 0.5, 1] and list(tpr) == [0, 0.5, 0.5, 1, 1]


def test_threshold_recommendation():
    labels = [True, True, False, False, False]  # unanswerable?
    scores = [0.10, 0.14, 0.24, 0.30, 0.50]
    rec = M.recommend_threshold(labels, scores, current=0.12)
    assert rec["range"] == [0.14, 0.24] and rec["threshold"] == pytest.approx(0.19)
    assert rec["f1"] == 1.0 and rec["youden_j"] == 1.0
    assert rec["current"]["unanswerable_answered"] == 1 and rec["current"]["answerable_refused"] == 0
    assert rec["change"] == {"answerable_newly_refused": 0, "answerable_no_longer_refused": 0,
                             "unanswerable_newly_refused": 1, "unanswerable_newly_answered": 0}
    # overlapping classes: the best F1 trades one answerable refusal for one caught unanswerable
    rec = M.recommend_threshold([True, False, True, False], [0.1, 0.2, 0.3, 0.4], current=0.15)
    assert rec["threshold"] == pytest.approx(0.35) and rec["f1"] == pytest.approx(0.8)
    assert rec["answerable_refused"] == 1 and rec["unanswerable_answered"] == 0
    assert M.recommend_threshold([False, False], [0.2, 0.3]) is None
    youden = M.recommend_threshold([True, False, True, False], [0.1, 0.2, 0.3, 0.4], criterion="youden")
    assert youden["criterion"] == "youden_j" and youden["youden_j"] == pytest.approx(0.5)
    assert set(rec["alternatives"]) == {"youden_j", "accuracy"}
    assert rec["alternatives"]["accuracy"]["threshold"] == pytest.approx(0.35)
    assert rec["alternatives"]["accuracy"]["accuracy"] == pytest.approx(0.75)


def test_groundedness_and_citations():
    chunks = ["Dialogflow and Rasa let you create chatbots without complex programming.",
              "XLNet uses permutation language modeling."]
    sentences = M.split_sentences("Dialogflow and Rasa create chatbots [1]. XLNet uses permutations [1]. "
                                  "The moon is made of cheese [3].")
    assert len(sentences) == 3
    support = M.support_matrix([M.strip_citations(s) for s in sentences], chunks)
    assert M.groundedness(support) == pytest.approx(2 / 3)
    check = M.citation_check(sentences, len(chunks), support)
    assert check["citations"] == 3 and check["citations_valid"] == 2  # [3] names no source
    assert check["citations_supported"] == 1  # sentence 2 cites [1], but [2] supports it
    assert check["cited_sentences"] == 1.0
    assert M.citations("a [1, 2] b [3][4]") == [1, 2, 3, 4]
    # a marker after the full stop cites the sentence it follows (the extractive answers' style)
    assert M.split_sentences("内容查询与推荐等。 [1]\nWithout programming. [2] Rasa too [1].") == [
        "内容查询与推荐等。 [1]", "Without programming. [2]", "Rasa too [1]."]
    # a paraphrase in another language is supported through the embedding cosine
    cos = np.array([[0.7, 0.1]])
    assert M.groundedness(M.support_matrix(["Piattaforme come Dialogflow"], chunks[:2], cos)) == 1.0


def test_percentiles_and_flatten():
    p = M.percentiles([0.1, 0.2, 0.3, None, 0.4])
    assert p["p50"] == pytest.approx(0.25) and p["n"] == 4
    assert M.percentiles([None]) is None
    flat = M.flatten({"a": {"b": 1, "roc": {"auc": 0.5, "fpr": [0, 1]}, "sweep": [1]}, "ok": True, "s": "x"})
    assert flat == {"a.b": 1.0, "a.roc.auc": 0.5, "ok": 1.0}


def test_judge_reply_parsing_and_configuration(monkeypatch):
    from rag.evaluation.runner import LLMJudge, parse_judgement

    got = parse_judgement('Sure: {"claims": 4, "supported": 3, "correct": "true", "reason": "ok"}')
    assert got["grounded"] == 0.75 and got["correct"] is True
    assert "error" in parse_judgement("no json")

    class StubCompletions:
        def create(self, **request):
            self.request = request
            message = type("M", (), {"content": '{"claims": 2, "supported": 1, "correct": null, "reason": "half"}'})
            return type("R", (), {"choices": [type("C", (), {"message": message})]})

    client = type("Client", (), {})()
    client.chat = type("Chat", (), {})()
    client.chat.completions = StubCompletions()
    judge = LLMJudge("judge-model", client=client)
    graded = judge.grade("Q?", "A [1]. B [2].", ["chunk one", "chunk two"], ["ref"])
    assert graded == {"grounded": 0.5, "claims": 2, "supported": 1, "correct": None, "reason": "half"}
    sent = client.chat.completions.request
    assert sent["model"] == "judge-model" and sent["temperature"] == 0.0
    assert "[2] chunk two" in sent["messages"][0]["content"] and "Reference answer: ref" in sent["messages"][0]["content"]

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="--judge needs an OpenAI-compatible endpoint"):
        LLMJudge()


# --------------------------------------------------------------------------- end to end on the shared corpus


def _dev_questions() -> Path:
    if not DEV_QUESTIONS.is_file():
        pytest.skip(f"shared dev questions not found at {DEV_QUESTIONS}")
    return DEV_QUESTIONS


@pytest.fixture(scope="module")
def dev_run(corpus_txt_index, tmp_path_factory):
    """One real run of the dev set, shared by the end-to-end tests below (read-only)."""
    from rag import evaluate

    out = tmp_path_factory.mktemp("eval") / "run1"
    return evaluate(_dev_questions(), index=corpus_txt_index.path, generator="extractive", out=out, progress=False)


def test_real_dev_run(dev_run):
    result = dev_run
    m = result.metrics
    n = len(load_questions(DEV_QUESTIONS))
    assert len(result.rows) == n and result.errors == 0 and result.answered == n
    assert m["counts"]["answerable"] + m["counts"]["unanswerable"] == n
    assert m["retrieval"]["evidence"]["hit@5"] >= 0.5
    assert m["retrieval"]["source"]["hit@5"] >= 0.8
    assert 0 < m["retrieval"]["evidence"]["mrr@5"] <= m["retrieval"]["evidence"]["hit@5"]
    conf = m["refusal"]["confusion"]
    assert conf["tp"] + conf["fp"] + conf["fn"] + conf["tn"] == n
    flagged = m["refusal"]["flagged"]  # refused or answered with the low-confidence note
    assert flagged["tp"] >= conf["tp"] and flagged["fp"] >= conf["fp"] and flagged["n"] == n
    assert all(r["confidence"] in ("high", "low", "none") for r in result.rows)
    assert all((r["confidence"] == "none") == r["refused"] for r in result.rows)
    assert m["refusal"]["roc"]["auc"] is not None and m["refusal"]["threshold"]["threshold"] > 0
    assert m["answer"]["keyword_accuracy_n"] == m["counts"]["answerable"]
    assert m["grounding"]["groundedness"] >= 0.9  # extractive answers quote the chunks
    assert m["grounding"]["citation_validity"] == 1.0
    assert set(m["by_language"]) >= {"en", "ko", "zh"}
    assert m["latency"]["total"]["p50"] > 0 and m["latency"]["retrieval"]["p95"] >= m["latency"]["retrieval"]["p50"]
    run = result.run_dir
    for name in ("run.json", "results.jsonl", "results.csv", "summary.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    import rag

    assert summary["rag_version"] == rag.__version__ and summary["settings"]["generator"] == "extractive"
    assert summary["index"]["n_chunks"] > 0 and summary["index"]["embedder"] == "use-multilingual"
    assert len((run / "results.jsonl").read_text(encoding="utf-8").splitlines()) == n
    assert len((run / "results.csv").read_text(encoding="utf-8").splitlines()) >= n + 1
    html = (run / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 3 and "<script" not in html and "http" not in html.split("<body>")[0]
    assert "ROC" in html and "By question language" in html
    assert "plots/roc.png" in (run / "report.md").read_text(encoding="utf-8")
    # unanswerable questions are refused; their retrieval is still recorded
    refused = [r for r in result.rows if r["answerable"] is False]
    assert refused and all(r["retrieved"] for r in refused)


def test_compare_rerun_shows_zero_deltas(dev_run, corpus_txt_index, tmp_path):
    from rag.evaluation.command import eval_command

    out = tmp_path / "run2"
    result = CliRunner().invoke(eval_command, [
        str(DEV_QUESTIONS), "--generator", "extractive", "--index", str(corpus_txt_index.path),
        "--out", str(out), "--compare", str(dev_run.run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    comparison = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert comparison["changed_metrics"] == 0, [d for d in comparison["metric_deltas"] if d["delta"]]
    assert all(d["delta"] == 0 for d in comparison["metric_deltas"])
    assert comparison["question_changes"] == [] and comparison["settings_changed"] == {}
    assert "Comparison with an earlier run" in (out / "report.html").read_text(encoding="utf-8")
    # the console form of a comparison, against a run with one question's verdicts flipped
    from rag.evaluation.report import compare_runs, comparison_text
    from rag.evaluation.runner import load_run

    summary, rows = load_run(out)
    rows[0] = dict(rows[0], hit=0.0 if rows[0]["hit"] else 1.0)
    changed = compare_runs(summary, rows, dev_run.run_dir)
    assert [c["field"] for c in changed["question_changes"]] == ["hit"]
    assert "1 verdict flips" in comparison_text(changed)


def test_resume_after_a_kill(dev_run, corpus_txt_index, tmp_path):
    from rag import evaluate

    questions = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    subset = write(tmp_path, "subset.jsonl", "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions[-5:]))
    out = tmp_path / "run"
    seen = []

    def kill_after_two(row):
        seen.append(row["id"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # as Ctrl-C or a kill between two questions

    with pytest.raises(KeyboardInterrupt):
        evaluate(subset, index=corpus_txt_index.path, generator="extractive", out=out, progress=False,
                 on_result=kill_after_two)
    logged = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(logged) == 2 and not (out / "summary.json").exists()
    with open(out / "results.jsonl", "a", encoding="utf-8") as log:
        log.write('{"id": "' + questions[-3]["id"] + '", "answer": "half-writ')  # killed mid-line

    asked = []
    result = evaluate(subset, index=corpus_txt_index.path, generator="extractive", out=out, progress=False,
                      on_result=lambda row: asked.append(row["id"]))
    assert result.resumed == 2 and result.answered == 3
    assert sorted(asked) == sorted(q["id"] for q in questions[-5:] if q["id"] not in seen)
    assert [r["id"] for r in result.rows] == [q["id"] for q in questions[-5:]]
    assert len((out / "results.jsonl").read_text(encoding="utf-8").splitlines()) == 5
    # same verdicts as the uninterrupted run of the full set
    full = {r["id"]: r for r in dev_run.rows}
    for row in result.rows:
        assert (row["hit"], row["refused"], row["correct"]) == (full[row["id"]]["hit"], full[row["id"]]["refused"],
                                                              full[row["id"]]["correct"])
    # finished: a third run asks nothing
    again = evaluate(subset, index=corpus_txt_index.path, generator="extractive", out=out, progress=False)
    assert again.answered == 0 and again.resumed == 5
    # other settings in the same folder: refused with a clear message, unless fresh
    with pytest.raises(InputError, match=r"other settings \(k: 5 -> 3\).*--fresh"):
        evaluate(subset, index=corpus_txt_index.path, generator="extractive", out=out, k=3, progress=False)
    fresh = evaluate(subset, index=corpus_txt_index.path, generator="extractive", out=out, k=3, fresh=True,
                     limit=1, progress=False, report=False)
    assert fresh.answered == 1 and fresh.resumed == 0


def test_concurrency_gives_the_same_verdicts(dev_run, corpus_txt_index, tmp_path):
    from rag import evaluate

    questions = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    subset = write(tmp_path, "subset.jsonl", "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions[:4]))
    result = evaluate(subset, index=corpus_txt_index.path, generator="extractive", out=tmp_path / "run",
                      concurrency=2, progress=False, report=False)
    full = {r["id"]: r for r in dev_run.rows}
    assert [r["id"] for r in result.rows] == [q["id"] for q in questions[:4]]
    for row in result.rows:
        assert (row["hit"], row["refused"], row["score"]) == (full[row["id"]]["hit"], full[row["id"]]["refused"],
                                                            full[row["id"]]["score"])


class FakeJudge:
    model = "fake-judge"

    def __init__(self):
        self.calls = 0

    def grade(self, question, answer, chunks, references):
        self.calls += 1
        return {"grounded": 1.0 if chunks else 0.0, "claims": 1, "supported": 1, "correct": bool(references),
                "reason": "fake"}


def test_ragas_csv_run_with_reference_answers_and_a_judge(corpus_txt_index, tmp_path):
    from rag import evaluate

    _dev_questions()
    path = write(tmp_path, "ragas.csv", (
        "user_input,reference,reference_contexts,sources\n"
        "Besides ChatGPT which platforms let you build chatbots without complex programming?,"
        "Dialogflow and Rasa,\"[\"\"There are also other platforms like **Dialogflow** or **Rasa**\"\"]\","
        "004_7fdd1fabdabed2dd.pdf\n"
        "What is the boiling point of water on Mars?,,,\n"
    ))
    judge = FakeJudge()
    result = evaluate(path, index=corpus_txt_index.path, generator="extractive", out=tmp_path / "run",
                      judge=judge, progress=False)
    first, second = result.rows
    assert first["hit"] == 1.0 and first["source_hit"] == 1.0  # .pdf in the file, .txt in the index
    assert first["f1"] is not None and first["exact_match"] == 0.0 and 0 < first["semantic_similarity"] <= 1
    assert first["keyword_correct"] is None and first["correct"] is not None
    assert second["answerable"] is None and second["hit"] is None and second["f1"] is None
    m = result.metrics
    assert m["answer"]["token_f1_n"] == 1 and "semantic_similarity" in m["answer"]
    assert m["refusal"]["confusion"]["n"] == 1  # only the labelled question
    assert judge.calls >= 1 and m["grounding"]["judge_groundedness"] == 1.0
    assert result.settings["judge_model"] == "fake-judge"


# --------------------------------------------------------------------------- settings objects (hash embedder: fast)


def test_a_misspelled_or_bad_setting_fails_before_anything_loads(tmp_path):
    from rag.evaluation.runner import evaluate

    missing = tmp_path / "missing.jsonl"  # would be a QuestionFileError if anything were read first
    with pytest.raises(InputError, match="unknown option temprature: valid options are k, candidates"):
        evaluate(missing, tmp_path / "no-index", temprature=0.1)
    with pytest.raises(InputError, match="temperature=5"):
        evaluate(missing, tmp_path / "no-index", generation={"temperature": 5})
    with pytest.raises(InputError, match="k=0"):
        evaluate(missing, tmp_path / "no-index", k=0)


@pytest.fixture
def hash_index(tmp_path):
    from rag.ingest.pipeline import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.txt").write_text("The bakery feeds its sourdough starter with rye flour every morning. "
                                     "Loaves rest twelve hours before baking.", encoding="utf-8")
    (docs / "orbits.txt").write_text("Jupiter takes almost twelve years to orbit the sun once.", encoding="utf-8")
    ingest([docs], tmp_path / "index", embed_model="hash", progress=False)
    return tmp_path / "index"


def test_settings_objects_and_keyword_options_make_the_same_run(hash_index, tmp_path):
    from rag.evaluation.runner import EvalRun, evaluate
    from rag.settings import GenerationSettings, RetrievalSettings

    questions = write(tmp_path, "q.jsonl", json.dumps({"id": "q1", "question": "How does the bakery feed its "
                      "sourdough starter?", "source": "bakery.txt", "evidence": "rye flour"}) + "\n")
    common = dict(generator="extractive", progress=False, report=False)
    by_objects = evaluate(questions, hash_index, retrieval=RetrievalSettings(k=2, mmr=True),
                          generation=GenerationSettings(temperature=0.0), out=tmp_path / "a", **common)
    by_keywords = evaluate(questions, hash_index, k=2, mmr=True, temperature=0.0, out=tmp_path / "b", **common)

    settings = by_objects.settings
    assert settings == by_keywords.settings
    assert (settings["k"], settings["temperature"], settings["retrieval"]) == (2, 0.0, {"mmr": True})
    assert settings["top_p"] == GenerationSettings().top_p  # the one default, from rag.settings
    assert by_objects.rows[0]["retrieved"][0]["source"] == "bakery.txt" and by_objects.rows[0]["hit"] == 1.0
    # the keyword form reopens the folder the objects made: same fingerprint, nothing asked again
    again = evaluate(questions, hash_index, k=2, mmr=True, temperature=0.0, out=tmp_path / "a", **common)
    assert (again.resumed, again.answered) == (1, 0)

    # one QA pipeline serves every question of a run
    run = EvalRun(questions, hash_index, RetrievalSettings(k=2), GenerationSettings(), generator="extractive",
                  out=tmp_path / "c")
    assert run.qa.retrieval.k == 2 and run.opened is run.qa.index


def test_a_threshold_recommended_from_few_questions_is_called_a_hint(dev_run):
    from rag.evaluation.report import SMALL_SAMPLE, console_table

    assert dev_run.metrics["refusal"]["confusion"]["n"] < SMALL_SAMPLE  # the dev set has 12 questions
    [row] = [line for line in console_table(dev_run).splitlines() if line.startswith("refusal threshold")]
    assert row.endswith(f"a hint only: {dev_run.metrics['refusal']['confusion']['n']} labelled questions")
