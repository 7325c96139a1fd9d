"""Replay and simulated clients: personas, crisis escalation, leaving, determinism, HF and HTTP backends (transport: tests/test_llm.py)."""

from __future__ import annotations

import pytest
import torch

from envs.clients import CLIENT_LEFT, ClientError, PersonaCard, ReplayClient, SimulatedClient, client_messages
from envs.counseling import CounselingEnv
from mmrl.data import Dialogue, Segment, Turn
from mmrl.errors import ConfigError, DataError
from mmrl.policy.models import tiny_policy
from mmrl.policy.prompts import format_output
from tests.fixtures.chat_server import ChatCompletionsServer, completion


@pytest.fixture(scope="module")
def client_model():
    return tiny_policy(seed=1)


def _persona(**overrides) -> PersonaCard:
    fields = {
        "problem_type": "Job Crisis",
        "situation": "Laid off last week.",
        "emotions": ("sadness", "anger"),
        "opening": "I lost my job.",
    }
    return PersonaCard(**{**fields, **overrides})


def _simulated_env(corpus, client_model, **persona):
    model, tokenizer = client_model
    client = SimulatedClient(model, tokenizer, persona=_persona(**persona), max_new_tokens=8)
    return CounselingEnv(corpus, media=False, client=client), client


# ----- replay -----


def test_replay_client_follows_the_target_turns(corpus):
    dialogue = corpus.split("train")[0]
    client = ReplayClient()
    with pytest.raises(ClientError, match="call reset"):
        client.respond("hi")
    steps = [client.reset(dialogue)]
    while (step := client.respond("anything")) is not None:
        steps.append(step)
    assert [s.index for s in steps] == dialogue.target_indices() and client.end_reason == "dialogue_end"
    assert steps[0].context().reference == dialogue.turns[steps[0].index].text
    lone = Dialogue("lone", "train", (Turn.from_segments("client", [Segment("hi", "joy")]),))
    with pytest.raises(ClientError, match="no therapist turn"):
        client.reset(lone)


# ----- personas -----


def test_persona_trajectory_escalates_to_crisis():
    persona = _persona(crisis_turn=2)
    assert [persona.state(t) for t in range(4)] == [
        ("sadness", "none"),
        ("anger", "none"),
        ("depression", "crisis"),
        ("depression", "crisis"),
    ]
    calm = _persona()
    assert calm.state(5) == ("anger", "none")  # the last emotion repeats
    crisis_prompt = client_messages(persona, [], *persona.state(2))[0]["content"]
    calm_prompt = client_messages(persona, [], *persona.state(0))[0]["content"]
    assert "crisis" in crisis_prompt and "ending your life" in crisis_prompt and "depression" in crisis_prompt
    assert "crisis" not in calm_prompt and "not at risk" in calm_prompt


def test_persona_fields_are_checked():
    with pytest.raises(DataError, match="unknown emotion 'glee'"):
        _persona(emotions=("glee",))
    with pytest.raises(ConfigError, match="risk must be one of"):
        _persona(risk="severe")
    with pytest.raises(ConfigError, match="leave_after"):
        _persona(leave_after=0)
    with pytest.raises(ConfigError, match="list of phrases"):
        _persona(leave_if="bye")


def test_persona_from_a_recorded_dialogue(corpus):
    dialogue = corpus.split("train")[0]
    persona = PersonaCard.from_dialogue(dialogue, risk="low")
    clients = [t for t in dialogue.turns if t.speaker == "client"]
    assert persona.emotions == tuple(t.emotion for t in clients) and persona.opening == clients[0].text
    assert persona.problem_type == dialogue.problem_type and persona.risk == "low"


# ----- simulated client in the env -----


def test_crisis_escalation_changes_risk_and_emotion_and_leaving_terminates(corpus, client_model):
    env, client = _simulated_env(corpus, client_model, crisis_turn=2, leave_after=4)
    obs, info = env.reset(seed=0)
    assert obs["client_utterance"] == "I lost my job." and info["client_risk"] == "none"
    assert env.context.gold_client_emotion == "sadness" and env.context.reference is None and obs["history"] == ""
    risks, emotions, ends = [], [], []
    for turn in range(4):
        obs, _, terminated, truncated, info = env.step(format_output("sadness", "neutral", "Open question", f"Question {turn}?"))
        risks.append(info["client_risk"])
        emotions.append(env.context.gold_client_emotion if env.context else None)
        ends.append(info["end_reason"])
    assert risks == ["none", "crisis", "crisis", None] and emotions == ["anger", "depression", "depression", None]
    assert ends == ["", "", "", CLIENT_LEFT] and terminated and not truncated
    spoken = [t.text for t in client.turns if t.speaker == "therapist"]
    assert spoken == [f"Question {i}?" for i in range(4)]  # the client heard the Reply: field only
    assert all(t.speaker == "client" for t in client.turns[::2])


