"""The reward probe: its rates on toy scorers whose behaviour is known, the generic-reply file reader, and on a real MESC
sample the seven criteria (local and cross-encoder) must not let templates or replies of other dialogues beat the real
counsellor."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import numpy as np
import pytest

from mmrl.errors import DataError
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context
from rewards.probe import MEAN, reward_probe
from rewards.registry import FunctionReward


def _scorer(name, fn):
    return FunctionReward(
        lambda contexts, replies: [fn(c, r) for c, r in zip(contexts, replies)], name=name, version="1", score_range=(0.0, 1.0)
    )


def _contexts(n: int = 12) -> list[Context]:
    topics = ["garden", "brother", "exam", "divorce", "piano", "boat", "rent", "wedding", "dog", "surgery", "debt", "move"]
    return [Context(f"I keep worrying about the {topics[i]}.", reference=f"Tell me what worries you about the {topics[i]} exactly.",
                    dialogue_id=str(i)) for i in range(n)]  # fmt: skip


def test_rates_of_toy_scorers():
    """An overlap scorer finds the real reply; a length scorer loves templates, fails shorter-better pairs and filler flips."""

    def overlap(context, reply):  # the topic word: the only word of the utterance that varies between contexts
        topic = re.findall(r"[a-z]+", context.client_utterance.lower())[-1]
        return 1.0 if topic in reply.lower() else 0.0

    def length(context, reply):
        return min(1.0, len(reply.split()) / 100)

    contexts = _contexts()
    pairs = {"overlap": [(contexts[0], "The garden.", "Let us talk about something else entirely today, shall we?")],
             "length": [(contexts[1], "Your brother.", "Something else entirely, shall we talk about it now?")]}  # fmt: skip
    generics = {"long": ["word " * 60], "short": ["Hm."]}
    report = reward_probe(contexts, {"overlap": _scorer("overlap", overlap), "length": _scorer("length", length)}, pairs=pairs,
                          generics=generics, fillers=["I am here for you and I am listening to every word you say."])  # fmt: skip
    assert report["recall_at_1"]["overlap"] == 1.0 and report["other_win"]["overlap"] == 1.0
    assert report["template_win"]["length"]["by_style"] == {"long": 1.0, "short": 0.0}
    assert report["template_win"]["overlap"]["worst"] == 0.0
    assert report["pairs"]["length"]["accuracy_shorter_better"] == 0.0 and report["pairs"]["overlap"]["accuracy"] == 1.0
    assert report["pairs"]["length"]["longer_wins"] == 0.0 and report["filler_flip"]["overlap"] == 0.0
    assert MEAN not in report["recall_at_1"]  # the seven-criteria mean only when all seven are scored


def test_a_failing_scorer_stops_the_probe():
    broken = FunctionReward(lambda c, r: [None] * len(r), name="broken", version="1", score_range=(0.0, 1.0))
    with pytest.raises(RuntimeError, match="broken failed"):
        reward_probe(_contexts(), {"broken": broken})


def test_other_replies_need_a_second_dialogue():
    from mmrl.errors import ConfigError
    from rewards.probe import other_replies

    same = [Context("Hi.", reference="Hello.", dialogue_id="a")] * 3
    with pytest.raises(ConfigError, match="at least two dialogues"):
        other_replies(same, 1, random.Random(0))
    assert other_replies([*same, Context("Hey.", reference="Yes?", dialogue_id="b")], 2, random.Random(0))[0] == ["Yes?", "Yes?"]


def test_generics_file_errors_name_the_field(tmp_path):
    from rewards.cli import _read_generics

    path = tmp_path / "generics.json"
    path.write_text(json.dumps({"generic": {"validating": ["That sounds hard."]}, "fillers": "not a list"}))
    with pytest.raises(DataError, match="fillers"):
        _read_generics(path)
    path.write_text(json.dumps({"generic": {"validating": []}, "fillers": ["x"]}))
    with pytest.raises(DataError, match="generic"):
        _read_generics(path)


@pytest.fixture(scope="module")
def mesc_report(mesc_corpus):
    from rewards.probe import probe_contexts
    from rewards.registry import get_reward

    contexts = probe_contexts(mesc_corpus.split("test"))[::3]
    scorers = {name: get_reward(name) for name in (*TRUST_CRITERIA, "context_fit")}
    return reward_probe(contexts, scorers)


def test_templates_do_not_beat_the_real_counsellor_on_mesc(mesc_report):
    wins = mesc_report["template_win"][MEAN]
    print(f"template win of the seven-criteria mean on {mesc_report['contexts']} MESC test turns: {wins}")
    assert wins["mean"] <= 0.2 and wins["worst"] <= 0.4, wins  # criteria v6 on all 245 turns: 0.10 / 0.27


def test_replies_of_other_dialogues_do_not_beat_the_real_one_on_mesc(mesc_report):
    other, recall = mesc_report["other_win"], mesc_report["recall_at_1"]
    print(f"beats other: {other}\nrecall@1 of 10: {recall}")
    assert other[MEAN] >= 0.7 and other["reliability"] >= 0.7 and other["context_fit"] >= 0.75
    assert recall[MEAN] >= 0.3 and recall["reliability"] >= 0.4 and recall["context_fit"] >= 0.4


def test_real_counsellor_replies_are_not_scored_near_zero(mesc_report):
    assert all(mesc_report["low_share"][name] <= 0.1 for name in TRUST_CRITERIA), mesc_report["low_share"]


def test_probe_command_prints_json(mesc_dir):
    out = subprocess.run([sys.executable, "-m", "mmrl.cli", "rewards", "probe", "--data", str(mesc_dir), "--limit", "30", "--json"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["contexts"] == 30 and set(report["pairs"]) == set(TRUST_CRITERIA)
    assert all(abs(p["longer_wins"] - 0.5) <= 0.1 for p in report["pairs"].values())
    assert np.isfinite(report["template_win"][MEAN]["mean"])


@pytest.fixture(scope="module")
def cross_report(mesc_corpus):
    from rewards.cross_encoder import ARTEFACT
    from rewards.fit_encoder import ARTEFACT as FIT_ARTEFACT
    from rewards.probe import probe_contexts
    from rewards.registry import get_reward

    if not (ARTEFACT.is_file() and FIT_ARTEFACT.is_file()):
        pytest.skip("the opt-in cross-encoder / fit-encoder artefacts are not shipped in this checkout")
    contexts = probe_contexts(mesc_corpus.split("test"))[1::5]
    scorers = {name: get_reward(f"cross_{name}") for name in TRUST_CRITERIA}
    scorers["cross_context_fit"] = get_reward("cross_context_fit")
    return reward_probe(contexts, scorers)


def test_the_cross_scorers_keep_templates_and_other_dialogues_below_the_real_counsellor_on_mesc(cross_report):
    wins, other, recall = cross_report["template_win"][MEAN], cross_report["other_win"], cross_report["recall_at_1"]
    print(f"cross_*: template win {wins}\nbeats other: {other}\nrecall@1 of 10: {recall}")
    assert wins["mean"] <= 0.2 and wins["worst"] <= 0.4, wins
    assert other[MEAN] >= 0.7 and other["reliability"] >= 0.75 and other["cross_context_fit"] >= 0.75, other
    assert recall[MEAN] >= 0.3 and recall["reliability"] >= 0.4 and recall["cross_context_fit"] >= 0.4, recall
    assert all(cross_report["low_share"][name] <= 0.1 for name in TRUST_CRITERIA), cross_report["low_share"]
