from __future__ import annotations

import pytest
import torch

from mmrl.data import Segment, Turn
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.compressor import ConvCompressor, token_reduction

TEXT_DIM, D = 12, 16


def _history(batch: int, turns: int, filled: list[int]):
    text = torch.randn(batch, turns, TEXT_DIM)
    speaker = torch.randint(0, 2, (batch, turns))
    emotion = torch.randint(0, len(EMOTIONS) + 1, (batch, turns))
    strategy = torch.randint(0, len(STRATEGIES) + 1, (batch, turns))
    mask = torch.zeros(batch, turns, dtype=torch.bool)
    for row, n in enumerate(filled):
        if n:
            mask[row, -n:] = True  # right-aligned: the most recent turn is last
    return text, speaker, emotion, strategy, mask


@pytest.mark.parametrize(("turns", "memory"), [(32, 4), (16, 4), (8, 2), (12, 3), (5, 5), (7, 1), (2, 2)])
def test_any_history_length_compresses_to_exactly_memory_tokens(turns, memory):
    compressor = ConvCompressor(TEXT_DIM, D, max_turns=turns, memory_tokens=memory).eval()
    tokens, present = compressor(*_history(3, turns, [turns, 1, 0]))
    assert tokens.shape == (3, memory, D) and present.shape == (3, memory)
    assert torch.isfinite(tokens).all()
    assert present[0].all() and present[1].all() and not present[2].any()  # any history reaches every level


def test_padding_slots_do_not_leak_into_memory():
    compressor = ConvCompressor(TEXT_DIM, D, max_turns=16, memory_tokens=4).eval()
    text, speaker, emotion, strategy, mask = _history(2, 16, [5, 5])
    noisy = text.clone()
    noisy[:, :11] = torch.randn(2, 11, TEXT_DIM) * 100  # change only the padded slots
    a, _ = compressor(text, speaker, emotion, strategy, mask)
    b, _ = compressor(noisy, speaker, emotion, strategy, mask)
    torch.testing.assert_close(a, b)


def test_labels_reach_the_memory_only_when_enabled():
    inputs = _history(2, 8, [8, 8])
    other_labels = (inputs[0], inputs[1], (inputs[2] + 1) % len(EMOTIONS), (inputs[3] + 1) % len(STRATEGIES), inputs[4])
    for use_labels, changes in ((True, True), (False, False)):
        torch.manual_seed(0)
        compressor = ConvCompressor(TEXT_DIM, D, max_turns=8, memory_tokens=2, use_labels=use_labels).eval()
        a, _ = compressor(*inputs)
        b, _ = compressor(*other_labels)
        assert (not torch.allclose(a, b)) == changes


def test_the_first_token_sees_the_most_recent_turns_only():
    compressor = ConvCompressor(TEXT_DIM, D, max_turns=16, memory_tokens=4).eval()
    text, speaker, emotion, strategy, mask = _history(1, 16, [16])
    older = text.clone()
    older[:, :8] = torch.randn(1, 8, TEXT_DIM)  # change turns far from the end
    a, _ = compressor(text, speaker, emotion, strategy, mask)
    b, _ = compressor(older, speaker, emotion, strategy, mask)
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_compressor_is_trainable_end_to_end():
    compressor = ConvCompressor(TEXT_DIM, D, max_turns=8, memory_tokens=2)
    tokens, _ = compressor(*_history(4, 8, [8, 3, 1, 0]))
    tokens.sum().backward()
    assert compressor.text_proj.weight.grad is not None and compressor.text_proj.weight.grad.abs().sum() > 0


def _turn(text: str) -> Turn:
    return Turn.from_segments("client", [Segment(text, "neutral")])


def test_token_reduction_counts_history_tokens_against_memory_tokens():
    histories = [[_turn("one two three"), _turn("four five")], [_turn("six")], []]
    report = token_reduction(histories, lambda text: len(text.split()), memory_tokens=2)
    assert report["mean_history_text_tokens"] == pytest.approx(2.0)  # (5 + 1 + 0) / 3
    assert report["max_history_text_tokens"] == 5
    assert report["mean_memory_tokens"] == pytest.approx(4 / 3)  # the empty history costs none
    assert report["reduction_factor"] == pytest.approx(6 / 4)
    assert report["fraction_removed"] == pytest.approx(1 - 4 / 6)
