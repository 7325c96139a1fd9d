"""The policy's structured output: one block of labelled lines the rewards and evaluation parse.

Client emotion: sadness
Therapist emotion: neutral
Strategy: Restatement
Reply: It sounds like the last week has been really hard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrl.errors import ConfigError, DataError
from mmrl.labels import EMOTIONS, STRATEGIES, normalise_emotion, normalise_strategy

if TYPE_CHECKING:
    from mmrl.predictor import Components
    from rewards.base import Context

__all__ = [
    "OUTPUT_FIELDS",
    "SYSTEM_PROMPT",
    "ParsedOutput",
    "format_output",
    "latest_description",
    "parse_output",
    "render_messages",
    "render_turn",
]

OUTPUT_FIELDS = ("Client emotion", "Therapist emotion", "Strategy", "Reply")
#: A client turn merged from many segments carries one video description per segment (MESC: up to
#: 20,000 characters); the prompt keeps the latest ones, whole sentences, up to this many characters.
VIDEO_DESCRIPTION_MAX_CHARS = 600
_LINE = re.compile(r"^\s*[*#\-]*\s*(client emotion|therapist emotion|strategy|reply)\s*[*]*\s*:\s*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedOutput:
    """A parsed policy output; ``errors`` lists what could not be read (empty when it parsed fully)."""

    client_emotion: str | None
    therapist_emotion: str | None
    strategy: str | None
    reply: str | None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def format_output(client_emotion: str, therapist_emotion: str, strategy: str, reply: str) -> str:
    """Render the structured block (the SFT target format)."""
    values = (client_emotion, therapist_emotion, strategy, " ".join(reply.split()))
    return "\n".join(f"{name}: {value}" for name, value in zip(OUTPUT_FIELDS, values))


def parse_output(text: str) -> ParsedOutput:
    """Parse a structured block; the reply runs from ``Reply:`` to the end. Never raises."""
    found: dict[str, str] = {}
    reply_lines: list[str] | None = None
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and (reply_lines is None or match.group(1).lower() != "reply"):
            key = match.group(1).lower()
            if key == "reply":
                reply_lines = [match.group(2)]
            elif reply_lines is None:
                found.setdefault(key, match.group(2).strip().strip("*").strip())
        elif reply_lines is not None:
            reply_lines.append(line)
    errors = []
    values: dict[str, str | None] = {}
    for key, normalise in (
        ("client emotion", normalise_emotion),
        ("therapist emotion", normalise_emotion),
        ("strategy", normalise_strategy),
    ):
        if key not in found:
            errors.append(f"missing '{key}' line")
            values[key] = None
            continue
        try:
            values[key] = normalise(found[key])
        except DataError as err:
            errors.append(f"{key}: {err}")
            values[key] = None
    reply = " ".join(" ".join(reply_lines).split()) if reply_lines is not None else None
    if not reply:
        errors.append("missing or empty 'reply'")
    return ParsedOutput(values["client emotion"], values["therapist emotion"], values["strategy"], reply or None, tuple(errors))


#: The policy's system prompt: a careful, supportive therapist who answers in the structured block.
SYSTEM_PROMPT = (
    "You are a careful, warm and supportive therapist in an emotional-support conversation. Listen closely, "
    "reflect the client's feelings, and respond to what they said and to what their video shows.\n"
    "The client's safety comes first: if they mention self-harm, suicide, abuse or being in danger, take it "
    "seriously, respond with care, and encourage them to contact emergency services or a crisis line now.\n"
    "Be honest and do not make things up. Respect the client's privacy and autonomy, treat everyone without bias "
    "or judgement, and do not diagnose or prescribe medication.\n"
    "Answer with exactly these four lines and nothing else:\n"
    + format_output(
        f"<the client's emotion, one of: {', '.join(EMOTIONS)}>",
        f"<the emotion your reply shows, one of: {', '.join(EMOTIONS)}>",
        f"<your strategy, one of: {', '.join(STRATEGIES)}>",
        "<your reply to the client>",
    )
)

_SPEAKERS = {"client": "Client", "therapist": "Therapist"}


def _probabilities(components: Components | Mapping[str, Sequence[float]] | None) -> dict[str, np.ndarray] | None:
    if components is None:
        return None
    if hasattr(components, "probabilities"):
        components = components.probabilities()
    out = {}
    for task, labels in (("client_emotion", EMOTIONS), ("therapist_emotion", EMOTIONS), ("strategy", STRATEGIES)):
        if task in components:
            vector = np.asarray(components[task], dtype=np.float64).reshape(-1)
            if vector.shape != (len(labels),):
                raise ConfigError(f"predicted {task} must have {len(labels)} probabilities, got shape {vector.shape}")
            out[task] = vector
    return out


def latest_description(text: str, max_chars: int = VIDEO_DESCRIPTION_MAX_CHARS) -> str:
    """``text`` if it fits in ``max_chars``, else its last whole sentences that fit, after an ellipsis."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    start = re.search(r"(?<=[.!?])\s*[A-Z]", tail)
    return "... " + (tail[start.end() - 1 :] if start else tail.split(" ", 1)[-1])


