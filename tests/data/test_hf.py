from __future__ import annotations

import pytest

from mmrl.data.hf import targets_dataset, turns_dataset
from mmrl.data.mesc import load_mesc
from mmrl.data.schema import require_train
from mmrl.errors import SplitLeakError
from tests.fixtures.mesc import write_mesc


@pytest.fixture
def corpus(tmp_path):
    return load_mesc(write_mesc(tmp_path / "mesc"))


def test_targets_dataset_rows_hold_context_and_labels(corpus):
    ds = targets_dataset(corpus.dialogues)
    assert len(ds) == sum(len(d.target_indices()) for d in corpus.dialogues) == 6
    row = next(r for r in ds if r["dialogue_id"] == "0" and r["turn_index"] == 3)
    assert row["history_texts"] == ["I told you.", "Told me what?"]  # the client turn is apart
    assert row["client_text"] == "That I'd be sorry. And I am. Really sorry."
    assert row["client_emotion"] == "anger" and row["strategy"] == "Communication Skills"
    assert row["reference"] == "I'm not sorry at all. You did well."
    val = next(r for r in ds if r["split"] == "val")
    assert val["video_description"] == "The speaker looks tense."


def test_turns_dataset_has_one_row_per_turn(corpus):
    ds = turns_dataset(corpus.dialogues)
    assert len(ds) == sum(len(d.turns) for d in corpus.dialogues)
    assert set(ds["speaker"]) == {"client", "therapist"}


def test_require_train_refuses_val_and_test(corpus):
    assert [d.split for d in require_train(corpus.split("train"))] == ["train", "train"]
    with pytest.raises(SplitLeakError, match=r"only use the train split.*\['test', 'val'\]"):
        require_train(corpus.dialogues, "RL prompts")
