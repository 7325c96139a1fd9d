"""mmrl's Gymnasium environments, registered on ``import envs`` by string entry point (nothing heavy imports until made).

>>> import gymnasium
>>> env = gymnasium.make("envs:mmrl/CounselingText-v0")  # doctest: +SKIP
"""

from gymnasium.envs.registration import register, registry

__all__: list[str] = []

_ENVS = {
    # One dialogue per episode, one therapist reply per step; video + audio of the client's turn.
    "mmrl/Counseling-v0": ("envs.counseling:CounselingEnv", {}),
    # The same without media keys, for data without (or users without) video and audio.
    "mmrl/CounselingText-v0": ("envs.counseling:CounselingEnv", {"media": False}),
    # One dialogue per episode, one Discrete(10) strategy per therapist turn (RLlib's env).
    "mmrl/Strategy-v0": ("envs.strategy:StrategyEnv", {}),
}

for _id, (_entry_point, _kwargs) in _ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry_point, kwargs=_kwargs)
