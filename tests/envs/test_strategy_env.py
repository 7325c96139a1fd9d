"""StrategyEnv (mmrl/Strategy-v0): spaces and layout, the retrieval realiser, rewards, failures, determinism, episode end."""

from __future__ import annotations

import math
import pickle
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.base import EnvStateError
from envs.realiser import RetrievalRealiser
from envs.strategy import MATCH_NAME, StrategyEnv, observation_layout
from mmrl.data.schema import Dialogue, Segment, Turn
from mmrl.errors import ConfigError, SplitLeakError
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor import Components
from rewards.base import Context, RewardError
from rewards.compose import Composite
from rewards.registry import FunctionReward

TOPICS = [
    "my sister stopped talking to me after the wedding",
    "I failed the exam again and my parents are furious",
    "work keeps piling up and my boss never notices",
    "I cannot sleep since the accident",
    "my dog died last week",
    "I moved to a new city and know nobody",
    "my husband wants a divorce",
    "I drink more than I should lately",
    "my best friend betrayed my trust",
    "I am scared of the surgery next month",
    "money is so tight I skip meals",
    "my son does not listen to me anymore",
    "I keep fighting with my roommate about chores",
    "I lost my job on Friday",
    "my mother is sick and I live far away",
    "I feel invisible at school",
    "the panic attacks are back",
    "I think my partner is cheating",
    "my grandfather passed away",
    "I hate how I look in the mirror",
    "nobody came to my birthday",
    "I crashed my car",
    "my teacher humiliated me in class",
    "I am always tired",
    "my landlord is evicting me",
    "I got rejected from every college",
    "I had a huge argument with my dad",
    "my band broke up",
    "I feel guilty all the time",
    "I was bullied online",
    "I cannot stop worrying about the future",
    "my girlfriend moved abroad",
    "I burned out at my startup",
]


def _dialogue(index: int, split: str, strategies: list[str | None]) -> Dialogue:
    turns, did = [], f"{split}-{index}"
    for step, strategy in enumerate(strategies):
        topic = TOPICS[(3 * index + step + (11 if split != "train" else 0)) % len(TOPICS)]
        turns.append(Turn.from_segments("client", [Segment(f"Honestly, {topic}.", "sadness")]))
        reply = f"[{did}/{2 * step + 1}] {strategy} reply about {topic}."
        turns.append(Turn.from_segments("therapist", [Segment(reply, "neutral", strategy)]))
    return Dialogue(did, split, tuple(turns), "Depression", "The client feels low.", source="test")  # type: ignore[arg-type]


def _corpus() -> list[Dialogue]:
    """8 train dialogues (every strategy in 2+ of them), 2 val, 1 test; 3 therapist targets each."""
    train = [_dialogue(k, "train", [STRATEGIES[(3 * k + j) % 10] for j in range(3)]) for k in range(8)]
    val = [_dialogue(k, "val", [STRATEGIES[(7 * k + j) % 10] for j in range(3)]) for k in range(2)]
    test = [_dialogue(0, "test", [STRATEGIES[j] for j in range(3)])]
    return train + val + test


DIALOGUES = _corpus()
TRAIN = [d for d in DIALOGUES if d.split == "train"]
VAL = [d for d in DIALOGUES if d.split == "val"]


def _words(contexts, replies):
    return [min(len(r.split()), 20) / 20 for r in replies]


def _fails_on_self_disclosure(contexts, replies):
    return [None if "Self-disclosure" in r else 0.5 for r in replies]


def words() -> Composite:
    return Composite([(FunctionReward(_words, name="words", version="1", score_range=(0.0, 1.0)), 1.0)])


