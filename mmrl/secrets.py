"""Keeping secrets out of what mmrl writes and logs."""

from __future__ import annotations

import re

__all__ = ["redact"]


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``, also where a server echoed it JSON-escaped
    (any of its characters written as ``\\uXXXX``), so that decoding the text later cannot bring it back.

    >>> redact('{"error": "bad key sk\\\\u002dabc"}', "sk-abc")
    '{"error": "bad key ***"}'
    """
    if not secret:
        return text
    pattern = "".join(rf"(?:{re.escape(ch)}|\\u{ord(ch):04x})" for ch in secret)
    return re.sub(pattern, "***", text, flags=re.IGNORECASE)
