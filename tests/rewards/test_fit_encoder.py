"""The fit encoder: training ranks real replies, pmi subtracts the reference mean exactly, artefacts and errors are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmrl.errors import ConfigError
from rewards.base import Context
from rewards.registry import get_reward
from tests.fixtures.tiny_bert import tiny_bert

TOPICS = ("dog", "job", "exam", "sister", "house", "car", "wedding", "money", "school", "doctor", "garden", "phone")


def _tiny():
    from rewards.fit_encoder import FitEncoder

    return FitEncoder(*tiny_bert())


def _dialogues():
    return [Context(f"I am upset about my {t}.", reference=f"Your {t} matters a lot.", dialogue_id=str(i)) for i, t in enumerate(TOPICS)]


def test_training_lowers_the_loss_keeps_the_best_val_epoch_and_round_trips(tmp_path):
    from safetensors.torch import load_file

    from rewards.fit_encoder import load_model, pmi, recall_at_1, save, train_fit_encoder

    dialogues = _dialogues()
    model, report = train_fit_encoder(dialogues, dialogues, model=_tiny(), epochs=10, batch_size=6, lr=5e-3)
    losses = [e["train_loss"] for e in report["epochs"]]
    assert losses[0] > losses[-1] + 0.3
    recall = [e["val_recall_at_1"] for e in report["epochs"]]
    assert report["kept_epoch"] == int(np.argmax(recall))
    assert recall_at_1(model, dialogues) == max(recall)  # the returned model is the kept epoch's
    before = pmi(model, dialogues, [c.reference for c in dialogues])
    path = tmp_path / "fit.safetensors"
    save(model, path)
    fresh = _tiny()
    fresh.load_state_dict(load_file(str(path)), strict=False)
    assert np.allclose(pmi(fresh, dialogues, [c.reference for c in dialogues]), before, atol=1e-5)
    with pytest.raises(ConfigError, match="--fit-encoder"):
        load_model(path)  # built over the tiny config: the packaged MiniLM's adapters do not match it


def test_pmi_subtracts_the_corpus_mean_or_the_mean_of_the_batchs_other_contexts():
    from rewards.cross_encoder import context_text
    from rewards.fit_encoder import CONTEXT_TOKENS, REPLY_TOKENS, _vectors, pmi

    model = _tiny()
    model.mean.copy_(torch.linspace(-0.1, 0.1, model.mean.shape[0]))
    contexts, replies = _dialogues()[:4], ["Tell me more.", "Your dog matters.", "How was the exam?", "Okay."]
    c = _vectors(model, [context_text(x) for x in contexts], CONTEXT_TOKENS)
    r = _vectors(model, replies, REPLY_TOKENS)
    assert np.allclose(pmi(model, contexts, replies), np.einsum("ij,ij->i", r, c - model.mean.numpy()), atol=1e-5)
    others = np.stack([np.delete(c, i, axis=0).mean(axis=0) for i in range(4)])
    assert np.allclose(pmi(model, contexts, replies, reference="batch"), np.einsum("ij,ij->i", r, c - others), atol=1e-5)
    assert np.allclose(pmi(model, contexts[:1] * 2, replies[:2], reference="batch"), pmi(model, contexts[:1] * 2, replies[:2]))
    grouped = [contexts[0], contexts[0], contexts[1], contexts[1]]  # a GRPO batch: each prompt twice
    twice = np.einsum("ij,ij->i", r, c[[0, 0, 1, 1]] - c[[1, 1, 0, 0]])
    assert np.allclose(pmi(model, grouped, replies, reference="batch"), twice, atol=1e-5)
    with pytest.raises(ConfigError, match="3 contexts but 2 replies"):
        pmi(model, contexts[:3], replies[:2])


def test_calibration_gives_real_replies_a_positive_scale_after_training():
    from rewards.fit_encoder import calibrate, train_fit_encoder

    dialogues = _dialogues()
    model, _ = train_fit_encoder(dialogues, model=_tiny(), epochs=10, batch_size=6, lr=5e-3)
    assert calibrate(model, dialogues) > 0 and float(model.scale) > 0


def test_too_few_dialogues_no_epochs_a_bad_reference_and_a_missing_artefact_are_config_errors(tmp_path):
    from rewards.fit_encoder import fit_log_odds, load_model, train_fit_encoder

    one = [Context("Hi.", reference="Hello.", dialogue_id="a")] * 3
    with pytest.raises(ConfigError, match="two dialogues"):
        train_fit_encoder(one, model=_tiny())
    with pytest.raises(ConfigError, match="validation needs contexts from at least two dialogues"):
        train_fit_encoder(_dialogues(), one, model=_tiny())
    with pytest.raises(ConfigError, match="epochs >= 1"):
        train_fit_encoder(_dialogues(), model=_tiny(), epochs=0)
    with pytest.raises(ConfigError, match="reference must be"):
        fit_log_odds([Context("Hi.")], ["Hello."], reference="global")
    with pytest.raises(ConfigError, match="mmrl rewards build --data MESC_DIR --fit-encoder"):
        load_model(tmp_path / "absent.safetensors")


def test_the_shipped_encoder_prefers_the_reply_of_this_conversation_to_generic_and_other_ones():
    from rewards.fit_encoder import ARTEFACT

    if not ARTEFACT.is_file():
        pytest.skip("no shipped fit-encoder artefact")
    context = Context("My sister hasn't spoken to me since the wedding and I miss her.", history=(("therapist", "How was the wedding?"),))
    replies = [
        "It hurts that your sister went silent after the wedding; what happened between you two that day?",
        "Tell me more about that.",
        "Have you talked to your manager about the extra shifts at work?",
    ]
    fits, generic, elsewhere = get_reward("cross_context_fit")([context] * 3, replies).scores
    assert fits > generic + 0.2 and fits > elsewhere + 0.2
