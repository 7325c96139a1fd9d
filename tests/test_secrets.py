"""mmrl.secrets.redact: literal and JSON-escaped occurrences, any case of the escape, nothing without a secret."""

from __future__ import annotations

import doctest

import mmrl.secrets
from mmrl.secrets import redact


def test_redact_literal_and_escaped_forms():
    key = "sk-abc.1"
    assert redact(f"a {key} b", key) == "a *** b"
    assert redact("x sk\\u002Dabc\\u002e1 y", key) == "x *** y"
    assert redact("nothing here", key) == "nothing here" and redact("sk-abc.1", None) == "sk-abc.1"
    assert redact("sk-abcX1", key) == "sk-abcX1"  # '.' is literal, not a regex wildcard
    assert doctest.testmod(mmrl.secrets).failed == 0
