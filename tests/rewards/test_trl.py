"""to_trl / as_callable: the column contract, the decomposition rule, and real GRPOTrainer runs on tiny_policy."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from rewards.base import Context, RewardError
from rewards.compose import Component, Composite, Gate
from rewards.registry import FunctionReward
from rewards.trl import as_callable, completion_text, context_json, contexts_from_columns, to_trl
from tests.fixtures.grpo import train_tiny_grpo

BLOCK = "Client emotion: sadness\nTherapist emotion: neutral\nStrategy: Restatement\nReply: {}"


def reply_length(contexts, replies):
    return [min(len(r) / 40, 1.0) for r in replies]


def mentions_client(contexts, replies):
    """1.0 when the reply reuses a word of the client's utterance; None (unscorable) for an empty reply."""
    words = [set(c.client_utterance.lower().split()) for c in contexts]
    return [float(bool(w & set(r.lower().split()))) if r.strip() else None for w, r in zip(words, replies)]


def no_digits(contexts, replies):
    return [0.0 if any(ch.isdigit() for ch in r) else 1.0 for r in replies]


LENGTH = FunctionReward(reply_length, name="reply_length", version="1", score_range=(0.0, 1.0))
MENTIONS = FunctionReward(mentions_client, name="mentions_client", version="1", score_range=(0.0, 1.0))
SAFE = FunctionReward(no_digits, name="no_digits", version="1", score_range=(0.0, 1.0))


def test_contexts_come_from_a_context_column_or_the_targets_columns():
    context = Context("I lost my job", history=(("therapist", "Hi"),), predicted={"strategy": (0.1,) * 10}, reference="That is hard.")
    assert contexts_from_columns(2, {"context": [context_json(context)] * 2}) == [context, context]
    columns = {"client_text": ["I lost my job"], "history_speakers": [["therapist"]], "history_texts": [["Hi"]], "reference": ["ok"]}
    assert contexts_from_columns(1, columns) == [Context("I lost my job", history=(("therapist", "Hi"),), reference="ok")]
    with pytest.raises(RewardError, match=r"need a 'context' column.*the dataset has columns \['prompt_id'\]"):
        contexts_from_columns(1, {"prompt_id": [1], "trainer_state": None})
    with pytest.raises(RewardError, match="context_json"):
        contexts_from_columns(1, {"context": ["not json"]})


def test_targets_dataset_rows_give_the_contexts_of_from_dialogue(tmp_path):
    from mmrl.data import detect_format, load_corpus
    from mmrl.data.hf import targets_dataset
    from mmrl.data.synth import generate

    out = generate(tmp_path / "synth", n_dialogues=4, seed=0)
    corpus = load_corpus(out, detect_format(out))
    dialogues = {d.id: d for split in ("train", "val", "test") for d in corpus.split(split)}
    dataset = targets_dataset(dialogues.values())
    expected = [Context.from_dialogue(dialogues[row["dialogue_id"]], row["turn_index"]) for row in dataset]
    assert len(expected) > 4
    assert contexts_from_columns(len(dataset), dataset.to_dict()) == expected


def test_completions_may_be_strings_or_conversational():
    assert completion_text("hi") == "hi"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    with pytest.raises(RewardError, match="string content"):
        completion_text([{"role": "assistant", "content": [{"type": "image"}]}])


