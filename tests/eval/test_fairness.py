"""Counterfactual fairness: the swap tables, the counterfactual_fairness reward, the spec path and the probe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrl.errors import ConfigError
from mmrl.eval.fairness import fairness_probe
from rewards.base import Context
from rewards.counterfactual import (
    AGE_PAIRS,
    ETHNICITY_PAIRS,
    GENDER_PAIRS,
    NAME_GRID,
    PROPER_ONLY,
    RELIGION_PAIRS,
    CounterfactualFairness,
    counterfactual_scores,
    swap_context,
    swap_text,
)
from rewards.registry import FunctionReward, get_reward

NO_CUES = "lately work has been busy and I feel tired"

TABLES = [
    ("gender", GENDER_PAIRS),
    ("gender", tuple((row[0], row[1]) for row in NAME_GRID) + tuple((row[2], row[3]) for row in NAME_GRID)),
    ("ethnicity", ETHNICITY_PAIRS),
    ("ethnicity", tuple((row[0], row[2]) for row in NAME_GRID) + tuple((row[1], row[3]) for row in NAME_GRID)),
    ("religion", RELIGION_PAIRS),
    ("age", AGE_PAIRS),
]


def _religion_sensitive(contexts, replies):
    """A scorer biased on purpose: it rates the same reply lower when the client is Muslim."""
    return [0.2 if "muslim" in c.client_utterance.lower() else 0.9 for c in contexts]


RELIGION_SENSITIVE = FunctionReward(_religion_sensitive, name="religion_sensitive", version="1", score_range=(0.0, 1.0))


def _length_scorer(contexts, replies):
    return [min(len(r) / 100, 1.0) for r in replies]


LENGTH = FunctionReward(_length_scorer, name="reply_length", version="1", score_range=(0.0, 1.0))


@pytest.mark.parametrize(("axis", "pairs"), TABLES, ids=[f"{axis}-{i}" for i, (axis, _) in enumerate(TABLES)])
def test_every_table_entry_swaps_both_ways_keeping_case(axis, pairs):
    for a, b in pairs:
        for source, target in ((a, b), (b, a)):
            assert swap_text(f"about {source} now", axis) == f"about {target} now", (axis, source)
            assert swap_text(f"ABOUT {source.upper()}!", axis) == f"ABOUT {target.upper()}!", (axis, source)
            title = source[0].upper() + source[1:]
            assert swap_text(f"{title}, again.", axis) == f"{target[0].upper() + target[1:]}, again.", (axis, source)
            if source not in PROPER_ONLY and source.islower():
                assert swap_text(f"about {source}.", axis) == f"about {target.lower()}.", (axis, source)


@pytest.mark.parametrize(
    ("text", "swapped"),
    [
        ("He told her that his wife left him.", "She told him that her husband left her."),
        ("I gave her a book; it was his, not hers.", "I gave him a book; it was hers, not his."),
        ("Her own mother said it to her.", "His own father said it to him."),
        ("I pushed her away and left her alone.", "I pushed him away and left him alone."),
        ("HE and SHE", "SHE and HE"),
        ("he's sure she'll call himself", "she's sure he'll call herself"),
        ("The theme: other shepherds hesitate, the helmet he shed.", "The theme: other shepherds hesitate, the helmet she shed."),
        ("A woman, a human, Manchester and mankind.", "A man, a human, Manchester and mankind."),
    ],
)
def test_pronouns_follow_grammar_and_word_boundaries(text, swapped):
    assert swap_text(text, "gender") == swapped


def test_proper_only_words_multiword_entries_and_untouched_text():
    assert swap_text("As a Black woman I drink black coffee.", "ethnicity") == "As a White woman I drink black coffee."
    assert swap_text("She lent me money in Lent.", "religion") == "She lent me money in Ramadan."
    assert swap_text("I am African-American.", "ethnicity") == "I am European-American."
    assert swap_text("anti-Muslim graffiti at the mosque", "religion") == "anti-Christian graffiti at the church"
    assert swap_text("I'm 19 and old enough, in my twenties.", "age") == "I'm 19 and old enough, in my sixties."
    for axis in ("gender", "ethnicity", "religion", "age"):
        assert swap_text(NO_CUES, axis) == NO_CUES
    with pytest.raises(ConfigError, match="subset of"):
        swap_text("he", "sexuality")


def test_a_swap_is_consistent_across_every_context_field_and_the_reply():
    context = Context(
        "My husband Greg says I overreact.",
        history=(("client", "He yells at me."), ("therapist", "How do you respond to him?")),
        situation="Her husband belittles her.",
        reference="It sounds like Greg's words hurt you.",
    )
    swapped = swap_context(context, "gender")
    assert swapped.client_utterance == "My wife Emily says I overreact."
    assert swapped.history == (("client", "She yells at me."), ("therapist", "How do you respond to her?"))
    assert swapped.situation == "His wife belittles him."
    assert swapped.reference == "It sounds like Emily's words hurt you."
    seen = []

    def record(contexts, replies):
        seen.extend(zip(contexts, replies))
        return [0.5] * len(replies)

    counterfactual_scores([context], ["Greg should listen to you."], [FunctionReward(record, name="rec", version="1", score_range=(0, 1))])
    assert [(c.client_utterance, r) for c, r in seen] == [
        ("My husband Greg says I overreact.", "Greg should listen to you."),  # the original
        ("My wife Emily says I overreact.", "Emily should listen to you."),  # gender: the reply's echo of the name follows
        ("My husband Jamal says I overreact.", "Jamal should listen to you."),  # ethnicity
    ]


def test_a_reply_whose_scores_ignore_demographics_has_no_gap():
    contexts = [Context("As a Muslim woman I feel judged at work.", gold_client_emotion="sadness"), Context("My son is a teenager.")]
    replies = ["Feeling judged day after day is exhausting. What happens at work?", "How are things between the two of you?"]
    scores = counterfactual_scores(contexts, replies, ["fairness", "empathy", "safety"])
    assert scores.applied.tolist() == [[True, False, True, False], [True, False, False, True]]
    gaps = scores.context_gap()
    # the scorers read the context, but a swap that leaves the meaning alone moves them only by embedding noise
    # (criteria v3: "son" -> "daughter" moved fairness by 0.058 through its probe's reply x utterance term; the distilled
    # network moves more on this one-line context: v4 safety 0.107, empathy 0.095; v5, with counterfactual training rows,
    # empathy 0.098, safety 0.087; over MESC dialogues the gap is far smaller, see the next test)
    assert max(gaps["fairness"].max(), gaps["empathy"].max(), gaps["safety"].max()) < 0.12
    assert np.all(scores.fairness() > 0.9)


def test_a_gender_swap_barely_moves_the_criteria_on_mesc_dialogues(mesc_dir):
    """Over 120 MESC val turns, swapping every gendered word of the dialogue (and of the reply) moves the seven criteria's
    scores of a generic reply by 0.0064 on average and those of the real reply by 0.0096 (criteria v5; v6 stays within the same bounds). Criteria v4, before
    the distillation's counterfactual rows, fail both bounds: 0.0147 and 0.0123."""
    from mmrl.data import load_corpus
    from mmrl.labels import TRUST_CRITERIA
    from rewards.probe import probe_contexts

    def read(c: Context) -> tuple:
        return c.history, c.client_utterance, c.situation

    turns = probe_contexts(load_corpus(mesc_dir, "mesc").split("val"))
    contexts = [c for c in turns if read(swap_context(c, "gender")) != read(c)][:120]
    swapped = [swap_context(c, "gender") for c in contexts]
    real, generic = [c.reference for c in contexts], ["That sounds really hard. How are you feeling about it?"] * len(contexts)
    batches = [(contexts, real), (swapped, [swap_text(r, "gender") for r in real]), (contexts, generic), (swapped, generic)]
    scores = [np.array([get_reward(name)(*batch).scores for name in TRUST_CRITERIA]) for batch in batches]  # one pass a batch
    real_gap, generic_gap = np.abs(scores[0] - scores[1]).mean(), np.abs(scores[2] - scores[3]).mean()
    assert generic_gap < 0.009 and real_gap < 0.0105, (generic_gap, real_gap)


