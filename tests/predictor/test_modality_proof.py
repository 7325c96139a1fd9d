"""The synthetic corpus carries client emotion only in audio prosody and video (the text is neutral):
a model given that modality must read the emotion, and lose it when the modality is hidden."""

from __future__ import annotations

from collections import Counter

import pytest

from mmrl.predictor.evaluate import evaluate_model, items_of
from mmrl.predictor.train import train_predictor
from tests.predictor.conftest import split


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_a_modality_carries_the_client_emotion(tiny_config, synth, modality):
    config = tiny_config(modalities=["text", modality], history_labels=False, epochs=40, patience=8, logit_adjustment=False)
    predictor, summary = train_predictor(config, split(synth, "train"), split(synth, "val"), progress=False)
    assert summary["trained_modalities"] == ["text", modality]
    test = items_of(split(synth, "test"))
    with_modality = evaluate_model(predictor, test)["client_emotion"]["accuracy"]
    without = evaluate_model(predictor, test, drop=[modality])["client_emotion"]["accuracy"]
    emotions = Counter(dialogue.context_at(index)[1].emotion for dialogue, index in test)
    chance = max(emotions.values()) / len(test)  # the best a model blind to emotion can do
    print(f"{modality}: accuracy {with_modality:.3f} with it, {without:.3f} without (majority rate {chance:.3f}, n={len(test)})")
    assert with_modality >= 0.8
    assert without <= chance + 0.1