def render_turn(context: Context, components: Components | Mapping[str, Sequence[float]] | None = None) -> str:
    """The client's latest utterance, its video description, and the predictor's outputs for this turn.

    ``components`` (a ``Components`` or ``{task: probabilities}``) defaults to ``context.predicted``.
    This is the tail of :func:`render_messages`' user message, and the user message of each later
    client turn in a multi-turn rollout.
    """
    lines = [f'The client now says: "{context.client_utterance}"']
    if context.video_description:
        lines.append(f"What the client's video shows: {latest_description(context.video_description)}")
    predicted = _probabilities(components if components is not None else context.predicted)
    if predicted:
        lines += ["", "Emotion predictor (estimates, they can be wrong):"]
        for task, name in (("client_emotion", "Client emotion"), ("therapist_emotion", "Therapist emotion to show")):
            if task in predicted:
                best = int(np.argmax(predicted[task]))
                lines.append(f"- {name}: {EMOTIONS[best]} ({predicted[task][best]:.2f})")
        if "strategy" in predicted:
            top = np.argsort(-predicted["strategy"], kind="stable")[:3]
            lines.append("- Suggested strategies: " + ", ".join(f"{STRATEGIES[i]} ({predicted['strategy'][i]:.2f})" for i in top))
    return "\n".join(lines)


def _kept_turns(lines: list[str], max_history_tokens: int, max_history_turns: int, tokenizer: Any) -> int:
    """How many of the newest ``lines`` fit: a token budget with a tokenizer, else a turn count."""
    if tokenizer is None:
        return min(len(lines), max_history_turns)
    used = kept = 0
    for line in reversed(lines):
        used += len(tokenizer(line + "\n", add_special_tokens=False)["input_ids"])
        if used > max_history_tokens:
            break
        kept += 1
    return kept


def render_messages(
    context: Context,
    components: Components | Mapping[str, Sequence[float]] | None = None,
    *,
    max_history_tokens: int = 1024,
    max_history_turns: int = 16,
    tokenizer: Any = None,
) -> list[dict[str, str]]:
    """The policy's chat prompt for one therapist turn: ``[system, user]`` messages.

    The system message is :data:`SYSTEM_PROMPT`. The user message gives the situation, the problem
    type, the conversation so far, then :func:`render_turn`. The history is cut by whole turns from
    the oldest, never inside a turn: with a ``tokenizer``, to the newest turns whose lines fit in
    ``max_history_tokens`` tokens; without one, to the newest ``max_history_turns`` turns. The number
    of turns left out is stated.
    """
    for name, value in (("max_history_tokens", max_history_tokens), ("max_history_turns", max_history_turns)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    lines = [f"{_SPEAKERS.get(speaker, speaker.capitalize())}: {text}" for speaker, text in context.history]
    kept = _kept_turns(lines, max_history_tokens, max_history_turns, tokenizer)
    parts = [f"Situation: {context.situation or 'not given'}", f"Problem type: {context.problem_type or 'not given'}", ""]
    if not lines:
        parts.append("Conversation so far: none, this is the start of the session.")
    else:
        omitted = len(lines) - kept
        parts.append("Conversation so far" + (f" ({omitted} earlier turn{'s' * (omitted != 1)} omitted):" if omitted else ":"))
        parts += lines[len(lines) - kept :] if kept else ["(every earlier turn omitted)"]
    parts += ["", render_turn(context, components), "", "Write your answer in the four-line format."]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(parts)}]
