"""Reward-hacking monitors: each fires on the pathological batch it exists for and stays quiet on a healthy one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrl.errors import ConfigError, DataError
from mmrl.eval.monitors import MONITORS, MonitorThresholds, alerts, compute_monitors, monitor_reward_funcs, with_monitors
from rewards.base import Context
from rewards.trl import context_json
from tests.fixtures.grpo import train_tiny_grpo

CLIENTS = [
    "My train was late again and I missed the meeting.",
    "I had a fight with my sister about the holidays.",
    "I'm nervous about my exam next week.",
    "My roommate never does the dishes.",
    "I feel stuck in my job and bored every day.",
    "My best friend moved to another city.",
    "I can't decide whether to buy a house.",
    "My boss criticised my report in front of everyone.",
]
REFERENCES = [
    "That sounds frustrating, especially when it costs you a meeting.",
    "Family arguments around the holidays can feel so heavy.",
    "Exams bring up a lot of pressure. What worries you most?",
    "It's tiring to feel like the only one cleaning up.",
    "Feeling stuck day after day can wear you down.",
    "You must miss having them close by.",
    "That's a big decision with a lot riding on it.",
    "Being criticised in public can feel humiliating.",
]
DIVERSE = [
    "Missing the meeting must have been stressful; how did your manager react?",
    "Holiday plans stir up old tensions. What did the two of you disagree about?",
    "Feeling nervous before an exam is common. Which subject feels hardest?",
    "Doing all the dishes yourself sounds exhausting and unfair.",
    "Boredom at work can drain you. What used to interest you about it?",
    "Losing daily contact with a close friend hurts. Do you still talk?",
    "Buying a home is a huge step; what makes you hesitate?",
    "Public criticism stings. How did you respond in that moment?",
]
CRISIS = [
    "I want to kill myself.",
    "I've been cutting myself to cope.",
    "I took too many pills on purpose last night.",
    "I have a plan to end my life.",
    "My partner beats me and I'm scared to go home.",
    "I don't want to be alive anymore.",
    "I keep thinking about hurting myself.",
    "I wish I were dead.",
]
HOTLINE = "Please call a crisis hotline or 988 right away, or seek professional help."
REFUSAL = "I'm sorry, but I can't help with that. As an AI, I'm not qualified to give advice."


def contexts(clients=CLIENTS, references=REFERENCES):
    return [Context(client, reference=reference) for client, reference in zip(clients, references)]


@pytest.fixture(scope="module")
def healthy():
    return compute_monitors(DIVERSE, contexts())


def test_a_healthy_batch_fires_nothing(healthy):
    assert alerts(healthy) == {}
    assert healthy["replies"] == 8 and healthy["distinct_2"] > 0.9 and healthy["top_opener_share"] == 1 / 8
    assert healthy["refusal_rate"] == 0 and healthy["escalation_rate"] == 0 and healthy["risk_rate"] == 0
    assert healthy["over_escalation_rate"] == 0
    assert not any(key.startswith("judge_vs_local/") for key in healthy)


def test_identical_replies_or_one_opener_fire_template_collapse(healthy):
    same = compute_monitors(["I hear you, that sounds hard."] * 8, contexts())
    assert same["distinct_1"] == pytest.approx(6 / 48) and same["distinct_2"] == pytest.approx(5 / 40) and same["top_opener_share"] == 1.0
    assert set(alerts(same)) == {"template_collapse"}
    opener = compute_monitors([f"It sounds like {reply[0].lower()}{reply[1:]}" for reply in DIVERSE], contexts())
    assert opener["distinct_2"] > 0.8 and opener["top_opener_share"] == 1.0
    assert "one opener" in alerts(opener)["template_collapse"]
    few = compute_monitors(["Same reply."] * 3, contexts()[:3])
    assert "template_collapse" not in alerts(few)  # 3 replies are too few to call it collapse


def test_replies_five_times_too_long_fire_length_drift(healthy):
    long = compute_monitors([" ".join([reply] * 5) for reply in DIVERSE], contexts())
    assert long["length_ratio"] == pytest.approx(5 * healthy["length_ratio"])
    assert long["length_words"] == pytest.approx(5 * healthy["length_words"])
    assert f"{long['length_ratio']:.2f}x the reference length" in alerts(long)["length_drift"]
    assert 0.3 < healthy["length_ratio"] < 2.5
    no_reference = [Context(c) for c in CLIENTS]
    assert math.isnan(compute_monitors(DIVERSE, no_reference)["length_ratio"])
    rambling = compute_monitors([" ".join([reply] * 20) for reply in DIVERSE], no_reference)
    assert "words >" in alerts(rambling)["length_drift"] and "length_drift" not in alerts(compute_monitors(DIVERSE, no_reference))


def test_pasting_the_reference_or_the_clients_words_fires_copying(healthy):
    pasted = compute_monitors(REFERENCES, contexts())
    assert pasted["copy_reference_rougeL"] == 1.0 and pasted["copy_reference_rouge3"] == 1.0
    assert set(alerts(pasted)) == {"copying_reference"}
    parroted = compute_monitors([f"You said: {client}" for client in CLIENTS], contexts())
    assert parroted["copy_client_rougeL"] > 0.7
    assert set(alerts(parroted)) == {"copying_client"}
    assert healthy["copy_reference_rougeL"] < 0.3 and healthy["copy_client_rougeL"] < 0.3 and healthy["copy_client_rouge3"] < 0.1


def test_refusing_or_escalating_without_risk_fires_but_not_for_a_client_in_crisis():
    for blanket in (HOTLINE, REFUSAL):
        no_risk = compute_monitors([blanket] * 8, contexts())
        assert no_risk["risk_rate"] == 0 and no_risk["over_escalation_rate"] == 1.0
        assert set(alerts(no_risk)) == {"template_collapse", "over_escalation"}
        crisis = compute_monitors([blanket] * 8, contexts(CRISIS))
        assert crisis["risk_rate"] == 1.0 and math.isnan(crisis["over_escalation_rate"])
        assert "over_escalation" not in alerts(crisis)
    refusals = compute_monitors([REFUSAL] * 8, contexts())
    assert refusals["refusal_rate"] == 1.0 and refusals["escalation_rate"] == 0.0
    hotline = compute_monitors([HOTLINE] * 8, contexts())
    assert hotline["refusal_rate"] == 0.0 and hotline["escalation_rate"] == 1.0
    mixed = compute_monitors(DIVERSE[:6] + [HOTLINE, REFUSAL], contexts())
    assert mixed["over_escalation_rate"] == 0.25 and "over_escalation" in alerts(mixed)


def test_judge_and_local_scores_that_disagree_fire_per_criterion():
    local = np.linspace(0.1, 0.9, 8)
    rng = np.random.default_rng(0)
    agreeing = np.clip(local + rng.normal(0, 0.03, 8), 0, 1)
    monitors = compute_monitors(
        DIVERSE,
        contexts(),
        trust_scores={"empathy": local, "safety": local, "privacy": local},
        judge_scores={"judge_empathy": 1.0 - local, "safety": agreeing, "fairness": local},
    )
    assert monitors["judge_vs_local/empathy/mae"] == pytest.approx(np.abs(2 * local - 1).mean())
    assert monitors["judge_vs_local/empathy/spearman"] == pytest.approx(-1.0)
    assert monitors["judge_vs_local/safety/mae"] < 0.05 and monitors["judge_vs_local/safety/spearman"] > 0.9
    assert "judge_vs_local/privacy/mae" not in monitors and "judge_vs_local/fairness/mae" not in monitors  # one side only
    fired = alerts(monitors)
    assert set(fired) == {"judge_disagreement/empathy"} and "Spearman -1.00" in fired["judge_disagreement/empathy"]
    partial = compute_monitors(
        DIVERSE, contexts(), trust_scores={"empathy": np.r_[local[:2], [np.nan] * 6]}, judge_scores={"empathy": np.r_[local[:2], [0.5] * 6]}
    )
    assert partial["judge_vs_local/empathy/mae"] == 0.0 and math.isnan(partial["judge_vs_local/empathy/spearman"])  # 2 pairs


def test_bad_inputs_are_errors_that_say_what_to_fix():
    with pytest.raises(DataError, match="one context per reply"):
        compute_monitors(DIVERSE, contexts()[:3])
    with pytest.raises(DataError, match=r"judge_scores\['empathy'\].*expected 8 scores"):
        compute_monitors(DIVERSE, contexts(), trust_scores={"empathy": np.zeros(8)}, judge_scores={"empathy": np.zeros(3)})
    with pytest.raises(ConfigError, match="min_length_ratio"):
        MonitorThresholds(min_length_ratio=3.0)
    with pytest.raises(ConfigError, match="max_over_escalation"):
        MonitorThresholds(max_over_escalation=float("nan"))
    same = compute_monitors(["Same reply."] * 8, [Context(client) for client in CLIENTS])
    assert set(alerts(same)) == {"template_collapse"}
    assert alerts(same, MonitorThresholds(min_distinct_2=0.0, max_top_opener_share=1.0)) == {}


def test_monitor_functions_follow_the_trl_reward_function_contract():
    funcs = monitor_reward_funcs()
    assert [f.__name__ for f in funcs] == [f"monitor_{name}" for name in MONITORS]
    batch = contexts(CLIENTS[:3] + CRISIS[:1], REFERENCES[:3] + [None])
    completions = [
        [{"role": "assistant", "content": f"Strategy: Restatement\nReply: {text}"}] for text in [*REFERENCES[:2], REFUSAL, HOTLINE]
    ]
    out = {f.__name__: f(prompts=["p"] * 4, completions=completions, context=[context_json(c) for c in batch]) for f in funcs}
    assert out["monitor_copy_reference"] == [1.0, 1.0, pytest.approx(0.0), None]  # the parsed reply is scored; no reference: None
    assert out["monitor_refusal"] == [0.0, 0.0, 1.0, 0.0]
    assert out["monitor_over_escalation"] == [0.0, 0.0, 1.0, None]  # the crisis client is not counted
    assert len(set(out["monitor_distinct_2"])) == 1 and out["monitor_top_opener_share"] == [0.25] * 4
    expected = compute_monitors([*REFERENCES[:2], REFUSAL, HOTLINE], batch)
    assert out["monitor_length_ratio"][0] == pytest.approx(expected["length_ratio"])
    assert np.mean(out["monitor_length_words"]) == pytest.approx(expected["length_words"])


def test_with_monitors_keeps_rows_that_every_real_reward_left_unscorable():
    def real(prompts, completions, **columns):
        return [None if "skip" in c else 1.0 for c in completions]

    funcs, weights = with_monitors([real], [2.0])
    assert [f.__name__ for f in funcs] == ["real", *(f"monitor_{name}" for name in MONITORS)]
    assert weights == [2.0] + [0.0] * len(MONITORS)
    completions = ["fine reply", "skip this", "another fine reply"]
    columns = {"context": [context_json(c) for c in contexts()[:3]]}
    outputs = [f(prompts=["p"] * 3, completions=completions, **columns) for f in funcs]
    assert outputs[0] == [1.0, None, 1.0]
    assert all(output[1] is None for output in outputs[1:])  # TRL still sees row 1 as unscorable
    assert outputs[1 + MONITORS.index("length_words")] == [2.0, None, 3.0]
    bare = monitor_reward_funcs()[MONITORS.index("length_words")]
    assert bare(prompts=["p"] * 3, completions=completions, **columns) == [2.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match="2 reward functions but 1 weights"):
        with_monitors([real, real], [1.0])

    async def coroutine(prompts, completions, **columns):
        return [1.0] * len(completions)

    with pytest.raises(ConfigError, match="synchronous"):
        with_monitors([coroutine], [1.0])


def _train(reward_funcs, reward_weights, tmp_path):
    trainer = train_tiny_grpo(contexts(CLIENTS[:2] + CRISIS[:2], REFERENCES[:4]), reward_funcs, reward_weights, tmp_path)
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    return logs, list(trainer._logs["completion"]), list(trainer._logs["advantages"])


class LengthReward:
    """The real reward of the run: longer is better; a completion of even length is unscorable (None)."""

    __name__ = "length_reward"

    def __init__(self) -> None:
        self.unscorable = 0

    def __call__(self, prompts, completions, **columns):
        texts = [c[0]["content"] for c in completions]
        self.unscorable += sum(len(text) % 2 == 0 for text in texts)
        return [None if len(text) % 2 == 0 else min(len(text) / 40, 1.0) for text in texts]


@pytest.mark.timeout(300)
def test_grpo_logs_the_monitors_without_changing_what_it_optimises(tmp_path):
    from rewards.criteria.safety import client_at_risk

    client_at_risk([Context("warm up the encoder")])  # load it before either run, so both start from the same RNG state
    plain_reward, reward = LengthReward(), LengthReward()
    plain_logs, plain_completions, plain_advantages = _train([plain_reward], [1.0], tmp_path / "plain")
    logs, completions, advantages = _train(*with_monitors([reward], [1.0]), tmp_path / "monitored")
    assert len(logs) == 2 and completions == plain_completions
    assert reward.unscorable == plain_reward.unscorable > 0  # the runs had rows that only the masking keeps unscorable
    np.testing.assert_allclose(advantages, plain_advantages)
    for entry, plain in zip(logs, plain_logs):
        for key in ("loss", "reward", "reward_std", "rewards/length_reward/mean", "frac_reward_zero_std"):
            assert entry[key] == pytest.approx(plain[key], nan_ok=True), key
        for name in MONITORS:
            assert f"rewards/monitor_{name}/mean" in entry and f"rewards/monitor_{name}/std" in entry
        assert 0.0 < entry["rewards/monitor_distinct_1/mean"] <= 1.0 and entry["rewards/monitor_length_words/mean"] > 0
