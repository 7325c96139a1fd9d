"""The policy's structured output: one block of labelled lines the rewards and evaluation parse.

    Client emotion: sadness
    Therapist emotion: neutral
    Strategy: Restatement
    Reply: It sounds like the last week has been really hard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmrl.errors import DataError
from mmrl.labels import normalise_emotion, normalise_strategy

__all__ = ["OUTPUT_FIELDS", "ParsedOutput", "format_output", "parse_output"]

OUTPUT_FIELDS = ("Client emotion", "Therapist emotion", "Strategy", "Reply")
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
    for key, normalise in (("client emotion", normalise_emotion), ("therapist emotion", normalise_emotion), ("strategy", normalise_strategy)):
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
