from __future__ import annotations

import math

import numpy as np
import pytest

from mmrl.data.mesc import load_mesc
from mmrl.errors import DataError, MmrlError
from mmrl.labels import EMOTIONS
from rewards.base import Context, RewardBatch
from tests.fixtures.mesc import write_mesc


@pytest.fixture
def dialogue(tmp_path):
    return next(d for d in load_mesc(write_mesc(tmp_path / "m")).dialogues if d.id == "0")


def test_context_from_dialogue_splits_history_client_and_target(dialogue):
    ctx = Context.from_dialogue(dialogue, 3)
    assert ctx.history == (("client", "I told you."), ("therapist", "Told me what?"))
    assert ctx.client_utterance == "That I'd be sorry. And I am. Really sorry."
    assert (ctx.gold_client_emotion, ctx.gold_therapist_emotion, ctx.gold_strategy) == ("anger", "neutral", "Communication Skills")
    assert ctx.reference == "I'm not sorry at all. You did well."
    assert ctx.client_emotion == "anger"
    with pytest.raises(DataError, match="turn 2 is not a therapist turn"):
        Context.from_dialogue(dialogue, 2)


def test_predicted_components_override_gold_and_change_the_key(dialogue):
    probs = np.eye(len(EMOTIONS))[EMOTIONS.index("joy")]
    gold = Context.from_dialogue(dialogue, 3)
    predicted = Context.from_dialogue(dialogue, 3, predicted={"client_emotion": probs})
    assert predicted.client_emotion == "joy"
    assert gold.key() == Context.from_dialogue(dialogue, 3).key() != predicted.key()


def test_reward_batch_requires_a_reason_for_every_nan():
    batch = RewardBatch([0.5, 0.2], {1: "judge timed out"})
    assert math.isnan(batch.scores[1]) and batch.ok.tolist() == [True, False]
    with pytest.raises(MmrlError, match="NaN without a reason"):
        RewardBatch([0.5, math.nan])
