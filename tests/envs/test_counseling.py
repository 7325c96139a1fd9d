"""CounselingEnv with the replay client: episodes, seeding, rewards and their failures, actions, media, predictor."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from envs import spaces as S
from envs.base import ActionError, ActionWarning, EnvStateError
from envs.counseling import CounselingEnv, render_history
from mmrl.data import Dialogue, Media, Segment, Turn
from mmrl.errors import ConfigError, DataError, MmrlError
from mmrl.predictor import Components
from rewards.base import Context, RewardError
from rewards.compose import Composite

from .conftest import length_reward, picky_reward


def _longest(env: CounselingEnv) -> Dialogue:
    return max(env.dialogues, key=lambda d: len(d.target_indices()))


def _episode(env: CounselingEnv, seed=None, options=None, reply="I hear how hard this is."):
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards, infos = [obs], [], [info]
    while True:
        obs, reward, terminated, truncated, info = env.step(reply)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            return observations, rewards, infos, terminated, truncated


# ----- episodes -----


def test_a_replayed_episode_walks_every_therapist_turn_and_terminates(corpus):
    env = CounselingEnv(corpus, media=False)
    dialogue = _longest(env)
    observations, rewards, infos, terminated, truncated = _episode(env, options={"dialogue_id": dialogue.id})
    targets = dialogue.target_indices()
    assert [i["turn_index"] for i in infos[1:]] == targets
    assert terminated and not truncated and infos[-1]["end_reason"] == "dialogue_end"
    assert rewards == [0.0] * len(targets)  # no reward configured
    assert not any(k.startswith("reward_") for k in infos[-1])
    for obs, info, index in zip(observations, infos[1:], targets):
        history, client, target = dialogue.context_at(index)
        assert obs["client_utterance"] == client.text
        assert obs["history"] == render_history([(t.speaker, t.text) for t in history])
        assert obs["situation"] == dialogue.situation and obs["problem_type"] == dialogue.problem_type
        assert info["reference"] == target.text
        assert info["gold"] == {"client_emotion": client.emotion, "therapist_emotion": target.emotion, "strategy": target.strategy}
    with pytest.raises(EnvStateError, match="call reset"):
        env.step("one more")


def test_step_before_reset_is_a_clear_error(corpus):
    with pytest.raises(EnvStateError, match="call reset"):
        CounselingEnv(corpus, media=False).step("hello")


def test_max_turns_truncates(corpus):
    env = CounselingEnv(corpus, media=False, max_turns=2)
    dialogue = _longest(env)
    assert len(dialogue.target_indices()) > 2
    _, rewards, infos, terminated, truncated = _episode(env, options={"dialogue_id": dialogue.id})
    assert len(rewards) == 2 and truncated and not terminated and infos[-1]["end_reason"] == "max_turns"
    with pytest.raises(ConfigError, match="max_turns"):
        CounselingEnv(corpus, max_turns=0)


def test_same_seed_same_episode_and_rewards_other_seeds_other_dialogues(corpus, composite):
    def run(seed):
        env = CounselingEnv(corpus, reward_spec=composite, nan_reward=math.nan)
        observations, rewards, infos, _, _ = _episode(env, seed=seed, reply="You sound sad and tired.")
        return [o["client_utterance"] for o in observations], rewards, [i.get("turn_index") for i in infos], observations[0]["video"]

    first, second = run(3), run(3)
    assert first[:3] == second[:3] and np.array_equal(first[3], second[3])
    dialogues = {CounselingEnv(corpus, media=False).reset(seed=seed)[1]["dialogue_id"] for seed in range(8)}
    assert len(dialogues) > 1


def test_unseeded_resets_continue_the_seeded_stream(corpus):
    a, b = CounselingEnv(corpus, media=False), CounselingEnv(corpus, media=False)
    a.reset(seed=5)
    b.reset(seed=5)
    assert [a.reset()[1]["dialogue_id"] for _ in range(5)] == [b.reset()[1]["dialogue_id"] for _ in range(5)]


def test_reset_options_pick_the_dialogue_and_are_checked(corpus):
    env = CounselingEnv(corpus, media=False)
    assert env.reset(options={"dialogue_index": 2})[1]["dialogue_id"] == env.dialogues[2].id
    with pytest.raises(ConfigError, match="did you mean 'dialogue_id'"):
        env.reset(options={"dialogue": "x"})
    with pytest.raises(ConfigError, match="no dialogue 'nope'"):
        env.reset(options={"dialogue_id": "nope"})
    with pytest.raises(ConfigError, match="dialogue_index must be"):
        env.reset(options={"dialogue_index": len(env.dialogues)})


def test_split_selects_dialogues(corpus):
    for split in ("train", "val", "test"):
        env = CounselingEnv(corpus, split=split, media=False)
        assert {d.split for d in env.dialogues} == {split}
    with pytest.raises(DataError, match="unknown split"):
        CounselingEnv(corpus, split="dev")


def test_dialogues_without_a_target_turn_are_skipped_and_counted(corpus):
    lone_client = Dialogue("only-client", "train", (Turn.from_segments("client", [Segment("hi", "joy")]),))
    greeting_first = Dialogue("therapist-first", "train", (Turn.from_segments("therapist", [Segment("Welcome.", "neutral", "Others")]),))
    env = CounselingEnv([lone_client, *corpus.split("train"), greeting_first], media=False)
    assert env.skipped == 2 and env.skipped_ids == ["only-client", "therapist-first"]
    assert env.reset(seed=0)[1]["skipped"] == 2
    with pytest.raises(DataError, match="nothing to reply to"):
        CounselingEnv([lone_client, greeting_first])


# ----- rewards -----


def test_info_breaks_the_reward_down(corpus, composite):
    env = CounselingEnv(corpus, media=False, reward_spec=composite)
    env.reset(seed=0)
    emotion = env.context.gold_client_emotion
    reply = f"It sounds like you feel {emotion}."
    _, reward, _, _, info = env.step(reply)
    length = min(len(reply), 100) / 100
    assert info["rewards"] == {"length": pytest.approx(length), "picky": 1.0}
    assert reward == pytest.approx(length + 2.0) == info["reward"]
    assert info["reward_failures"] == {} and info["reward_failed"] is False and info["reward_gates"] == {}


def test_a_failed_reward_raises_by_default_and_the_step_can_be_retried(corpus, composite):
    env = CounselingEnv(corpus, media=False, reward_spec=composite)
    env.reset(seed=0)
    before = env.context
    with pytest.raises(
        RewardError, match=r"is NaN \(failures: \{'picky': 'ValueError: cannot score a reply containing FAIL'\}\); pass nan_reward"
    ):
        env.step("FAIL")
    assert env.context == before  # nothing advanced
    _, reward, _, _, info = env.step("Tell me more.")
    assert math.isfinite(reward) and info["turn_index"] == before.turn_index


@pytest.mark.parametrize(("nan_reward", "expected"), [(math.nan, math.nan), (-1.0, -1.0)])
def test_a_failed_reward_shows_in_info_never_as_zero(corpus, composite, nan_reward, expected):
    env = CounselingEnv(corpus, media=False, reward_spec=composite, nan_reward=nan_reward)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("FAIL")
    assert math.isnan(reward) if math.isnan(expected) else reward == expected
    assert info["reward_failed"] is True and math.isnan(info["reward"])
    assert math.isnan(info["rewards"]["picky"]) and info["rewards"]["length"] == pytest.approx(0.04)
    assert info["reward_failures"] == {"picky": "ValueError: cannot score a reply containing FAIL"}


def test_skip_mode_scores_what_it_can_and_still_reports_the_failure(corpus):
    composite = Composite([(length_reward(), 1.0), (picky_reward(), 2.0)], on_missing="skip")
    env = CounselingEnv(corpus, media=False, reward_spec=composite)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("FAIL")
    assert reward == pytest.approx(0.04) and info["reward_failed"] is False and "picky" in info["reward_failures"]


def test_reward_arguments_are_checked(corpus):
    with pytest.raises(ConfigError, match="nan_reward"):
        CounselingEnv(corpus, nan_reward="zero")
    with pytest.raises(ConfigError, match="unknown reward 'safty'.*did you mean 'safety'"):
        CounselingEnv(corpus, reward_spec={"rewards": {"safty": 1.0}})


@pytest.mark.slow
def test_a_yaml_reward_spec_with_the_local_criteria(corpus, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("rewards:\n  safety: 1.0\n  empathy: 1.0\n")
    env = CounselingEnv(corpus, media=False, reward_spec=spec)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("I'm so sorry you're going through this. How are you feeling right now?")
    assert set(info["rewards"]) == {"safety", "empathy"} and 0.0 <= reward <= 2.0


# ----- actions -----


@pytest.mark.parametrize("action", [42, b"bytes", None, ["a list"]])
def test_an_action_that_is_not_a_string_is_a_clear_error(corpus, action):
    env = CounselingEnv(corpus, media=False)
    env.reset(seed=0)
    with pytest.raises(ActionError, match="must be the therapist's reply as a str") as raised:
        env.step(action)
    assert isinstance(raised.value, MmrlError) and isinstance(raised.value, TypeError)
    env.step("still fine")  # the episode is intact


def test_a_long_reply_is_clipped_with_a_warning_and_scored_as_clipped(corpus):
    env = CounselingEnv(corpus, media=False, reward_spec=Composite([(length_reward(), 1.0)]))
    env.reset(seed=0)
    with pytest.warns(ActionWarning, match="clipped"):
        _, reward, _, _, info = env.step("a" * (S.REPLY_MAX_LENGTH + 50))
    assert info["action_clipped"] and not info["action_sanitized"] and reward == 1.0


def test_characters_outside_the_charset_are_folded_or_removed_with_a_warning(corpus):
    env = CounselingEnv(corpus, media=False, reward_spec=Composite([(length_reward(), 1.0)]))
    env.reset(seed=0)
    with pytest.warns(ActionWarning, match="outside"):
        _, reward, _, _, info = env.step("ﬁne 🙂\x00")
    assert info["action_sanitized"] and not info["action_clipped"] and reward == pytest.approx(len("fine ") / 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert env.step("Plain ASCII and “typographic” quotes – fine…")[4]["action_sanitized"] is False


def test_sampled_actions_are_accepted(corpus):
    env = CounselingEnv(corpus, media=False)
    env.reset(seed=0)
    env.action_space.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            obs, *_ = env.step(env.action_space.sample())
            assert obs in env.observation_space


# ----- media -----


def test_media_is_decoded_to_fixed_shapes_with_masks(corpus):
    env = CounselingEnv(corpus)
    obs, _ = env.reset(seed=0)
    assert obs["video"].shape == S.VIDEO_SHAPE and obs["video"].dtype == np.uint8 and obs["video"].std() > 0
    assert obs["audio"].shape == (S.AUDIO_SAMPLES,) and obs["audio"].dtype == np.float32 and np.abs(obs["audio"]).max() > 0
    assert obs["media_mask"].tolist() == [1, 1] and obs in env.observation_space
    with pytest.raises(ValueError, match="read-only"):
        obs["video"][0, 0, 0, 0] = 1


def test_media_arrays_are_resampled_cropped_and_padded_deterministically():
    frames = np.random.default_rng(0).integers(0, 255, (3, 96, 128, 3), dtype=np.uint8)
    long_audio = np.sin(np.linspace(0, 2000, 8000 * 5)).astype(np.float32)  # 5 s at 8 kHz
    media = Media(frames=frames, waveform=long_audio, sample_rate=8000)
    turns = (
        Turn.from_segments("client", [Segment("hi", "joy", media=media)]),
        Turn.from_segments("therapist", [Segment("hello", "neutral", "Others")]),
    )
    env = CounselingEnv([Dialogue("arrays", "train", turns)])
    obs, _ = env.reset(seed=0)
    assert obs["video"].shape == S.VIDEO_SHAPE and obs["media_mask"].tolist() == [1, 1]
    centre = frames[0, :, 16:112]  # centre 96x96 square of the first frame
    assert np.array_equal(obs["video"][0], centre[(np.arange(64) * 96) // 64][:, (np.arange(64) * 96) // 64])
    assert np.array_equal(obs["video"][-1], frames[2, :, 16:112][(np.arange(64) * 96) // 64][:, (np.arange(64) * 96) // 64])
    assert np.abs(obs["audio"]).max() > 0.5  # 5 s cropped to the centre 2 s: no padding
    short = Media(waveform=long_audio[:4000], sample_rate=8000)  # 0.5 s: padded at the end
    env = CounselingEnv([Dialogue("short", "train", (Turn.from_segments("client", [Segment("hi", "joy", media=short)]), turns[1]))])
    obs, _ = env.reset(seed=0)
    assert np.abs(obs["audio"][:7900]).max() > 0.5 and not obs["audio"][8100:].any() and obs["media_mask"].tolist() == [0, 1]
    assert not obs["video"].any()


def test_a_broken_media_file_raises_or_is_masked(corpus, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    media = Media(video_path=broken)
    turns = (
        Turn.from_segments("client", [Segment("hi", "joy", media=media)]),
        Turn.from_segments("therapist", [Segment("hello", "neutral", "Others")]),
    )
    dialogue = Dialogue("broken", "train", turns)
    with pytest.raises(DataError, match="cannot decode video"):
        CounselingEnv([dialogue]).reset(seed=0)
    obs, info = CounselingEnv([dialogue], on_media_error="mask").reset(seed=0)
    assert obs["media_mask"].tolist() == [0, 0] and not obs["video"].any() and "cannot decode video" in info["media_errors"][0]


# ----- predictor -----


class FakePredictor:
    """Deterministic Components from the turn index; counts its calls."""

    def __init__(self, dim: int = 6) -> None:
        self.dim, self.calls = dim, 0

    def predict(self, items):
        self.calls += 1
        out = []
        for _, index in items:
            emotions = np.full(7, 0.05, np.float32)
            emotions[index % 7] = 0.7
            strategy = np.full(10, 0.02, np.float32)
            strategy[index % 10] = 0.82
            out.append(Components(emotions, emotions[::-1].copy(), strategy, np.arange(self.dim, dtype=np.float32) + index))
        return out


def test_predictor_outputs_fill_the_observation_and_the_reward_context(corpus):
    seen: list[Context] = []

    def spy(contexts, replies):
        seen.extend(contexts)
        return [1.0] * len(replies)

    from rewards.registry import FunctionReward

    predictor = FakePredictor()
    env = CounselingEnv(
        corpus, predictor=predictor, reward_spec=Composite([(FunctionReward(spy, name="spy", version="1", score_range=(0, 1)), 1.0)])
    )
    assert env.embedding_dim == 6 and env.observation_space["embedding"].shape == (6,)  # probed once
    obs, info = env.reset(seed=0)
    assert obs["predictor_mask"].tolist() == [1] and obs in env.observation_space
    index = info["turn_index"]
    assert obs["client_emotion"].argmax() == index % 7 and obs["embedding"][0] == index
    calls = predictor.calls
    _episode(env, options={"dialogue_id": info["dialogue_id"]})
    assert predictor.calls == calls  # one batched call per dialogue, already made
    assert seen[-1].predicted["strategy"][seen[-1].turn_index % 10] == pytest.approx(0.82)


def test_without_predictor_the_rows_are_zero_and_masked(corpus):
    obs, _ = CounselingEnv(corpus, media=False).reset(seed=0)
    assert obs["predictor_mask"].tolist() == [0] and not obs["strategy"].any() and obs["embedding"].shape == (S.EMBEDDING_DIM,)


def test_a_predictor_of_the_wrong_width_is_named(corpus):
    with pytest.raises(ConfigError, match=r"embedding has shape \(6,\), expected \(4,\)"):
        CounselingEnv(corpus, predictor=FakePredictor(6), embedding_dim=4).reset(seed=0)
    with pytest.raises(ConfigError, match="EmotionPredictor"):
        CounselingEnv(corpus, predictor=object())


def test_history_rendering_drops_whole_turns_from_the_oldest():
    history = [("client", "a" * 50), ("therapist", "b" * 50), ("client", "c" * 50)]
    assert render_history(history, max_length=200) == "\n".join(f"{s.capitalize()}: {t}" for s, t in history)
    assert render_history(history, max_length=130) == "Therapist: " + "b" * 50 + "\nClient: " + "c" * 50
    assert render_history(history, max_length=40) == ""
    assert render_history([("client", "I’m 🙂 ok")]) == "Client: I’m  ok"


def test_render_shows_the_last_exchange(corpus):
    env = CounselingEnv(corpus, media=False, render_mode="ansi")
    env.reset(seed=0)
    env.step("Tell me more.")
    text = env.render()
    assert "Therapist: Tell me more." in text and "Reward: 0" in text and env.context.client_utterance in text
