from __future__ import annotations

import torch

from mmrl.data import Dialogue, Segment, Turn
from mmrl.labels import STRATEGIES
from mmrl.predictor.features import collate
from mmrl.predictor.model import MultimodalPredictor


def _dialogue() -> Dialogue:
    rows = [
        ("client", "I can't sleep.", "fear", None),
        ("therapist", "Since when?", "neutral", "Open question"),
        ("client", "Weeks.", "fear", None),
        ("therapist", "That's hard.", "neutral", "Restatement"),
        ("client", "It is.", "sadness", None),
        ("therapist", "Tell me more.", "neutral", "Open question"),
    ]
    return Dialogue("d", "test", tuple(Turn.from_segments(s, [Segment(t, e, st)]) for s, t, e, st in rows))


def test_strategy_head_can_copy_the_previous_strategy(tiny_config):
    predictor = MultimodalPredictor.build(tiny_config(modalities=["text", "history"], copy_strategies=2, strategy_model="fusion"))
    network = predictor.network.eval()
    features = predictor.featurizer.build([(_dialogue(), 3), (_dialogue(), 5)])
    batch = collate(features.examples, features.table)
    with torch.no_grad():
        network.copy_gate.weight.zero_()
        network.copy_gate.bias.copy_(torch.tensor([-20.0, 20.0, -20.0]))  # always copy the most recent strategy
        copied = network(batch)[0]["strategy"].softmax(-1)
        network.copy_gate.bias.copy_(torch.tensor([-20.0, -20.0, 20.0]))  # copy the one before it, when there is one
        older = network(batch)[0]["strategy"].softmax(-1)
        dropped = network(batch, drop=["history"])[0]["strategy"].softmax(-1)
    # target 3 has one earlier therapist turn (Open question); target 5 has two (Restatement, then Open question)
    assert copied.argmax(-1).tolist() == [STRATEGIES.index("Open question"), STRATEGIES.index("Restatement")]
    assert copied.max(-1).values.min() > 0.99
    assert older[1].argmax() == STRATEGIES.index("Open question") and older[1].max() > 0.99
    assert older[0].max() < 0.99  # no second-to-last strategy: the gate falls back to the head and the last one
    assert dropped.max(-1).values.max() < 0.99  # without the history there is nothing to copy
    torch.testing.assert_close(copied.sum(-1), torch.ones(2))


def test_dialogue_state_path_reaches_the_strategy_and_hides_with_the_history(tiny_config):
    predictor = MultimodalPredictor.build(tiny_config(modalities=["text", "history"], copy_strategies=0, strategy_model="fusion"))
    network = predictor.network.eval()
    features = predictor.featurizer.build([(_dialogue(), 3), (_dialogue(), 5)])
    batch = collate(features.examples, features.table)
    restatement = STRATEGIES.index("Restatement")
    with torch.no_grad():
        network.state_head.weight.zero_()
        network.state_head.bias.zero_()
        network.state_head.weight[restatement, STRATEGIES.index("Restatement")] = 50.0  # latest therapist segment was a Restatement
        probabilities = network(batch)[0]["strategy"].softmax(-1)
        dropped = network(batch, drop=["history"])[0]["strategy"].softmax(-1)
    # target 3 follows an Open question, target 5 a Restatement
    assert probabilities[1, restatement] > 0.99 and probabilities[0, restatement] < 0.9
    assert dropped[1, restatement] < 0.9


def test_without_dialogue_state_there_is_no_state_path(tiny_config):
    assert MultimodalPredictor.build(tiny_config(dialogue_state=False)).network.state_head is None
