from __future__ import annotations

import random

import numpy as np
import torch

from mmrl.data import Dialogue, Segment, Turn
from mmrl.labels import STRATEGIES
from mmrl.predictor.evaluate import items_of
from mmrl.predictor.features import collate
from mmrl.predictor.model import MultimodalPredictor
from mmrl.predictor.train import train_predictor

_CYCLE = ("Open question", "Restatement", "Approval")
_CLIENT = ("I feel low.", "It has been hard.", "I don't know.", "Work is a lot.")


def _cycling_dialogue(name: str, split: str, rng: random.Random) -> Dialogue:
    """Therapist strategies cycle Open question -> Restatement -> Approval from a random start; texts carry no cue."""
    start = rng.randrange(len(_CYCLE))
    turns = []
    for k in range(6):
        turns.append(Turn.from_segments("client", [Segment(rng.choice(_CLIENT), "sadness")]))
        turns.append(Turn.from_segments("therapist", [Segment("I see.", "neutral", _CYCLE[(start + k) % len(_CYCLE)])]))
    return Dialogue(name, split, tuple(turns))


def test_gru_output_does_not_depend_on_padding_slots(tiny_config, synth):
    torch.manual_seed(0)
    predictor = MultimodalPredictor.build(tiny_config(modalities=["text", "history"], max_history_turns=8))
    wider = MultimodalPredictor.build(tiny_config(modalities=["text", "history"], max_history_turns=16, memory_tokens=2))
    network = predictor.network.eval()
    items = [item for item in items_of(synth) if len(item[0].context_at(item[1])[0]) <= 8][:12]
    features = [p.featurizer.build(items) for p in (predictor, wider)]
    batches = [collate(f.examples, f.table) for f in features]
    assert batches[0].history_text.shape[1] == 8 and batches[1].history_text.shape[1] == 16
    with torch.no_grad():
        narrow_logits, wide_logits = (network.sequence(batch) for batch in batches)
        without_history = network.sequence(batches[0], drop=["history"])
    torch.testing.assert_close(narrow_logits, wide_logits)
    assert not torch.allclose(narrow_logits, without_history)


def test_gru_learns_strategy_transitions_the_texts_do_not_show(tiny_config):
    rng = random.Random(0)
    train = [_cycling_dialogue(f"t{k}", "train", rng) for k in range(60)]
    val = [_cycling_dialogue(f"v{k}", "val", rng) for k in range(10)]
    config = tiny_config(modalities=["text", "history"], epochs=25, patience=25, sequence_dim=32, logit_adjustment=False)
    predictor, summary = train_predictor(config, train, val, progress=False)
    items = [item for item in items_of(val) if item[1] > 1]  # targets with an earlier therapist turn
    probabilities, _ = predictor.predict_features(predictor.featurizer.build(items))
    gold = [STRATEGIES.index(d.turns[i].strategy) for d, i in items]
    assert np.mean(probabilities["strategy"].argmax(-1) == np.array(gold)) > 0.9
    assert summary["val_metrics"]["strategy"] == summary["strategy_gru"]["val_metrics"]["strategy"]


def test_fusion_strategy_model_has_no_gru(tiny_config):
    assert MultimodalPredictor.build(tiny_config(strategy_model="fusion")).network.sequence is None
