"""CounselingEnv inside Gymnasium's vector envs."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from envs import spaces as S


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_batch_observations_and_autoreset(corpus_dir, mode):
    vector = gymnasium.make_vec("mmrl/Counseling-v0", num_envs=2, vectorization_mode=mode, data=str(corpus_dir))
    try:
        obs, info = vector.reset(seed=7)
        assert obs["video"].shape == (2, *S.VIDEO_SHAPE) and obs["audio"].shape == (2, S.AUDIO_SAMPLES)
        assert len(obs["client_utterance"]) == 2 and all(isinstance(t, str) and t for t in obs["client_utterance"])
        assert obs["media_mask"].tolist() == [[1, 1], [1, 1]]
        ended = 0
        for _ in range(12):
            obs, reward, terminated, _, info = vector.step(("I hear you.", "Tell me more."))
            assert reward.tolist() == [0.0, 0.0] and obs in vector.observation_space
            ended += int(terminated.sum())
        assert ended >= 1  # dialogues have 3-6 therapist turns: some episode ended and was reset
        assert {"client_emotion", "therapist_emotion", "strategy"} <= set(info["gold"])
    finally:
        vector.close()


def test_vector_rewards_and_seeding_match_single_envs(corpus, composite):
    from envs.counseling import CounselingEnv

    def make():
        return CounselingEnv(corpus, media=False, reward_spec=composite, nan_reward=math.nan)

    vector = gymnasium.vector.SyncVectorEnv([make, make])
    vector.reset(seed=[11, 12])
    _, rewards, _, _, info = vector.step(("FAIL", "You sound sad."))
    singles = []
    for seed, reply in ((11, "FAIL"), (12, "You sound sad.")):
        env = make()
        env.reset(seed=seed)
        singles.append(env.step(reply)[1])
    assert math.isnan(rewards[0]) and math.isnan(singles[0]) and rewards[1] == pytest.approx(singles[1])
    assert info["reward_failed"].tolist() == [True, False] and np.isnan(info["rewards"]["picky"][0])
