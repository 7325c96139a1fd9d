"""Registration and Gymnasium's own checker over every registered mmrl env id."""

from __future__ import annotations

import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)

MMRL_IDS = sorted(env_id for env_id in gymnasium.registry if env_id.startswith("mmrl/"))


def test_the_counseling_ids_are_registered_by_string_entry_point():
    assert {"mmrl/Counseling-v0", "mmrl/CounselingText-v0"} <= set(MMRL_IDS)
    for env_id in MMRL_IDS:
        assert isinstance(gymnasium.spec(env_id).entry_point, str), env_id
    assert gymnasium.spec("mmrl/CounselingText-v0").kwargs == {"media": False}


@pytest.mark.parametrize("env_id", MMRL_IDS)
def test_check_env_passes_without_warnings(env_id, default_cache, capsys):
    env = gymnasium.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    env.close()
    assert [str(w.message) for w in caught] == []


def test_make_with_the_module_prefix_and_the_text_variant(default_cache):
    env = gymnasium.make("envs:mmrl/Counseling-v0")
    text = gymnasium.make("envs:mmrl/CounselingText-v0")
    obs, _ = env.reset(seed=1)
    text_obs, _ = text.reset(seed=1)
    assert {"video", "audio", "media_mask"} <= set(obs) and not {"video", "audio", "media_mask"} & set(text_obs)
    assert obs["client_utterance"] == text_obs["client_utterance"]
    assert obs in env.observation_space and text_obs in text.observation_space


REWARD_KEYS = {"reward", "rewards", "reward_failures", "reward_failed"}
SPEC = {"rewards": {"length": 1.0}}


@pytest.mark.parametrize("env_id", MMRL_IDS)
def test_every_env_reports_rewards_in_the_same_info_keys(env_id, default_cache):
    env = gymnasium.make(env_id, reward_spec=SPEC)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample() if env_id == "mmrl/Strategy-v0" else "That sounds hard. What happened?")
    assert REWARD_KEYS <= set(info), sorted(info)
    assert "length" in info["rewards"] and info["reward_failed"] is False and info["reward_failures"] == {}
    assert reward == pytest.approx(info["reward"])


def test_the_rllib_callback_logs_the_optimised_total_and_each_component():
    from mmrl.train.strategy import RewardMetricsCallback

    class Episode:
        def get_infos(self, index):
            return {"reward": 1.5, "rewards": {"length": 0.5, "strategy_match": 1.0, "broken": float("nan")}}

    logged = []

    class Logger:
        def log_value(self, key, value, reduce):
            logged.append((key, value, reduce))

    RewardMetricsCallback().on_episode_step(episode=Episode(), metrics_logger=Logger())
    assert ("reward", 1.5, "mean") in logged and ("rewards/length/mean", 0.5, "mean") in logged
    assert ("rewards/broken/failures", 1.0, "sum") in logged and not any(k == "rewards/broken/mean" for k, _, _ in logged)