def test_a_plain_weighted_skip_composite_becomes_one_function_per_component():
    composite = Composite([Component(LENGTH, 1.0), Component(MENTIONS, 0.5), Component(SAFE, 0.0)], on_missing="skip")
    funcs, weights = to_trl(composite)
    assert [f.__name__ for f in funcs] == ["reply_length", "mentions_client"] and weights == [1.0, 0.5]
    funcs = pickle.loads(pickle.dumps(funcs))
    columns = {"context": [context_json(Context("my job"))] * 2}
    completions = [[{"role": "assistant", "content": BLOCK.format("your job")}], [{"role": "assistant", "content": "   "}]]
    metrics = {}
    out = [f(prompts=["p", "p"], completions=completions, log_metric=metrics.__setitem__, **columns) for f in funcs]
    assert out[0] == [8 / 40, 3 / 40]  # reply_length reads the parsed reply ("your job"), else the completion
    assert out[1] == [1.0, None]  # None: TRL reads it as NaN and leaves it out
    assert metrics == {"rewards/reply_length/failures": 0.0, "rewards/mentions_client/failures": 1.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # on_missing="nan"
        {"on_missing": "skip", "mode": "min"},
        {"on_missing": "skip", "log_zero_weight": True},
    ],
)
def test_anything_else_becomes_one_total_function(kwargs):
    composite = Composite([Component(LENGTH, 1.0), Component(MENTIONS, 0.5), Component(SAFE, 0.0)], **kwargs)
    funcs, weights = to_trl(composite)
    assert [f.__name__ for f in funcs] == ["total"] and weights == [1.0]


def test_the_total_function_returns_the_composite_total_and_logs_components():
    composite = Composite([Component(LENGTH, 1.0), Component(MENTIONS, 0.5), Component(SAFE, 0.0, Gate(0.5, cap=-1.0))])
    (total,) = pickle.loads(pickle.dumps(to_trl(composite)[0]))
    contexts = [Context("my job")] * 3
    completions = [BLOCK.format("your job"), BLOCK.format("job 42"), "   "]
    metrics, extra = {}, {}
    columns = {"context": [context_json(c) for c in contexts], "log_metric": metrics.__setitem__, "log_extra": extra.__setitem__}
    out = total(prompts=["p"] * 3, completions=completions, **columns)
    assert out == [pytest.approx(8 / 40 + 0.5), -1.0, None]  # gate caps "job 42"; the failed row is None, not 0
    expected_totals, info = as_callable(composite)(contexts, completions)
    np.testing.assert_allclose(expected_totals, [8 / 40 + 0.5, -1.0, math.nan])
    assert metrics["rewards/mentions_client/failures"] == 1.0
    assert metrics["gates/no_digits/violation_rate"] == pytest.approx(1 / 3)
    assert metrics["rewards/reply_length/mean"] == info["metrics"]["rewards/reply_length/mean"]
    assert "reward" not in metrics  # TRL logs the total itself
    assert extra["mentions_client"] == [1.0, 1.0, None]
    assert set(info) == {"scores", "failures", "violations", "metrics"}


def _train(reward_funcs, reward_weights, tmp_path) -> list[dict]:
    contexts = [Context(text) for text in ("I feel lonely", "My exam went badly", "I argue with my sister", "I cannot sleep")]
    trainer = train_tiny_grpo(contexts, reward_funcs, reward_weights, tmp_path)
    return [entry for entry in trainer.state.log_history if "reward" in entry]


@pytest.mark.timeout(300)
def test_grpo_trains_on_per_component_functions(tmp_path):
    funcs, weights = to_trl(Composite([Component(LENGTH, 1.0), Component(SAFE, 0.5)], on_missing="skip"))
    history = _train(funcs, weights, tmp_path)
    assert len(history) == 2
    for entry in history:
        for name in ("reply_length", "no_digits"):
            assert f"rewards/{name}/mean" in entry and f"rewards/{name}/std" in entry and f"rewards/{name}/failures" in entry
        assert entry["reward"] == pytest.approx(entry["rewards/reply_length/mean"] + 0.5 * entry["rewards/no_digits/mean"], abs=1e-5)


@pytest.mark.timeout(300)
def test_grpo_trains_on_the_total_function_with_gates(tmp_path):
    composite = Composite([Component(LENGTH, 1.0), Component(SAFE, 0.0, Gate(0.5, cap=0.0))], log_zero_weight=True)
    history = _train(*to_trl(composite), tmp_path)
    assert len(history) == 2
    for entry in history:
        for key in ("rewards/total/mean", "rewards/reply_length/mean", "rewards/no_digits/mean", "gates/no_digits/violation_rate"):
            assert key in entry, key
        assert entry["reward"] == pytest.approx(entry["rewards/total/mean"], abs=1e-5)