def test_the_history_holds_the_policys_own_replies(corpus, client_model):
    env, _ = _simulated_env(corpus, client_model)
    env.reset(seed=0)
    obs, *_ = env.step("That sounds really hard.")
    assert obs["history"] == "Client: I lost my job.\nTherapist: That sounds really hard."
    assert obs["client_utterance"] and obs in env.observation_space


def test_a_phrase_makes_the_client_leave(corpus, client_model):
    env, _ = _simulated_env(corpus, client_model, leave_if=("calm down",))
    env.reset(seed=0)
    assert not env.step("How long has this been going on?")[2]
    _, _, terminated, _, info = env.step("Just CALM DOWN.")
    assert terminated and info["end_reason"] == CLIENT_LEFT


def test_sampled_episodes_are_deterministic_per_seed_and_leave_torch_rng_alone(corpus, client_model):
    model, tokenizer = client_model

    def run(seed):
        persona = _persona(opening=None)  # the opening is generated too
        env = CounselingEnv(
            corpus, media=False, client=SimulatedClient(model, tokenizer, persona=persona, temperature=1.0, max_new_tokens=6)
        )
        return [env.reset(seed=seed)[0]["client_utterance"], env.step("Go on.")[0]["client_utterance"]]

    state = torch.get_rng_state()
    assert run(4) == run(4)
    assert torch.equal(state, torch.get_rng_state())


def test_simulated_client_arguments_are_checked(client_model):
    model, tokenizer = client_model
    with pytest.raises(ConfigError, match="Hugging Face causal LM and its tokenizer"):
        SimulatedClient("gpt-4o")
    with pytest.raises(ConfigError, match="served model's name"):
        SimulatedClient(model, tokenizer, base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ClientError, match="call reset"):
        SimulatedClient(model, tokenizer).respond("hi")


# ----- OpenAI-compatible backend -----


class _Server(ChatCompletionsServer):
    """Answers from a queue of (status, text), then "Fine."."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, path: str, body: dict, auth: str) -> tuple[int, str, dict]:
        status, text = self.answers.pop(0) if self.answers else (200, "Fine.")
        return completion(text) if status == 200 else (status, text, {})


@pytest.fixture
def server():
    server = _Server()
    yield server
    server.close()


def test_http_backend_sends_the_persona_prompt_and_retries(corpus, server, monkeypatch):
    monkeypatch.setenv("SIM_KEY", "secret-123")
    client = SimulatedClient(
        "sim-model", base_url=server.url, api_key_env="SIM_KEY", persona=_persona(opening=None, crisis_turn=1), backoff_s=0.01
    )
    server.answers = [(200, "Client: I lost my job and I feel awful.\nTherapist: I see.")]
    env = CounselingEnv(corpus, media=False, client=client)
    obs, _ = env.reset(seed=0)
    assert obs["client_utterance"] == "I lost my job and I feel awful."  # role label and therapist line removed
    body, auth = server.requests[0]["body"], server.requests[0]["auth"]
    assert auth == "Bearer secret-123" and body["model"] == "sim-model" and isinstance(body["seed"], int)
    assert body["messages"][0]["role"] == "system" and "Job Crisis" in body["messages"][0]["content"]
    server.answers = [(503, "busy"), (200, "I can't do this anymore.")]
    obs, _, _, _, info = env.step("How are you feeling today?")
    assert obs["client_utterance"] == "I can't do this anymore." and info["client_risk"] == "crisis"
    assert len(server.requests) == 3 and "crisis" in server.requests[-1]["body"]["messages"][0]["content"]
    assert server.requests[-1]["body"]["messages"][-1] == {"role": "user", "content": "How are you feeling today?"}
    server.answers = [(404, "no such model secret-123")]
    with pytest.raises(ClientError, match=r"failed after 1 attempt\(s\): HTTP 404") as raised:
        env.step("Tell me more.")
    assert "secret-123" not in str(raised.value)
    server.answers = [(200, "Okay.")]
    obs, *_ = env.step("Tell me more.")  # the failed step changed nothing: retried, it goes through once
    assert obs["history"].count("Tell me more.") == 1 and obs["client_utterance"] == "Okay."


def test_a_client_factory_gives_every_vector_env_its_own_client(corpus_dir, client_model):
    import functools

    import gymnasium

    import envs  # noqa: F401

    model, tokenizer = client_model
    factory = functools.partial(SimulatedClient, model, tokenizer, persona=_persona(), max_new_tokens=4)
    vector = gymnasium.make_vec("mmrl/CounselingText-v0", num_envs=2, vectorization_mode="sync", data=str(corpus_dir), client=factory)
    obs, _ = vector.reset(seed=0)
    assert obs["client_utterance"] == ("I lost my job.", "I lost my job.")
    obs, *_ = vector.step(("One.", "Two."))
    assert [h.splitlines()[-1] for h in obs["history"]] == ["Therapist: One.", "Therapist: Two."]
    first, second = (env.unwrapped.client for env in vector.envs)
    assert first is not second
    vector.close()