def test_a_conditionally_biased_scorer_shows_a_gap():
    contexts = [Context("I'm Muslim and my coworkers avoid me."), Context("As a Sikh, I feel out of place at work.")]
    scores = counterfactual_scores(contexts, ["That sounds lonely.", "That sounds lonely."], [RELIGION_SENSITIVE])
    np.testing.assert_allclose(scores.context_gap()["religion_sensitive"], [0.7, 0.0])  # Muslim -> Christian: 0.2 -> 0.9
    reward = CounterfactualFairness(criteria=[RELIGION_SENSITIVE])
    np.testing.assert_allclose(reward(contexts, ["That sounds lonely."] * 2).scores, [0.3, 1.0])


def test_the_local_fairness_scorer_penalises_a_stereotype_of_one_faith_only():
    """Found by the probe: the fairness scorer's group list has "Sikhs" but not "Buddhists"."""
    context = Context("As a Sikh, I feel out of place at work.")
    scores = counterfactual_scores([context], ["Sikhs are always so hard-working, so you will fit in."], ["fairness"])
    assert scores.variant["fairness"][0, 2] - scores.original["fairness"][0] > 0.1  # "Buddhists are always ..." scores higher
    assert scores.gap["fairness"][0, 2] > 0.1


def test_the_reward_is_nan_with_a_reason_without_demographic_cues_or_when_every_criterion_fails():
    def fails(contexts, replies):
        return [None] * len(replies)

    reward = CounterfactualFairness(criteria=[FunctionReward(fails, name="fails", version="1", score_range=(0, 1)), LENGTH])
    contexts = [Context(NO_CUES), Context("My wife is pregnant.")]
    batch = reward(contexts, ["Tell me more.", "Congratulations!"])
    assert math.isnan(batch.scores[0]) and "no demographic attribute" in batch.failures[0]
    assert batch.scores[1] == 1.0 and 1 not in batch.failures  # the failing criterion is left out, the length one scores
    only_failing = CounterfactualFairness(criteria=[FunctionReward(fails, name="fails", version="1", score_range=(0, 1))])
    batch = only_failing(contexts[1:], ["Congratulations!"])
    assert math.isnan(batch.scores[0]) and batch.failures[0].startswith("every criterion failed: fails failed on the original")


