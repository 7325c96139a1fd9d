"""Issue 13 item 3: a failed generation is no answer. It is counted, left out of every mean (never scored as an empty
reply worth 0), its sample carries NaN trust scores and the reason, and a run with too many failures exits non-zero."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mmrl.cli import main
from mmrl.errors import EvalError
from mmrl.eval.compare import build_prompts, evaluate
from mmrl.eval.policies import Generation
from mmrl.labels import TRUST_CRITERIA
from mmrl.policy.prompts import format_output


class Scripted:
    """Answers prompt i with ``answers[i]``; None is a failed generation."""

    name = "scripted"

    def __init__(self, answers):
        self.answers = answers

    def generate(self, prompts, *, max_new_tokens):
        texts = [a or "" for a in self.answers[: len(prompts)]]
        return Generation(texts, {i: "HTTP 401 from the server" for i, a in enumerate(self.answers[: len(prompts)]) if a is None})


def test_failed_generations_are_counted_and_left_out_of_the_means(corpus_dir):
    prompts = build_prompts(corpus_dir, split="test", max_prompts=4)
    good = [format_output(c.gold_client_emotion, c.gold_therapist_emotion, c.gold_strategy, c.reference) for c in prompts.contexts]
    full, _ = evaluate(Scripted(good), prompts, max_new_tokens=8)
    half, samples = evaluate(Scripted([good[0], None, good[2], None]), prompts, max_new_tokens=8)
    assert half["scored"] == 2 and half["meta"]["generation_failures"] == 2 and half["parse"] == {"ok": 2, "failed": 0, "rate": 1.0}
    assert half["components"]["client_emotion"]["accuracy"] == 1.0  # not 0.5: the failures are not wrong answers
    for name in TRUST_CRITERIA:
        scored = [samples[i]["trust"][name] for i in (0, 2)]
        assert half["trust"][name]["mean"] == pytest.approx(np.mean(scored))
        assert samples[1]["trust"][name] is None or math.isnan(samples[1]["trust"][name])
    assert samples[1]["generation_failure"] == "HTTP 401 from the server"
    assert full["scored"] == 4 and full["meta"]["generation_failures"] == 0


def test_every_generation_failing_is_an_error(corpus_dir):
    prompts = build_prompts(corpus_dir, split="test", max_prompts=3)
    with pytest.raises(EvalError, match="every one of the 3 generations of 'scripted' failed, e.g.: HTTP 401"):
        evaluate(Scripted([None, None, None]), prompts, max_new_tokens=8)


def test_eval_exits_non_zero_when_too_many_generations_fail(corpus_dir, tmp_path, capsys, chat_server):
    calls = []

    def answer(messages):
        calls.append(1)
        return (
            (200, "Client emotion: sadness\nTherapist emotion: neutral\nStrategy: Approval\nReply: I hear you.")
            if len(calls) == 1
            else (401, "bad key")
        )

    chat_server.answer = answer
    out = tmp_path / "eval"
    code = main(["eval", "--policy", f"openai:m@{chat_server.url}", "--data", str(corpus_dir), "--split", "test", "--max-prompts", "3",
                 "--max-new-tokens", "8", "--out", str(out), "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and "too many failed generations" in captured.err and "m@" in captured.err
    report = json.loads((out / "report.json").read_text())  # written before the exit, for diagnosis
    assert report["scored"] == 1 and report["meta"]["generation_failures"] == 2
