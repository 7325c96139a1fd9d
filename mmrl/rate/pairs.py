"""Pair files: the blind file raters read (one pair of replies per line) and its key (which system wrote which reply).

Two shapes are read, one JSON object per line:

- the blind format (:func:`make_pairs` with ``data`` and ``experiments/mesc/blind_pairs.py`` write it): ``id``, ``reply_a``, ``reply_b`` and the
  context fields ``situation``, ``history`` (``[{"speaker", "text"}]``, the last turns), ``client_utterance`` and
  optionally ``video_description``. The context fields may all be absent (the committed ``docs/results`` file holds only
  ids and replies): the app then says that the context is missing.
- any ``{"context", "reply_a", "reply_b"}`` file, ``context`` a string (``id`` optional: the line number otherwise).

The key is ``{"id", "a", "b"}`` per line: the system that wrote ``reply_a`` and ``reply_b``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmrl.data.io import json_lines
from mmrl.data.sources import load_dialogues
from mmrl.errors import ConfigError, DataError
from rewards.base import Context

__all__ = ["LAST_TURNS", "Pair", "context_fields", "load_key", "load_pairs", "make_pairs", "turn_contexts", "write_jsonl"]

#: The newest history turns kept with each pair's context (:func:`context_fields`).
LAST_TURNS = 4


@dataclass(frozen=True)
class Pair:
    """One blind item: two replies to the same context. ``history`` is ``(speaker, text)`` pairs."""

    id: str
    reply_a: str
    reply_b: str
    situation: str | None = None
    history: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    client_utterance: str | None = None
    video_description: str | None = None
    context: str | None = None

    @property
    def has_context(self) -> bool:
        """Whether any context came with the pair (else raters are told it is missing)."""
        return bool(self.situation or self.history or self.client_utterance or self.video_description or self.context)


def _string(row: dict, name: str, path: Path, line: int, *, required: bool) -> str | None:
    value = row.get(name)
    if value is None:
        if required:
            raise DataError(f"missing {name!r} (a pair needs id, reply_a and reply_b)", path=path, line=line, field=name)
        return None
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__} {value!r:.60}", path=path, line=line, field=name)
    return value


def load_pairs(path: str | Path) -> list[Pair]:
    """The pairs of a jsonl file; a DataError naming the file, the line and the field for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"pairs file {path} not found: give the jsonl that `mmrl rate make-pairs` (or experiments/mesc/blind_pairs.py) wrote"
        )
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for line_no, row in json_lines(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", path=path, line=line_no)
        pair_id = row.get("id", str(line_no))
        if not isinstance(pair_id, (str, int)) or isinstance(pair_id, bool):
            raise DataError(f"expected a string id, got {pair_id!r:.60}", path=path, line=line_no, field="id")
        pair_id = str(pair_id)
        if pair_id in seen:
            raise DataError(f"id {pair_id!r} repeats line {seen[pair_id]}; ids must be unique", path=path, line=line_no, field="id")
        seen[pair_id] = line_no
        history = row.get("history") or []
        if not isinstance(history, list) or not all(
            isinstance(t, dict) and isinstance(t.get("speaker"), str) and isinstance(t.get("text"), str) for t in history
        ):
            raise DataError('expected a list of {"speaker": str, "text": str}', path=path, line=line_no, field="history")
        pairs.append(
            Pair(
                id=pair_id,
                reply_a=_string(row, "reply_a", path, line_no, required=True),
                reply_b=_string(row, "reply_b", path, line_no, required=True),
                situation=_string(row, "situation", path, line_no, required=False),
                history=tuple((t["speaker"], t["text"]) for t in history),
                client_utterance=_string(row, "client_utterance", path, line_no, required=False),
                video_description=_string(row, "video_description", path, line_no, required=False),
                context=_string(row, "context", path, line_no, required=False),
            )
        )
    if not pairs:
        raise DataError("no pairs (the file is empty)", path=path)
    return pairs


def load_key(path: str | Path) -> dict[str, tuple[str, str]]:
    """``{id: (system of reply_a, system of reply_b)}`` from a key jsonl; DataError naming the file and line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"key file {path} not found: give the --key that `mmrl rate make-pairs` wrote")
    key: dict[str, tuple[str, str]] = {}
    for line_no, row in json_lines(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("a", "b")) or "id" not in row:
            raise DataError('expected {"id", "a": system, "b": system}', path=path, line=line_no)
        if row["a"] == row["b"]:
            raise DataError(f"both replies are from {row['a']!r}; a key names two different systems", path=path, line=line_no)
        key[str(row["id"])] = (row["a"], row["b"])
    return key


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _samples(eval_dir: Path) -> dict[tuple[str, int], dict]:
    path = Path(eval_dir) / "samples.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found: give a directory written by `mmrl eval --out`")
    rows = {}
    for line_no, row in json_lines(path):
        if isinstance(row, DataError):
            raise row
        try:
            rows[(str(row["dialogue_id"]), int(row["turn_index"]))] = row
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not an `mmrl eval` sample ({type(exc).__name__}: {exc})", path=path, line=line_no) from None
    return rows


def _reply(sample: dict) -> str:
    return sample.get("reply") or sample.get("completion") or ""


def turn_contexts(
    turns: Sequence[tuple[str, int]], data: str | Path, *, format: str | None = None, split: str | None = None, where: str
) -> dict[tuple[str, int], Context]:
    """The Context of each ``(dialogue id, turn index)`` from ``data`` (its ``split``, None: all); a turn whose dialogue
    ``data`` lacks is a DataError saying it is in ``where``."""
    dialogues = {d.id: d for d in load_dialogues(data, format=format, split=split)}
    out = {}
    for dialogue_id, turn in turns:
        if dialogue_id not in dialogues:
            raise DataError(f"turn {turn} of dialogue {dialogue_id!r} is in {where} but not in --data {data}", path=data)
        out[(dialogue_id, turn)] = Context.from_dialogue(dialogues[dialogue_id], turn)
    return out


def context_fields(context: Context) -> dict:
    """A pair's reference-free context fields: situation, the last :data:`LAST_TURNS` turns, client utterance, video."""
    return {
        "situation": context.situation,
        "history": [{"speaker": s, "text": t} for s, t in context.history[-LAST_TURNS:]],
        "client_utterance": context.client_utterance,
        "video_description": context.video_description,
    }


def make_pairs(
    eval_a: Path,
    eval_b: Path,
    *,
    n: int = 60,
    seed: int = 0,
    data: Path | None = None,
    format: str | None = None,
    names: tuple[str, str] | None = None,
) -> tuple[list[dict], list[dict]]:
    """The blind pairs and their key from two ``mmrl eval --out`` directories evaluated on the same turns.

    Draws ``n`` turns (seeded) where both generations succeeded and both replies are non-empty, puts the two replies in
    a seeded order, and — with ``data`` — adds each turn's reference-free context (situation, the last
    :data:`LAST_TURNS` turns, the client utterance, the video description; never the reference reply).
    """
    names = names or (Path(eval_a).resolve().name, Path(eval_b).resolve().name)
    if names[0] == names[1]:
        names = (f"{names[0]}_a", f"{names[1]}_b")
    a, b = _samples(eval_a), _samples(eval_b)
    usable = sorted(
        k for k in set(a) & set(b) if a[k].get("generation_failure") is None and b[k].get("generation_failure") is None and _reply(a[k]) and _reply(b[k])
    )  # fmt: skip
    if len(usable) < n:
        raise ConfigError(
            f"only {len(usable)} turns have a successful reply in both {eval_a} and {eval_b}; asked for --n {n}: pass a smaller --n"
        )
    contexts = {} if data is None else turn_contexts(usable, data, format=format, where="the eval samples")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(usable, n), key=lambda k: (k[0].zfill(12), k[1]))
    pairs, key = [], []
    for i, k in enumerate(chosen, 1):
        systems = [(names[0], a[k]), (names[1], b[k])]
        rng.shuffle(systems)
        row = {
            "id": f"p{i:03d}",
            "dialogue_id": k[0],
            "turn_index": k[1],
            "reply_a": _reply(systems[0][1]),
            "reply_b": _reply(systems[1][1]),
        }
        if k in contexts:
            row |= context_fields(contexts[k])
        pairs.append(row)
        key.append({"id": row["id"], "a": systems[0][0], "b": systems[1][0]})
    return pairs, key
