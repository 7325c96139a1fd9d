"""``mmrl eval`` and ``mmrl compare`` end to end: the tiny policy, an OpenAI-compatible fake server, the comparison files."""

from __future__ import annotations

import csv
import json

import pytest

from mmrl.cli import main
from mmrl.eval.compare import build_prompts
from mmrl.labels import TRUST_CRITERIA
from mmrl.policy.prompts import format_output

TOP_KEYS = {"policy", "data", "split", "prompts", "scored", "parse", "components", "text", "trust", "monitors", "meta"}
TEXT_KEYS = {"bleu2", "rouge1", "rouge2", "rougeL", "meteor", "bertscore_f1", "embedding_similarity"}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _perfect_answers(corpus_dir, max_prompts: int) -> dict[str, str]:
    """The structured block with the gold labels and the reference reply, by the user message of each prompt."""
    prompts = build_prompts(corpus_dir, split="test", max_prompts=max_prompts)
    return {
        messages[-1]["content"]: format_output(c.gold_client_emotion, c.gold_therapist_emotion, c.gold_strategy, c.reference)
        for messages, c in zip(prompts.messages, prompts.contexts)
    }


def test_eval_tiny_policy_reports_every_section_and_counts_parse_failures(corpus_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code, stdout, err = _run(
        capsys, "eval", "--policy", "tiny", "--data", str(corpus_dir), "--split", "test",
        "--max-prompts", "3", "--max-new-tokens", "8", "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert set(report) == TOP_KEYS
    assert (report["policy"], report["split"], report["prompts"]) == ("tiny", "test", 3)
    # the random tiny policy never writes the structured block: every output is a counted failure
    assert report["parse"] == {"ok": 0, "failed": 3, "rate": 0.0}
    for task in ("client_emotion", "therapist_emotion", "strategy"):
        scores = report["components"][task]
        assert scores["accuracy"] == 0.0 and scores["unparsed"] == scores["labelled"] == 3
    assert set(report["text"]) == TEXT_KEYS
    assert set(report["trust"]) == set(TRUST_CRITERIA)
    assert all(set(s) == {"mean", "std", "failures"} for s in report["trust"].values())
    assert isinstance(report["monitors"], dict) and report["monitors"]
    meta = report["meta"]
    assert meta["meteor_matching"] in ("exact+stem", "exact+stem+wordnet") and meta["meteor_note"]
    assert "max_ngram_order:2|" in meta["bleu2"] and "case:lc" in meta["bleu2"]
    assert meta["selection"] == "random subset of 3 (seed 0)" and meta["targets"] > 3
    assert json.loads((out / "report.json").read_text()) == report
    assert "tiny" in (out / "report.md").read_text()
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and not any(s["parsed"] for s in samples)


def test_eval_through_an_openai_compatible_server_with_a_judge(corpus_dir, tmp_path, capsys, chat_server, monkeypatch):
    answers = _perfect_answers(corpus_dir, 4)
    broken = min(answers)
    chat_server.answer = lambda messages: (
        200,
        "Sorry, I cannot help." if messages[-1]["content"] == broken else answers[messages[-1]["content"]],
    )
    chat_server.judge_score = 7
    monkeypatch.setenv("EVAL_KEY", "sk-eval-secret")
    spec = f"openai:counsellor@{chat_server.url}"
    code, stdout, err = _run(
        capsys, "eval", "--policy", spec, "--api-key-env", "EVAL_KEY", "--data", str(corpus_dir), "--max-prompts", "4",
        "--judge", f"openai:judge@{chat_server.url}", "--judge-api-key-env", "EVAL_KEY", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["prompts"] == 4 and report["policy"] == spec
    assert report["parse"] == {"ok": 3, "failed": 1, "rate": 0.75}
    for task in ("client_emotion", "therapist_emotion", "strategy"):
        scores = report["components"][task]
        labelled = scores["labelled"]
        assert scores["unparsed"] == 1 and scores["accuracy"] == pytest.approx((labelled - 1) / labelled)
    assert report["text"]["rougeL"] < 1.0 and report["text"]["bleu2"] > 0.5
    for criterion in TRUST_CRITERIA:
        assert report["trust"][f"judge_{criterion}"] == {"mean": pytest.approx(6 / 9), "std": 0.0, "failures": 0}
    assert report["meta"]["trust_scorers"].startswith("local + judge judge@")
    assert "sk-eval-secret" not in stdout + err
    policy_requests = [r for r in chat_server.requests if r["body"]["model"] == "counsellor"]
    assert len(policy_requests) == 4 and {r["auth"] for r in chat_server.requests} == {"Bearer sk-eval-secret"}


def test_compare_writes_one_table_and_a_plot_for_the_same_prompts(corpus_dir, tmp_path, capsys, chat_server):
    answers = _perfect_answers(corpus_dir, 3)
    chat_server.answer = lambda messages: (200, answers[messages[-1]["content"]])
    out = tmp_path / "cmp"
    remote = f"openai:oracle@{chat_server.url}"
    code, stdout, err = _run(
        capsys, "compare", "--policies", f"tiny,{remote}", "--data", str(corpus_dir), "--split", "test",
        "--max-prompts", "3", "--max-new-tokens", "8", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "comparison.md" in stdout
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["policy"] for r in rows] == ["tiny", remote]
    assert [float(r["parse/rate"]) for r in rows] == [0.0, 1.0]
    assert float(rows[1]["components/strategy/accuracy"]) == 1.0 and float(rows[1]["text/bleu2"]) == pytest.approx(1.0)
    assert rows[0]["text/meteor"] != "" and "trust/empathy/mean" in rows[0]
    table = (out / "comparison.md").read_text()
    assert "`tiny`" in table and f"`{remote}`" in table and "strategy/macro_f1" in table
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reports = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert reports == ["1-tiny", "2-" + reports[1][2:]] and (out / reports[1] / "report.json").is_file()
    same_prompts = [[json.loads(line)["dialogue_id"] for line in (out / d / "samples.jsonl").read_text().splitlines()] for d in reports]
    assert same_prompts[0] == same_prompts[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--policy", "openai:no-url"], "openai:MODEL@URL"),
        (["eval", "--policy", "tiny", "--max-prompts", "0"], "max_prompts must be an integer >= 1"),
        (["compare", "--policies", "tiny", "--out", "x"], "at least two different policies"),
    ],
)
def test_bad_arguments_are_reported_as_mmrl_errors(corpus_dir, capsys, argv, message):
    code, _, err = _run(capsys, *argv, "--data", str(corpus_dir))
    assert code == 2 and err.startswith("mmrl: error:") and message in err


def test_missing_data_is_a_data_error(tmp_path, capsys):
    code, _, err = _run(capsys, "eval", "--policy", "tiny", "--data", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err
