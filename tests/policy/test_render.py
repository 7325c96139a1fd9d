"""render_messages / render_turn: the policy's chat prompt, history truncation by whole turns, predictor outputs."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.errors import ConfigError
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.policy.models import tiny_policy
from mmrl.policy.prompts import OUTPUT_FIELDS, SYSTEM_PROMPT, render_messages, render_turn
from mmrl.predictor import Components
from rewards.base import Context

HISTORY = tuple(("client" if i % 2 == 0 else "therapist", f"turn {i}: " + "words " * (i + 1)) for i in range(10))
CONTEXT = Context(
    client_utterance="I can't sleep since the layoff.",
    history=HISTORY,
    situation="Laid off after twelve years.",
    problem_type="Job Crisis",
    video_description="The client looks down and rubs their eyes.",
)


def _history_lines(messages) -> list[str]:
    return [line for line in messages[1]["content"].splitlines() if line.startswith(("Client: ", "Therapist: "))]


def test_system_prompt_is_a_careful_therapist_with_the_output_format():
    assert "supportive therapist" in SYSTEM_PROMPT and "safety comes first" in SYSTEM_PROMPT and "crisis line" in SYSTEM_PROMPT
    assert "ignore" not in SYSTEM_PROMPT.lower()
    for field in OUTPUT_FIELDS:
        assert f"\n{field}: <" in SYSTEM_PROMPT
    assert all(label in SYSTEM_PROMPT for label in (*EMOTIONS, *STRATEGIES))


def test_the_user_message_renders_the_context_in_order():
    messages = render_messages(CONTEXT, max_history_turns=100)
    assert [m["role"] for m in messages] == ["system", "user"] and messages[0]["content"] == SYSTEM_PROMPT
    content = messages[1]["content"]
    order = ["Situation: Laid off after twelve years.", "Problem type: Job Crisis", "Conversation so far:", "Client: turn 0:",
             "Therapist: turn 9:", 'The client now says: "I can\'t sleep since the layoff."', "What the client's video shows: The client looks down"]  # fmt: skip
    positions = [content.index(part) for part in order]
    assert positions == sorted(positions)
    assert "Emotion predictor" not in content  # no predictor outputs given
    empty = render_messages(Context("Hello."))[1]["content"]
    assert "Situation: not given" in empty and "none, this is the start of the session" in empty and "video shows" not in empty


def test_history_is_cut_by_whole_turns_from_the_oldest_to_a_turn_count():
    lines = _history_lines(render_messages(CONTEXT, max_history_turns=3))
    assert lines == [f"{s.capitalize()}: {t}" for s, t in HISTORY[-3:]]
    assert "(7 earlier turns omitted)" in render_messages(CONTEXT, max_history_turns=3)[1]["content"]
    assert "(every earlier turn omitted)" in render_messages(CONTEXT, max_history_turns=0)[1]["content"]


@pytest.mark.parametrize("budget", [0, 10, 40, 75, 5000])
def test_history_is_cut_by_whole_turns_to_a_token_budget(budget):
    _, tokenizer = tiny_policy()
    lines = _history_lines(render_messages(CONTEXT, max_history_tokens=budget, tokenizer=tokenizer))
    full = [f"{s.capitalize()}: {t}" for s, t in HISTORY]
    assert lines == full[len(full) - len(lines) :]  # a suffix of whole turns, never part of one
    used = sum(len(tokenizer(line + "\n", add_special_tokens=False)["input_ids"]) for line in lines)
    assert used <= budget
    if len(lines) < len(full):  # the next older turn would not have fit
        older = full[len(full) - len(lines) - 1]
        assert used + len(tokenizer(older + "\n", add_special_tokens=False)["input_ids"]) > budget
    assert (len(lines) == len(full)) == (budget == 5000)


def test_predictor_outputs_show_the_client_emotion_and_the_top_three_strategies():
    strategy = np.array([0.05, 0.30, 0.02, 0.40, 0.03, 0.05, 0.10, 0.02, 0.02, 0.01])
    client = np.array([0.1, 0.05, 0.05, 0.05, 0.05, 0.65, 0.05])
    components = Components(client, np.eye(7)[0], strategy, np.zeros(4))
    text = render_turn(CONTEXT, components)
    assert "- Client emotion: sadness (0.65)" in text and "- Therapist emotion to show: neutral (1.00)" in text
    assert "- Suggested strategies: Restatement (0.40), Open question (0.30), Advisement (0.10)" in text
    from_context = render_messages(Context("Hi", predicted=components.probabilities()))[1]["content"]
    assert "Restatement (0.40), Open question (0.30), Advisement (0.10)" in from_context  # context.predicted is the default
    with pytest.raises(ConfigError, match="strategy must have 10 probabilities"):
        render_turn(CONTEXT, {"strategy": [0.5, 0.5]})


def test_budgets_are_checked():
    with pytest.raises(ConfigError, match="max_history_turns must be an integer >= 0"):
        render_messages(CONTEXT, max_history_turns=-1)
