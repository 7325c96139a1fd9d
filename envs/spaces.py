"""The shared Gymnasium spaces of the counseling envs, their fixed shapes, and the text charset.

Text (``spaces.Text``) uses :data:`CHARSET`: ``string.printable`` plus Latin-1 and Latin Extended-A
letters and the common typographic punctuation (curly quotes, dashes, ellipsis, bullet, euro).
:func:`sanitize` brings any text into it: Unicode NFKC compatibility forms first ("ﬁ" -> "fi",
full-width letters -> ASCII), then every character still outside the charset (emoji, CJK, control
characters) is removed. The envs are meant for English / Latin-script dialogue.

Fixed shapes (constants below):

==================  =====================  ==========  ==========================================
key                 shape                  dtype       range / meaning
==================  =====================  ==========  ==========================================
history             text <= 16384 chars    str         earlier turns, oldest whole turns dropped
client_utterance    text <= 2048 chars     str         the client's latest turn, clipped
video_description   text <= 2048 chars     str         "" when the turn has none
situation           text <= 2048 chars     str         "" when unknown
problem_type        text <= 256 chars      str         "" when unknown
video               (8, 64, 64, 3)         uint8       0..255 RGB, zeros when absent
audio               (32000,)               float32     -1..1, 2 s mono at 16 kHz, zeros when absent
media_mask          (2,)                   int8        [video present, audio present]
client_emotion      (7,)                   float32     0..1 probabilities, ``EMOTIONS`` order
therapist_emotion   (7,)                   float32     0..1 probabilities, ``EMOTIONS`` order
strategy            (10,)                  float32     0..1 probabilities, ``STRATEGIES`` order
embedding           (embedding_dim,)       float32     any finite float32 (default dim 128)
predictor_mask      (1,)                   int8        1 when a predictor filled the four above
==================  =====================  ==========  ==========================================
"""

from __future__ import annotations

import re
import string
import unicodedata

import numpy as np
from gymnasium import spaces

from mmrl.errors import ConfigError
from mmrl.labels import EMOTIONS, STRATEGIES

__all__ = [
    "CHARSET",
    "REPLY_MAX_LENGTH",
    "UTTERANCE_MAX_LENGTH",
    "HISTORY_MAX_LENGTH",
    "SITUATION_MAX_LENGTH",
    "PROBLEM_TYPE_MAX_LENGTH",
    "VIDEO_FRAMES",
    "FRAME_SIZE",
    "VIDEO_SHAPE",
    "SAMPLE_RATE",
    "AUDIO_SECONDS",
    "AUDIO_SAMPLES",
    "EMBEDDING_DIM",
    "sanitize",
    "clip_text",
    "text_space",
    "reply_space",
    "observation_space",
]

_TYPOGRAPHY = "\u2018\u2019\u201a\u201c\u201d\u201e\u2010\u2011\u2012\u2013\u2014\u2015\u2026\u2022\u2032\u2033\u20ac\u2122"
#: Every character a Text space here accepts.
CHARSET: str = string.printable + "".join(map(chr, range(0xA0, 0x180))) + _TYPOGRAPHY

#: Most characters of one therapist reply (the action).
REPLY_MAX_LENGTH = 1024
#: Most characters of the client utterance and of the video description.
UTTERANCE_MAX_LENGTH = 2048
#: Most characters of the rendered history.
HISTORY_MAX_LENGTH = 16384
SITUATION_MAX_LENGTH = 2048
PROBLEM_TYPE_MAX_LENGTH = 256

VIDEO_FRAMES = 8
FRAME_SIZE = 64
VIDEO_SHAPE: tuple[int, int, int, int] = (VIDEO_FRAMES, FRAME_SIZE, FRAME_SIZE, 3)
SAMPLE_RATE = 16_000
AUDIO_SECONDS = 2.0
AUDIO_SAMPLES = int(SAMPLE_RATE * AUDIO_SECONDS)
#: Width of the fused embedding when no predictor says otherwise (the predictor's default ``d_model``).
EMBEDDING_DIM = 128


_OUTSIDE = re.compile("[^" + re.escape(CHARSET) + "]")
_F32_MAX = float(np.finfo(np.float32).max)


def _replace(match: re.Match[str]) -> str:
    folded = unicodedata.normalize("NFKC", match.group(0))
    return "" if _OUTSIDE.search(folded) else folded


def sanitize(text: str) -> tuple[str, bool]:
    """``(text within CHARSET, whether anything changed)``: NFKC forms folded, other outsiders removed.

    >>> sanitize("ﬁne 🙂")
    ('fine ', True)
    >>> sanitize("I’m fine.")
    ('I’m fine.', False)
    """
    if _OUTSIDE.search(text) is None:
        return text, False
    return _OUTSIDE.sub(_replace, text), True


def clip_text(text: str, max_length: int) -> str:
    """``text`` within CHARSET and at most ``max_length`` characters (the end is cut)."""
    return sanitize(text)[0][:max_length]


def text_space(max_length: int) -> spaces.Text:
    """A Text space over CHARSET of 0..``max_length`` characters."""
    return spaces.Text(max_length, min_length=0, charset=CHARSET)


def reply_space() -> spaces.Text:
    """The action space: one therapist reply of 0..REPLY_MAX_LENGTH characters over CHARSET."""
    return text_space(REPLY_MAX_LENGTH)


def observation_space(*, media: bool = True, embedding_dim: int = EMBEDDING_DIM) -> spaces.Dict:
    """The observation space of the counseling envs (see the module docstring); ``media=False`` drops video, audio, media_mask."""
    if not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ConfigError(f"embedding_dim must be a positive integer, got {embedding_dim!r}")
    out: dict[str, spaces.Space] = {
        "history": text_space(HISTORY_MAX_LENGTH),
        "client_utterance": text_space(UTTERANCE_MAX_LENGTH),
        "video_description": text_space(UTTERANCE_MAX_LENGTH),
        "situation": text_space(SITUATION_MAX_LENGTH),
        "problem_type": text_space(PROBLEM_TYPE_MAX_LENGTH),
    }
    if media:
        out["video"] = spaces.Box(0, 255, VIDEO_SHAPE, np.uint8)
        out["audio"] = spaces.Box(-1.0, 1.0, (AUDIO_SAMPLES,), np.float32)
        out["media_mask"] = spaces.MultiBinary(2)
    out["client_emotion"] = spaces.Box(0.0, 1.0, (len(EMOTIONS),), np.float32)
    out["therapist_emotion"] = spaces.Box(0.0, 1.0, (len(EMOTIONS),), np.float32)
    out["strategy"] = spaces.Box(0.0, 1.0, (len(STRATEGIES),), np.float32)
    out["embedding"] = spaces.Box(-_F32_MAX, _F32_MAX, (embedding_dim,), np.float32)
    out["predictor_mask"] = spaces.MultiBinary(1)
    return spaces.Dict(out)
