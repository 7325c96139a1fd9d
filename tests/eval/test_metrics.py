"""The evaluation metrics against hand-computed values."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from mmrl.eval import metrics
from mmrl.eval.metrics import classification_scores, component_scores, parse_stats, reward_summary, text_scores
from mmrl.policy.prompts import format_output, parse_output
from rewards.base import Context, RewardBatch


def _ctx(client: str, therapist: str | None, strategy: str, reference: str | None = "I hear you.") -> Context:
    return Context("I feel low.", gold_client_emotion=client, gold_therapist_emotion=therapist, gold_strategy=strategy, reference=reference)


def test_an_unparseable_output_is_a_wrong_answer_and_is_counted():
    contexts = [
        _ctx("joy", "joy", "Approval"),
        _ctx("joy", "joy", "Approval"),
        _ctx("joy", "neutral", "Approval"),
        _ctx("fear", "neutral", "Restatement"),
    ]
    outputs = [
        format_output("joy", "joy", "Approval", "Great news!"),
        "That is great news, well done!",  # no structured block at all
        format_output("joy", "neutral", "Approval", "Good."),
        format_output("fear", "neutral", "Restatement", "You are scared."),
    ]
    parsed = [parse_output(o) for o in outputs]
    assert parse_stats(parsed) == {"ok": 3, "failed": 1, "rate": 0.75}
    client = component_scores(parsed, contexts)["client_emotion"]
    # gold joy, joy, joy, fear; predicted joy, <unparsed>, joy, fear.
    # joy: P = 2/2, R = 2/3, F1 = 0.8; fear: F1 = 1. Dropping the failure would give 1.0 everywhere.
    assert client["accuracy"] == pytest.approx(0.75)
    assert client["macro_f1"] == pytest.approx(0.9)
    assert client["weighted_f1"] == pytest.approx((3 * 0.8 + 1 * 1.0) / 4)
    assert (client["labelled"], client["unparsed"]) == (4, 1)


def test_each_field_is_judged_on_its_own_and_unlabelled_items_are_left_out():
    # the strategy parses although the reply is missing (a parse failure of the block as a whole)
    partial = parse_output("Client emotion: sadness\nTherapist emotion: neutral\nStrategy: Open question")
    assert not partial.ok
    scores = component_scores([partial, partial], [_ctx("sadness", None, "Open question"), _ctx("anger", None, "Approval")])
    assert scores["strategy"]["accuracy"] == 0.5 and scores["strategy"]["unparsed"] == 0
    assert scores["client_emotion"]["accuracy"] == 0.5
    assert scores["therapist_emotion"] == {"accuracy": None, "weighted_f1": None, "macro_f1": None, "labelled": 0, "unparsed": 0}


def test_a_label_never_predicted_has_f1_zero_in_the_macro_average():
    scores = classification_scores(["joy", "fear", "anger"], ["joy", "joy", "joy"])
    # joy: P = 1/3, R = 1, F1 = 0.5; fear and anger: 0
    assert scores["macro_f1"] == pytest.approx(0.5 / 3)
    assert scores["weighted_f1"] == pytest.approx(0.5 / 3)
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        classification_scores(["joy", "fear"], ["joy"])


def test_bleu2_and_rouge_match_hand_computed_values():
    scores = text_scores(["the cat sat on a mat"], ["the cat sat on the mat"])
    # unigrams 5/6, bigrams 3/5, same length (no brevity penalty): BLEU-2 = sqrt(5/6 * 3/5)
    assert scores["bleu2"] == pytest.approx(np.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    assert scores["rouge1"] == pytest.approx(5 / 6)
    assert scores["rouge2"] == pytest.approx(3 / 5)
    assert scores["rougeL"] == pytest.approx(5 / 6)  # LCS "the cat sat on mat"


def test_identical_text_scores_one_and_disjoint_text_zero():
    references = ["It sounds like the last week has been really hard for you.", "What would help you feel safer right now?"]
    same = text_scores(references, references)
    assert same["bleu2"] == pytest.approx(1.0) and same["rouge1"] == same["rouge2"] == same["rougeL"] == pytest.approx(1.0)
    assert same["meteor"] > 0.99
    disjoint = text_scores(["Bananas are yellow", "Quantum chromodynamics"], references)
    assert disjoint["bleu2"] < 0.01
    assert disjoint["rouge1"] == disjoint["rouge2"] == disjoint["rougeL"] == 0.0
    assert disjoint["meteor"] == 0.0
    empty = text_scores(["", ""], references)
    assert empty == {"bleu2": 0.0, "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "meteor": 0.0}
    assert text_scores([], []) == {"bleu2": None, "rouge1": None, "rouge2": None, "rougeL": None, "meteor": None}


def test_meteor_matches_stems_even_without_wordnet():
    stemmed = text_scores(["the dogs were running"], ["the dog was runs"])["meteor"]
    exact_only = text_scores(["the cats were sleeping"], ["the dog was runs"])["meteor"]
    assert stemmed > 0.5 > exact_only > 0.0
    assert metrics.meteor_matching() in ("exact+stem", "exact+stem+wordnet")


def test_bertscore_ranks_a_paraphrase_above_an_unrelated_reply_and_scores_empty_as_zero():
    reference = "It sounds like losing your job has left you frightened about the future."
    scores = [
        metrics.bertscore_f1([reply], [reference])
        for reply in (
            reference,
            "Losing the job seems to have made you scared of what comes next.",
            "Bananas are yellow and grow in bunches.",
            "",
        )
    ]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[0] > scores[1] > scores[2] > scores[3] == 0.0
    assert metrics.bertscore_f1([], []) is None
    with pytest.raises(ValueError, match="2 replies but 1 references"):
        metrics.bertscore_f1(["a", "b"], ["a"])


def test_reward_summary_leaves_failures_out_of_mean_and_std_and_counts_them():
    batch = RewardBatch(np.array([0.2, 0.6, 0.0]), {2: "could not score"})
    assert reward_summary(batch) == {"mean": pytest.approx(0.4), "std": pytest.approx(0.2), "failures": 1}
    assert reward_summary(RewardBatch.failed(2, "no judge")) == {"mean": None, "std": None, "failures": 2}


def test_trust_scores_cover_the_seven_local_scorers():
    contexts = [_ctx("sadness", "neutral", "Restatement"), _ctx("fear", "neutral", "Open question")]
    summary, local, judged = metrics.trust_scores(contexts, ["That sounds really hard, I am here with you.", "Just get over it."])
    assert list(summary) == ["truthfulness", "safety", "fairness", "privacy", "empathy", "reliability", "ethical_guidance"]
    assert judged == {}
    for criterion, scores in local.items():
        assert scores.shape == (2,)
        assert summary[criterion]["mean"] == pytest.approx(float(np.nanmean(scores)))
    assert local["empathy"][0] > local["empathy"][1]


def test_the_module_doctests_pass():
    assert doctest.testmod(metrics).failed == 0