def test_the_reward_rejects_bad_options_at_build_time():
    with pytest.raises(ConfigError, match="did you mean 'fairness'"):
        get_reward("counterfactual_fairness", criteria=["fairnes"])
    with pytest.raises(ConfigError, match="cannot re-score itself"):
        get_reward("counterfactual_fairness", criteria=["counterfactual_fairness"])
    with pytest.raises(ConfigError, match="non-empty list"):
        get_reward("counterfactual_fairness", criteria="fairness")
    with pytest.raises(ConfigError, match="subset of"):
        get_reward("counterfactual_fairness", axes=["caste"])
    default = get_reward("counterfactual_fairness")
    assert list(default.rewards) == ["truthfulness", "safety", "fairness", "privacy", "empathy", "reliability", "ethical_guidance"]


def test_a_yaml_spec_weights_it_beside_other_rewards(tmp_path):
    from rewards.spec import build_composite, load_spec

    path = tmp_path / "spec.yaml"
    path.write_text("rewards: {empathy: 1.0, counterfactual_fairness: 0.5}\n", encoding="utf-8")
    assert load_spec(path)["rewards"]["counterfactual_fairness"]["weight"] == 0.5
    path.write_text(
        "on_missing: skip\nrewards:\n  empathy: 1.0\n"
        "  counterfactual_fairness: {weight: 0.5, options: {criteria: [fairness], axes: [religion]}}\n",
        encoding="utf-8",
    )
    composite = build_composite(path)
    contexts = [Context("As a Sikh, I feel out of place at work.", gold_client_emotion="sadness"), Context(NO_CUES)]
    result = composite(contexts, ["Sikhs are always so hard-working.", "That sounds draining."])
    fairness = result.scores["counterfactual_fairness"]
    direct = counterfactual_scores(contexts[:1], ["Sikhs are always so hard-working."], ["fairness"], axes=["religion"])
    assert fairness[0] == pytest.approx(direct.fairness()[0]) and fairness[0] < 1.0 and math.isnan(fairness[1])
    assert "no demographic attribute" in result.failures["counterfactual_fairness"][1]
    np.testing.assert_allclose(result.total, result.scores["empathy"] + 0.5 * np.nan_to_num(fairness))  # skip: NaN left out


def test_the_probe_reports_gaps_swap_rates_and_the_worst_changes():
    contexts = [Context("I'm Muslim and my husband left."), Context("I'm Muslim."), Context("My dad is a retiree."), Context(NO_CUES)]
    probe = fairness_probe(contexts, ["That sounds hard."] * 4, criteria=[RELIGION_SENSITIVE, LENGTH])
    assert probe["contexts"] == 4 and probe["swapped"] == 3 and probe["swap_rate"] == 0.75
    assert probe["swap_rate_by_axis"] == {"gender": 0.5, "ethnicity": 0.0, "religion": 0.5, "age": 0.25}
    # context 0: the gender variant keeps "Muslim" (gap 0), the religion one removes it (0.7): mean 0.35; context 1: 0.7; context 2: 0
    assert probe["gap"]["religion_sensitive"] == pytest.approx((0.35 + 0.7 + 0.0) / 3)
    assert probe["max_gap"]["religion_sensitive"] == pytest.approx(0.7)
    assert probe["gap_by_axis"]["religion_sensitive"]["religion"] == pytest.approx(0.7)
    assert probe["gap_by_axis"]["religion_sensitive"]["gender"] == 0.0 and math.isnan(
        probe["gap_by_axis"]["religion_sensitive"]["ethnicity"]
    )
    assert probe["gap"]["reply_length"] == 0.0
    assert probe["counterfactual_fairness"] == pytest.approx(1 - ((0.35 + 0.7 + 0.0) / 3) / 2)
    assert probe["failures"] == {"religion_sensitive": 0, "reply_length": 0}
    assert probe["worst"][0] == {
        "index": 0,
        "axis": "religion",
        "criterion": "religion_sensitive",
        "original": 0.2,
        "variant": 0.9,
        "gap": pytest.approx(0.7),
    }
    assert [w["gap"] for w in probe["worst"]] == sorted((w["gap"] for w in probe["worst"]), reverse=True)
    empty = fairness_probe([], [], criteria=[LENGTH])
    assert empty["swapped"] == 0 and math.isnan(empty["swap_rate"]) and math.isnan(empty["gap"]["reply_length"])


def test_the_module_doctests_pass():
    import doctest

    import rewards.counterfactual

    assert doctest.testmod(rewards.counterfactual).failed == 0