class FakePredictor:
    """Follows the EmotionPredictor protocol: one-hot client emotion by turn index, a 16-d embedding."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, items):
        self.calls += 1
        out = []
        for dialogue, index in items:
            client = np.eye(len(EMOTIONS))[index % len(EMOTIONS)]
            out.append(Components(client, np.eye(len(EMOTIONS))[0], np.full(len(STRATEGIES), 0.1), np.full(16, float(index))))
        return out


@pytest.fixture(scope="module")
def realiser() -> RetrievalRealiser:
    return RetrievalRealiser(TRAIN)


@pytest.fixture
def env(realiser) -> StrategyEnv:
    return StrategyEnv(DIALOGUES, split="train", reward_spec=words(), realiser=realiser)


@pytest.fixture
def val_env(realiser) -> StrategyEnv:
    return StrategyEnv(DIALOGUES, split="val", reward_spec=words(), realiser=realiser, order="sequential")


def _gold(env: StrategyEnv) -> int:
    return int(env.episodes.gold[env._row])


# -- spaces, layout, checker ------------------------------------------------------------------


def test_check_env_passes_without_warnings(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert [str(w.message) for w in caught] == []


def test_registered_id_makes_the_env_with_arguments(realiser):
    env = gymnasium.make("mmrl/Strategy-v0", data=DIALOGUES, reward_spec=words(), realiser=realiser, render_mode="ansi")
    assert gymnasium.spec("mmrl/Strategy-v0").entry_point == "envs.strategy:StrategyEnv"
    check_env(env.unwrapped)
    env.reset(seed=0)
    env.step(0)
    assert "Therapist:" in env.render()


def test_spaces_and_documented_layout(env):
    layout = observation_layout()
    assert env.action_space == gymnasium.spaces.Discrete(10)
    assert env.observation_space.shape == (128 + 38,) and env.observation_space.dtype == np.float32
    sizes = {name: s.stop - s.start for name, s in layout.items()}
    assert sizes == {
        "embedding": 128,
        "predictor_mask": 1,
        "client_emotion": 7,
        "therapist_emotion": 7,
        "strategy": 10,
        "position": 1,
        "previous_strategy": 11,
        "client_length": 1,
    }
    assert [s.start for s in layout.values()] == [0, *np.cumsum(list(sizes.values()))[:-1]]


def test_turn_features_without_predictor(env):
    layout = env.layout
    dialogue = TRAIN[2]
    obs, info = env.reset(options={"dialogue_id": dialogue.id})
    assert info == {"dialogue_id": dialogue.id, "turn_index": 1}
    assert not obs[layout["embedding"]].any() and obs[layout["predictor_mask"]][0] == 0
    assert not obs[layout["client_emotion"]].any() and not obs[layout["strategy"]].any()
    assert obs[layout["previous_strategy"]].tolist() == [0.0] * 10 + [1.0]  # no earlier therapist turn
    assert obs[layout["position"]][0] == pytest.approx(math.log(2) / math.log(257))
    words_in_client = len(dialogue.turns[0].text.split())
    assert obs[layout["client_length"]][0] == pytest.approx(math.log1p(words_in_client) / math.log(257))
    obs, *_ = env.step(0)
    assert obs[layout["previous_strategy"]].argmax() == STRATEGIES.index(dialogue.turns[1].strategy)
    assert obs[layout["position"]][0] == pytest.approx(math.log(4) / math.log(257))


def test_predictor_slices_fill_and_set_the_embedding_width(realiser):
    predictor = FakePredictor()
    env = StrategyEnv(TRAIN, reward_spec=words(), realiser=realiser, predictor=predictor)
    assert predictor.calls == 1  # one batched call at construction, none per step
    assert env.observation_space.shape == (16 + 38,)
    obs, _ = env.reset(options={"dialogue_index": 0})
    layout = env.layout
    assert obs[layout["predictor_mask"]][0] == 1
    assert obs[layout["embedding"]].tolist() == [1.0] * 16
    assert obs[layout["client_emotion"]].argmax() == 1 and obs[layout["strategy"]].tolist() == pytest.approx([0.1] * 10)
    env.step(0)
    assert predictor.calls == 1
    with pytest.raises(ConfigError, match="embedding has shape"):
        StrategyEnv(TRAIN, reward_spec=words(), realiser=realiser, predictor=predictor, embedding_dim=8)


# -- the realiser -------------------------------------------------------------------------------


def test_realiser_refuses_held_out_dialogues():
    with pytest.raises(SplitLeakError, match="train split"):
        RetrievalRealiser(TRAIN + VAL)


def test_realiser_retrieves_train_replies_of_the_chosen_strategy_only(realiser):
    train_replies = {(t.text, t.strategy) for d in TRAIN for t in d.turns if t.speaker == "therapist"}
    held_out_replies = {t.text for d in DIALOGUES if d.split != "train" for t in d.turns if t.speaker == "therapist"}
    contexts = [Context.from_dialogue(d, i) for d in DIALOGUES for i in d.target_indices()]
    for strategy in STRATEGIES:
        for context, entry in zip(contexts, realiser.nearest(contexts, [strategy] * len(contexts))):
            chosen = realiser.entries[entry]
            assert chosen.split == "train" and chosen.strategy == strategy
            assert (chosen.reply, strategy) in train_replies and chosen.reply not in held_out_replies
            assert chosen.dialogue_id != context.dialogue_id  # every strategy occurs in 2+ train dialogues


def test_realiser_takes_the_most_similar_context():
    realiser = RetrievalRealiser(TRAIN)
    source = TRAIN[5]
    query = Context(client_utterance=source.turns[2].text, dialogue_id="elsewhere", turn_index=3)
    (entry,) = realiser.nearest([query], [source.turns[3].strategy])
    assert realiser.entries[entry].reply == source.turns[3].text
    assert realiser([query], [source.turns[3].strategy]) == [source.turns[3].text]


def test_val_env_replies_come_from_train_only(val_env):
    train_by_strategy = {s: {t.text for d in TRAIN for t in d.turns if t.strategy == s} for s in STRATEGIES}
    for index in range(len(val_env.episodes)):
        val_env.reset(options={"dialogue_index": index})
        done, action = False, index
        while not done:
            _, _, terminated, truncated, info = val_env.step(action % 10)
            assert info["reply"] in train_by_strategy[info["strategy"]]
            done, action = terminated or truncated, action + 3


# -- rewards ------------------------------------------------------------------------------------


def test_strategy_match_term_and_breakdown(env):
    env.reset(seed=1)
    gold = _gold(env)
    _, reward, _, _, info = env.step(gold)
    assert info["rewards"][MATCH_NAME] == 1.0 and info["strategy"] == info["gold_strategy"] == STRATEGIES[gold]
    assert set(info["rewards"]) == {"words", MATCH_NAME} and info["reward_failures"] == {} and info["reward_failed"] is False
    assert info["rewards"]["words"] == pytest.approx(min(len(info["reply"].split()), 20) / 20)
    assert reward == info["reward"] == pytest.approx(info["rewards"]["words"] + 1.0)
    wrong = (_gold(env) + 1) % 10
    _, reward, _, _, info = env.step(wrong)
    assert info["rewards"][MATCH_NAME] == 0.0 and reward == pytest.approx(info["rewards"]["words"])


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_match_weight_scales_the_term(realiser, weight):
    env = StrategyEnv(TRAIN, reward_spec=words(), realiser=realiser, match_weight=weight)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(_gold(env))
    assert reward == pytest.approx(info["rewards"]["words"] + weight)


def test_the_default_reward_spec_is_the_mean_of_the_trust_criteria():
    from envs.strategy import DEFAULT_REWARD_SPEC

    assert sorted(DEFAULT_REWARD_SPEC["rewards"]) == sorted(
        ["truthfulness", "safety", "fairness", "privacy", "empathy", "reliability", "ethical_guidance"]
    )
    assert sum(DEFAULT_REWARD_SPEC["rewards"].values()) == pytest.approx(1.0)


def test_failures_raise_or_are_listed_never_zero(realiser):
    failing = Composite([(FunctionReward(_fails_on_self_disclosure, name="picky", version="1", score_range=(0.0, 1.0)), 1.0)])
    with pytest.raises(RewardError, match="could not be scored.*Self-disclosure"):
        StrategyEnv(TRAIN, reward_spec=failing, realiser=realiser)
    env = StrategyEnv(TRAIN, reward_spec=failing, realiser=realiser, nan_reward=-1.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(STRATEGIES.index("Self-disclosure"))
    assert reward == -1.0 and math.isnan(info["rewards"]["picky"]) and "returned None" in info["reward_failures"]["picky"]
    _, reward, _, _, info = env.step(STRATEGIES.index("Approval"))
    assert info["reward_failures"] == {} and reward == pytest.approx(0.5 + info["rewards"][MATCH_NAME])


def test_a_turn_without_gold_strategy_is_a_failure(realiser):
    unlabelled = [_dialogue(0, "val", ["Approval", None])]
    with pytest.raises(RewardError, match="no gold strategy"):
        env = StrategyEnv(unlabelled, split="val", reward_spec=words(), realiser=realiser)
        env.reset(seed=0)
        env.step(0)
        env.step(0)


def test_a_live_realiser_is_called_each_step(realiser):
    calls = []

    def llm(contexts, strategies):
        calls.append(list(strategies))
        return [f"As a {s} move: tell me more." for s in strategies]

    env = StrategyEnv(TRAIN, reward_spec=words(), realiser=llm)
    assert not env.episodes.precomputed and calls == []
    env.reset(seed=0)
    *_, info = env.step(4)
    assert calls == [["Approval"]] and info["reply"] == "As a Approval move: tell me more."
    assert info["rewards"]["words"] == pytest.approx(7 / 20)


# -- determinism, episodes, prebuilt tables -----------------------------------------------------


def _rollout(env: StrategyEnv, seed: int, n: int = 12) -> list:
    out = []
    obs, info = env.reset(seed=seed)
    actions = np.random.default_rng(seed)
    for _ in range(n):
        action = int(actions.integers(10))
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((info["dialogue_id"], info["turn_index"], action, reward, obs.tobytes()))
        if terminated or truncated:
            obs, _ = env.reset()
    return out


def test_same_seed_same_episodes_and_rewards(realiser):
    first = StrategyEnv(TRAIN, reward_spec=words(), realiser=realiser)
    second = StrategyEnv(TRAIN, reward_spec=words(), realiser=RetrievalRealiser(TRAIN))
    assert _rollout(first, 7) == _rollout(second, 7)
    assert [d for d, *_ in _rollout(first, 7)] != [d for d, *_ in _rollout(first, 8)]


def test_sequential_order_restarts_after_a_seeded_reset(val_env):
    ids = [val_env.reset(seed=3 if k == 0 else None)[1]["dialogue_id"] for k in range(3)]
    assert ids == ["val-0", "val-1", "val-0"]
    assert val_env.reset(seed=5)[1]["dialogue_id"] == "val-0"


def test_episode_end_and_truncation(env, realiser):
    env.reset(options={"dialogue_index": 0})
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (True, False)]
    with pytest.raises(EnvStateError):
        env.step(0)
    short = StrategyEnv(TRAIN, reward_spec=words(), realiser=realiser, max_turns=2)
    short.reset(options={"dialogue_index": 0})
    short.step(0)
    *_, terminated, truncated, info = short.step(0)
    assert (terminated, truncated, info["end_reason"]) == (False, True, "max_turns")


def test_bad_actions_and_options_are_rejected(env):
    env.reset(seed=0)
    with pytest.raises(TypeError, match="strategy index"):
        env.step(10)
    with pytest.raises(ConfigError, match="did you mean 'dialogue_id'"):
        env.reset(options={"dialogue_ids": "train-0"})
    with pytest.raises(ConfigError, match="no dialogue"):
        env.reset(options={"dialogue_id": "val-0"})


def test_prebuilt_episodes_pickle_and_replay_identically(env):
    episodes = pickle.loads(pickle.dumps(env.episodes))
    rebuilt = StrategyEnv(episodes=episodes)
    assert rebuilt.composite is None  # nothing to score: every outcome is in the table
    assert _rollout(rebuilt, 4) == _rollout(env, 4)
