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
