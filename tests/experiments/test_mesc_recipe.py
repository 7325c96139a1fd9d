"""The MESC recipe (issue 14): its configs load and check; its blind pair file (`mmrl rate make-pairs`) keeps the key apart."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mmrl.errors import ConfigError
from mmrl.rate.pairs import make_pairs
from mmrl.train.config import RLRunConfig, SFTRunConfig

RECIPE = Path(__file__).resolve().parents[2] / "experiments" / "mesc"


@pytest.mark.parametrize("name", ["sft", "grpo_paper", "grpo_trust", "grpo_paper_kl"])
def test_recipe_configs_load_and_start_from_the_sft_policy(name):
    config = (SFTRunConfig if name == "sft" else RLRunConfig).from_yaml(RECIPE / f"{name}.yaml")
    assert config.output_dir == f"runs/mesc/{name}" and config.lora is not None
    if name != "sft":
        assert config.policy == "runs/mesc/sft/model" and config.max_completion_length <= 64
        rewards = config.reward_spec_parsed()["rewards"]
        assert {"truthfulness", "safety", "fairness", "privacy", "empathy", "reliability", "ethical_guidance"} <= set(rewards)


def _samples(path: Path, system: str, n: int = 80, failed: tuple[int, ...] = ()) -> None:
    rows = [{"dialogue_id": str(d), "turn_index": 1, "reply": f"{system} reply {d}", "completion": "",
             "generation_failure": "HTTP 500" if d in failed else None} for d in range(n)]  # fmt: skip
    path.mkdir(parents=True)
    (path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_blind_pairs_are_seeded_shuffled_and_keyed_apart(tmp_path):
    """How docs/results/blind_pairs.jsonl was drawn: `mmrl rate make-pairs` over the two runs' eval directories."""
    _samples(tmp_path / "runs" / "sft", "sft", failed=(3,))
    _samples(tmp_path / "runs" / "grpo_x", "grpo", failed=(5,))
    pairs, key = make_pairs(tmp_path / "runs" / "sft", tmp_path / "runs" / "grpo_x", n=60, seed=14)
    assert (pairs, key) == make_pairs(tmp_path / "runs" / "sft", tmp_path / "runs" / "grpo_x", n=60, seed=14)
    assert len(pairs) == len(key) == 60 and {p["dialogue_id"] for p in pairs}.isdisjoint({"3", "5"})  # failed generations left out
    assert set(pairs[0]) == {"id", "dialogue_id", "turn_index", "reply_a", "reply_b"}  # no system name, no MESC text
    for pair, k in zip(pairs, key):
        assert pair["id"] == k["id"] and {k["a"], k["b"]} == {"sft", "grpo_x"}
        assert pair["reply_a"].startswith("sft" if k["a"] == "sft" else "grpo")
    assert 20 <= Counter(k["a"] for k in key)["sft"] <= 40  # both orders occur
    with pytest.raises(ConfigError, match="only 78 turns have a successful reply in both"):
        make_pairs(tmp_path / "runs" / "sft", tmp_path / "runs" / "grpo_x", n=79, seed=14)


def test_blind_pairs_get_their_context_from_a_local_mesc_copy(tmp_path, mesc_dir):
    from mmrl.data import load_corpus

    dialogue = load_corpus(mesc_dir, "mesc").split("test")[0]
    turn = dialogue.target_indices()[1]
    pair = {"id": "p001", "dialogue_id": dialogue.id, "turn_index": turn, "reply_a": "A", "reply_b": "B"}
    (tmp_path / "pairs.jsonl").write_text(json.dumps(pair) + "\n" + json.dumps({**pair, "id": "p002", "dialogue_id": "no-such"}) + "\n")
    done = _context("--pairs", "pairs.jsonl", "--data", str(mesc_dir), "--out", "rated.jsonl", cwd=tmp_path)
    assert done.returncode != 0 and f"turn {turn} of dialogue 'no-such' is in pairs.jsonl but not in --data" in done.stderr
    (tmp_path / "pairs.jsonl").write_text(json.dumps(pair) + "\n")
    done = _context("--pairs", "pairs.jsonl", "--data", str(mesc_dir), "--out", "rated.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "rated.jsonl").read_text())
    history, client, _ = dialogue.context_at(turn)
    assert row["client_utterance"] == client.text and row["situation"] == dialogue.situation
    assert [h["text"] for h in row["history"]] == [t.text for t in history][-4:] and row["reply_a"] == "A"


def _context(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RECIPE / "blind_pairs.py"), *argv], cwd=cwd, capture_output=True, text=True)
