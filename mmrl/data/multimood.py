"""MultiMood jsonl: one line per therapist turn to predict, with the conversation before it.

Lines come in two shapes, told apart per line by the ``utt_user_most_recent`` key; one file holds
one shape. Both read into the same :class:`MultiMoodSample`.

The **mmrl** shape (keys :data:`MULTIMOOD_KEYS`, extra keys ignored), written by default:

- ``history_chat``: the turns before the target as ``"Client: <text>"`` / ``"Therapist: <text>"``
  lines joined by ``"\\n"`` (a list of such lines is read too).
- ``get_cur_user_utt_vid_desc``: video description of the most recent client turn, ``""`` if none.
- ``get_emotion_user_most_recent``: that client turn's emotion (null when unknown).
- ``situation``, ``problem_type``: the session's, ``""`` when unknown.
- ``Emotion``, ``Strategy``: the target therapist turn's labels (null when unknown).
- ``Utterance``: the target therapist reply (non-empty).
- ``path_to_vid_user_most_recent``: video path of the most recent client turn, ``""`` if none, or
  the list of its per-segment paths when it has several.
- ``Dialogue_ID``: the session id (string or integer, read as a string).

The **reference** shape, that of the public MultiMood code (github.com/quangtuan-0504/Multimood):

- ``history_chat``: a list of ``{"role": "user" | "assistant", "content": ...}`` objects, the
  turns before the current client turn. A content is the turn's text, optionally behind a label
  prefix: ``"( user emotion : anger ) : <text>"``, ``"( assistant emotion : neutral , assistant
  strategy : Restatement ) : <text>"``. A *described* client turn is ``"( user emotion : anger ,
  user expresstion : <its text interleaved with video descriptions> )"`` (the reference's spelling).
- ``utt_user_most_recent``: the current client utterance (a string, or a list of strings joined
  with spaces), read as the most recent client turn of the history; empty when there is none.
- ``get_emotion_user_most_recent``, ``get_cur_user_utt_vid_desc`` (optional) and
  ``path_to_vid_user_most_recent`` (a list of per-segment video names) describe that turn.
- ``Utterance``: a string, or a list of strings joined with spaces.
- ``situation``, ``problem_type``, ``Emotion``, ``Strategy``, ``Dialogue_ID`` as above;
  ``history_chat_mamba`` and ``set`` are ignored (and not written).

:func:`load_multimood` rebuilds :class:`Dialogue` s from the samples (one history line is one turn
of one segment); :func:`samples_from_dialogues` goes back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mmrl.data.io import json_lines
from mmrl.data.schema import (
    Corpus,
    Dialogue,
    LoadReport,
    Media,
    Segment,
    Speaker,
    Split,
    Turn,
    check_split,
)
from mmrl.errors import DataError
from mmrl.labels import normalise_emotion, normalise_strategy

__all__ = [
    "MULTIMOOD_KEYS",
    "STYLES",
    "HistoryLabels",
    "MultiMoodSample",
    "load_multimood",
    "read_samples",
    "samples_from_dialogues",
    "write_samples",
]

#: :class:`MultiMoodSample` attribute -> jsonl key, in the order mmrl-shape lines are written.
MULTIMOOD_KEYS: dict[str, str] = {
    "history_chat": "history_chat",
    "client_video_description": "get_cur_user_utt_vid_desc",
    "client_emotion": "get_emotion_user_most_recent",
    "situation": "situation",
    "problem_type": "problem_type",
    "emotion": "Emotion",
    "strategy": "Strategy",
    "utterance": "Utterance",
    "client_video_paths": "path_to_vid_user_most_recent",
    "dialogue_id": "Dialogue_ID",
}
#: The line shapes :func:`write_samples` can write.
STYLES: tuple[str, ...] = ("mmrl", "reference")
_REFERENCE_KEYS = [key for key in MULTIMOOD_KEYS.values() if key != "get_cur_user_utt_vid_desc"] + ["utt_user_most_recent"]
_PREFIXES: dict[str, Speaker] = {"Client:": "client", "Therapist:": "therapist"}
_NAMES = {"client": "Client", "therapist": "Therapist"}
_ROLES: dict[str, Speaker] = {"user": "client", "assistant": "therapist"}
_ROLE_NAMES = {speaker: role for role, speaker in _ROLES.items()}
_CLIENT_KEYS = ("get_emotion_user_most_recent", "get_cur_user_utt_vid_desc", "path_to_vid_user_most_recent")
_LABELLED = re.compile(r"\(\s*(?P<body>(?:user|assistant)\s+(?:emotion|strategy)\s*:[^()]*)\)\s*:(?P<text>.*)", re.DOTALL | re.IGNORECASE)
_DESCRIBED = re.compile(
    r"\(\s*(?:user\s+emotion\s*:(?P<emotion>[^,()]*),\s*)?user\s+expres+t?ion\s*:(?P<text>.*)\)", re.DOTALL | re.IGNORECASE
)
_SPLIT_WORDS: dict[str, Split] = {"train": "train", "val": "val", "valid": "val", "dev": "val", "test": "test"}
_SPLIT_RE = re.compile(r"(?<![a-z])(train|valid|val|dev|test)(?![a-z])")


@dataclass(frozen=True)
class HistoryLabels:
    """What a reference-shape history turn carries besides its text.

    ``described``: the text is the reference's "user expresstion" (the turn's text interleaved with
    video descriptions), not the plain utterance.
    """

    emotion: str | None = None
    strategy: str | None = None
    described: bool = False


_NO_LABELS = HistoryLabels()


@dataclass(frozen=True)
class MultiMoodSample:
    """One MultiMood line: a target therapist turn and the conversation before it.

    Attributes map to jsonl keys by :data:`MULTIMOOD_KEYS`; ``client_*`` describe the most recent
    client turn in the history. ``history_labels`` has one entry per history turn, from the
    reference shape's label prefixes, or is empty when no history turn carries any.
    """

    history_chat: str
    client_video_description: str
    client_emotion: str | None
    situation: str
    problem_type: str
    emotion: str | None
    strategy: str | None
    utterance: str
    client_video_paths: tuple[str, ...]
    dialogue_id: str
    history_labels: tuple[HistoryLabels, ...] = ()

    @property
    def history(self) -> tuple[tuple[Speaker, str], ...]:
        """The history as ``(speaker, text)`` pairs."""
        lines = self.history_chat.split("\n") if self.history_chat else []
        turns = tuple(_parse_line(line) for line in lines)
        if None in turns:
            raise DataError("a history line does not start with 'Client:' or 'Therapist:'", field="history_chat")
        return turns  # type: ignore[return-value]

    def to_record(self, style: str = "mmrl") -> dict:
        """The jsonl object of this sample in ``style`` (one of :data:`STYLES`)."""
        return _recorder(style)(self)


def _parse_line(line: str) -> tuple[Speaker, str] | None:
    for prefix, speaker in _PREFIXES.items():
        if line.startswith(prefix):
            return speaker, line[len(prefix) :].strip()
    return None


def _flat(text: str) -> str:
    """``text`` on one line with whitespace runs collapsed, as history lines hold it."""
    return " ".join(text.split())


def _show(value: object) -> str:
    return f"{type(value).__name__} {value!r:.60}"


# --- reading: one normaliser per shape ---------------------------------------------------------


def _history(value: object, where: dict) -> str:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = "\n".join(value)
    if not isinstance(value, str):
        raise DataError(f"expected a string of lines or a list of strings, got {_show(value)}", field="history_chat", **where)
    for k, line in enumerate(value.split("\n") if value else [], 1):
        if _parse_line(line) is None:
            raise DataError(f"history line {k} ({line[:40]!r}) must start with 'Client:' or 'Therapist:'", field="history_chat", **where)
    return value


def _string(record: dict, key: str, where: dict) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {_show(value)}", field=key, **where)
    return value


def _text(record: dict, key: str, where: dict) -> str:
    """A string, or a list of strings joined with spaces (reference shape)."""
    value = record[key]
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return " ".join(value)
    if not isinstance(value, str):
        raise DataError(f"expected a string or a list of strings, got {_show(value)}", field=key, **where)
    return value


def _paths(record: dict, where: dict) -> tuple[str, ...]:
    value = record["path_to_vid_user_most_recent"]
    paths = [] if value == "" else [value] if isinstance(value, str) else value
    if not (isinstance(paths, list) and all(isinstance(p, str) and p for p in paths)):
        raise DataError(f'expected a path, a list of paths or "", got {_show(value)}', field="path_to_vid_user_most_recent", **where)
    return tuple(paths)


def _item_label(value: str | None, normalise: Callable[..., str], k: int, where: dict) -> str | None:
    if value is None:
        return None
    try:
        return normalise(value.strip(), field="history_chat", **where)
    except DataError as err:
        raise DataError(f"history item {k}: {err.reason}", field="history_chat", **where) from None


def _reference_turn(k: int, item: object, where: dict) -> tuple[Speaker, str, HistoryLabels]:
    """Speaker, text and labels of history item ``k`` (1-based) of a reference-shape line."""
    if not (isinstance(item, dict) and item.get("role") in _ROLES and isinstance(item.get("content"), str)):
        raise DataError(
            f"history item {k} must be an object with role 'user' or 'assistant' and a string content, got {_show(item)}",
            field="history_chat",
            **where,
        )
    role, content = item["role"], item["content"].strip()
    emotion = strategy = None
    described = _DESCRIBED.fullmatch(content) if role == "user" else None
    labelled = None if described else _LABELLED.fullmatch(content)
    if described:
        emotion, text = described["emotion"], described["text"]
    elif labelled:
        text = labelled["text"]
        for part in labelled["body"].split(","):
            key, _, value = part.partition(":")
            key = " ".join(key.lower().split())
            if key == f"{role} emotion":
                emotion = value
            elif key == "assistant strategy" and role == "assistant":
                strategy = value
            else:
                raise DataError(f"history item {k} ({role}) has {key!r} in its label prefix", field="history_chat", **where)
    else:
        text = content
    if not _flat(text):
        raise DataError(f"history item {k} has no text", field="history_chat", **where)
    labels = HistoryLabels(
        _item_label(emotion, normalise_emotion, k, where), _item_label(strategy, normalise_strategy, k, where), described is not None
    )
    return _ROLES[role], _flat(text), labels


def _mmrl_parts(record: dict, where: dict) -> tuple[str, tuple[HistoryLabels, ...], str]:
    """History, history labels (none) and Utterance of an mmrl-shape line."""
    return _history(record["history_chat"], where), (), _string(record, "Utterance", where)


def _reference_parts(record: dict, where: dict) -> tuple[str, tuple[HistoryLabels, ...], str]:
    """History (the current client utterance last), history labels and Utterance of a reference-shape line."""
    items = record["history_chat"]
    if not (isinstance(items, list) and all(isinstance(item, dict) for item in items)):
        raise DataError(
            f"the line has utt_user_most_recent (reference shape), so history_chat must be a list of "
            f"{{role, content}} objects, got {_show(items)}",
            field="history_chat",
            **where,
        )
    turns = [_reference_turn(k, item, where) for k, item in enumerate(items, 1)]
    current = _flat(_text(record, "utt_user_most_recent", where))
    if current:
        turns.append(("client", current, _NO_LABELS))
    labels = tuple(labels for _, _, labels in turns)
    history = "\n".join(f"{_NAMES[speaker]}: {text}" for speaker, text, _ in turns)
    return history, labels if any(label != _NO_LABELS for label in labels) else (), _text(record, "Utterance", where)


def _sample(record: object, path: Path, line: int) -> tuple[str, MultiMoodSample]:
    """Validate one parsed jsonl line into ``(shape, sample)``."""
    where = {"path": path, "line": line}
    if isinstance(record, DataError):
        raise record
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", **where)
    shape = "reference" if "utt_user_most_recent" in record else "mmrl"
    history = record.get("history_chat")
    if shape == "mmrl" and isinstance(history, list) and any(isinstance(item, dict) for item in history):
        raise DataError(
            "history_chat holds {role, content} objects as in the reference shape, but the line has no "
            "utt_user_most_recent (the current client utterance); add it, or write 'Client: ...' lines",
            field="history_chat",
            **where,
        )
    needed = _REFERENCE_KEYS if shape == "reference" else list(MULTIMOOD_KEYS.values())
    missing = [key for key in needed if key not in record]
    if missing:
        raise DataError(f"missing field(s) {missing}; a {shape}-shape MultiMood line needs {needed}", field=missing[0], **where)
    if shape == "reference":
        record = {"get_cur_user_utt_vid_desc": ""} | record
    dialogue_id = record["Dialogue_ID"]
    if isinstance(dialogue_id, bool) or not isinstance(dialogue_id, (str, int)) or dialogue_id == "":
        raise DataError(f"expected a non-empty string or an integer, got {_show(dialogue_id)}", field="Dialogue_ID", **where)

    def label(key: str, normalise) -> str | None:
        return None if record[key] is None else normalise(record[key], field=key, **where)

    history_chat, history_labels, utterance = (_reference_parts if shape == "reference" else _mmrl_parts)(record, where)
    sample = MultiMoodSample(
        history_chat=history_chat,
        client_video_description=_string(record, "get_cur_user_utt_vid_desc", where),
        client_emotion=label("get_emotion_user_most_recent", normalise_emotion),
        situation=_string(record, "situation", where),
        problem_type=_string(record, "problem_type", where),
        emotion=label("Emotion", normalise_emotion),
        strategy=label("Strategy", normalise_strategy),
        utterance=utterance,
        client_video_paths=_paths(record, where),
        dialogue_id=str(dialogue_id),
        history_labels=history_labels,
    )
    if not sample.utterance.strip():
        raise DataError("empty Utterance; each line needs the therapist reply it targets", field="Utterance", **where)
    if all(speaker != "client" for speaker, _ in sample.history):
        for key in _CLIENT_KEYS:
            if record[key] not in ("", None, []):
                raise DataError(f"set to {record[key]!r:.60} but history_chat has no client turn", field=key, **where)
    return shape, sample


def _read(path: Path, report: LoadReport) -> list[tuple[int, MultiMoodSample]]:
    """``(line number, sample)`` of each good line; bad lines, duplicates and lines of another shape go to ``report``."""
    out: list[tuple[int, MultiMoodSample]] = []
    seen: dict[tuple[str, int], int] = {}
    first: tuple[str, int] | None = None  # the file's shape and the line that set it
    for line, record in json_lines(path):
        try:
            shape, sample = _sample(record, path, line)
            if first is not None and shape != first[0]:
                raise DataError(
                    f"a {shape}-shape line, but line {first[1]} is {first[0]}-shape; one file holds one shape",
                    path=path,
                    line=line,
                    field="utt_user_most_recent",
                )
            key = (sample.dialogue_id, len(sample.history))
            if key in seen:
                raise DataError(
                    f"duplicate sample: Dialogue_ID {key[0]!r} with {key[1]} history turns is also on line {seen[key]}",
                    path=path,
                    line=line,
                    field="history_chat",
                )
        except DataError as err:
            report.fail(err)
            continue
        first = first or (shape, line)
        seen[key] = line
        out.append((line, sample))
    return out


def read_samples(path: str | Path, *, report: LoadReport | None = None) -> list[MultiMoodSample]:
    """Read and validate a MultiMood jsonl file of either shape; labels come back in canonical spelling.

    Raises :class:`DataError` naming file, line and field at the first bad line, or records it in
    ``report`` and skips the line when ``report.on_error == "skip"``.
    """
    return [sample for _, sample in _read(Path(path), report or LoadReport())]


# --- writing -------------------------------------------------------------------------------------


def _mmrl_record(sample: MultiMoodSample) -> dict:
    """History labels are dropped: the mmrl shape has no place for them."""
    record = {key: getattr(sample, attr) for attr, key in MULTIMOOD_KEYS.items()}
    paths = sample.client_video_paths
    record["path_to_vid_user_most_recent"] = list(paths) if len(paths) > 1 else "".join(paths)
    return record


def _content(speaker: Speaker, text: str, labels: HistoryLabels) -> str:
    role = _ROLE_NAMES[speaker]
    if labels.described:
        head = f"{role} emotion : {labels.emotion} , " if labels.emotion else ""
        return f"( {head}{role} expresstion : {text} )"
    parts = [f"{role} {kind} : {value}" for kind, value in (("emotion", labels.emotion), ("strategy", labels.strategy)) if value]
    return f"( {' , '.join(parts)} ) : {text}" if parts else text


def _reference_record(sample: MultiMoodSample) -> dict:
    """A trailing unlabelled client turn becomes ``utt_user_most_recent``; texts and lists as the reference code reads them."""
    turns = list(zip(sample.history, sample.history_labels or [_NO_LABELS] * len(sample.history)))
    current = ""
    if turns and turns[-1][0][0] == "client" and turns[-1][1] == _NO_LABELS:
        current = turns.pop()[0][1]
    return {
        "Utterance": [sample.utterance],
        "Emotion": sample.emotion,
        "Strategy": sample.strategy,
        "Dialogue_ID": sample.dialogue_id,
        "history_chat": [{"role": _ROLE_NAMES[speaker], "content": _content(speaker, text, labels)} for (speaker, text), labels in turns],
        "path_to_vid_user_most_recent": list(sample.client_video_paths),
        "utt_user_most_recent": [current] if current else [],
        "get_emotion_user_most_recent": sample.client_emotion,
        "get_cur_user_utt_vid_desc": sample.client_video_description,
        "situation": sample.situation,
        "problem_type": sample.problem_type,
    }


def _recorder(style: str) -> Callable[[MultiMoodSample], dict]:
    if style not in STYLES:
        raise DataError(f"unknown style {style!r}; expected one of {list(STYLES)}", field="style")
    return _mmrl_record if style == "mmrl" else _reference_record


def write_samples(path: str | Path, samples: Iterable[MultiMoodSample], *, style: str = "mmrl") -> Path:
    """Write ``samples`` as UTF-8 jsonl in ``style`` and return the path.

    ``"mmrl"`` (keys in :data:`MULTIMOOD_KEYS` order) drops history labels; ``"reference"`` keeps
    them in label prefixes. Either reads back to the samples written (the mmrl shape: less their
    history labels).
    """
    record = _recorder(style)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for sample in samples:
            f.write(json.dumps(record(sample), ensure_ascii=False) + "\n")
    return path


# --- dialogues <-> samples -----------------------------------------------------------------------


def samples_from_dialogues(dialogues: Iterable[Dialogue]) -> list[MultiMoodSample]:
    """One sample per target turn (:meth:`Dialogue.target_indices`) of each dialogue.

    History lines hold each turn's text on one line, whitespace collapsed; the client videos are
    the video paths of the most recent client turn's segments. History labels are left empty.
    """
    samples = []
    for dialogue in dialogues:
        lines = [f"{_NAMES[turn.speaker]}: {_flat(turn.text)}" for turn in dialogue.turns]
        for index in dialogue.target_indices():
            target = dialogue.turns[index]
            client = next((t for t in reversed(dialogue.turns[:index]) if t.speaker == "client"), None)
            samples.append(
                MultiMoodSample(
                    history_chat="\n".join(lines[:index]),
                    client_video_description=(client.video_description or "") if client else "",
                    client_emotion=client.emotion if client else None,
                    situation=dialogue.situation or "",
                    problem_type=dialogue.problem_type or "",
                    emotion=target.emotion,
                    strategy=target.strategy,
                    utterance=target.text,
                    client_video_paths=tuple(str(m.video_path) for m in client.media if m.video_path is not None) if client else (),
                    dialogue_id=dialogue.id,
                )
            )
    return samples


def _split_from_name(path: Path) -> Split:
    found = {_SPLIT_WORDS[word] for word in _SPLIT_RE.findall(path.stem.lower())}
    if len(found) != 1:
        what = "names no split" if not found else f"names several splits {sorted(found)}"
        raise DataError(
            f"the file name {what}; give the split: --split train|val|test on the command line, split= in Python", path=path, field="split"
        )
    return found.pop()


def _turns(sample: MultiMoodSample) -> list[tuple[Speaker, str, HistoryLabels]]:
    """The sample's history turns with their labels, then its target; texts flattened."""
    history = sample.history
    labels = sample.history_labels or (_NO_LABELS,) * len(history)
    turns = [(speaker, _flat(text), own) for (speaker, text), own in zip(history, labels)]
    return [*turns, ("therapist", _flat(sample.utterance), _NO_LABELS)]


def _rebuild(dialogue_id: str, entries: list[tuple[int, MultiMoodSample]], path: Path, split: Split) -> Dialogue:
    """One dialogue from its samples: the longest history plus its target, labels from every sample.

    A described turn's text gives way to the plain text another sample holds and is compared with
    no other; labels from the history's prefixes fill in those the samples' own fields leave None.
    """
    entries = sorted(entries, key=lambda entry: len(entry[1].history))
    canon: dict[int, tuple[Speaker, str, bool, int]] = {}  # turn index -> speaker, text, described, line
    prefixed: dict[int, HistoryLabels] = {}
    for line, sample in reversed(entries):
        for i, (speaker, text, labels) in enumerate(_turns(sample)):
            if i not in canon or (canon[i][2] and not labels.described):
                canon[i] = (speaker, text, labels.described, line)
            if i not in prefixed and (labels.emotion or labels.strategy):
                prefixed[i] = labels
    last_line, last = entries[-1]
    therapist: dict[int, MultiMoodSample] = {}
    client: dict[int, tuple[int, MultiMoodSample]] = {}
    for line, sample in entries:
        where = {"path": path, "line": line, "record": f"Dialogue_ID {dialogue_id}"}
        turns = _turns(sample)
        n = len(turns) - 1
        for k, (speaker, text, labels) in enumerate(turns):
            other_speaker, other, other_described, other_line = canon[k]
            if speaker == other_speaker and (text == other or labels.described or other_described):
                continue
            if k < n:
                raise DataError(
                    f"history line {k + 1} disagrees with line {other_line} of the same dialogue: {text[:40]!r} vs {other[:40]!r}",
                    field="history_chat",
                    **where,
                )
            raise DataError(
                f"Utterance disagrees with history line {k + 1} of line {other_line}: {other[:40]!r}", field="Utterance", **where
            )
        for attr in ("situation", "problem_type"):
            if getattr(sample, attr) != getattr(last, attr):
                raise DataError(f"{attr} disagrees with line {last_line} of the same dialogue", field=attr, **where)
        therapist[n] = sample
        recent = next((i for i in reversed(range(n)) if turns[i][0] == "client"), None)
        if recent is None:
            continue
        if recent in client:
            other_line, other_sample = client[recent]
            for attr, key in MULTIMOOD_KEYS.items():
                if attr.startswith("client_") and getattr(sample, attr) != getattr(other_sample, attr):
                    raise DataError(f"disagrees with line {other_line} about the same client turn", field=key, **where)
        client[recent] = (line, sample)
    built = []
    for i in range(len(canon)):
        speaker, text, _, _ = canon[i]
        fallback = prefixed.get(i, _NO_LABELS)
        if speaker == "therapist":
            own = therapist.get(i)
            segment = Segment(
                text=own.utterance if own else text,
                emotion=(own.emotion if own else None) or fallback.emotion,
                strategy=(own.strategy if own else None) or fallback.strategy,
            )
        else:
            info = client[i][1] if i in client else None
            segment = Segment(
                text=text,
                emotion=(info.client_emotion if info else None) or fallback.emotion,
                video_description=(info.client_video_description or None) if info else None,
                media=Media(video_path=Path(info.client_video_paths[0])) if info and info.client_video_paths else None,
            )
        built.append(Turn.from_segments(speaker, [segment]))
    return Dialogue(
        id=dialogue_id,
        split=split,
        turns=tuple(built),
        problem_type=last.problem_type or None,
        situation=last.situation or None,
        source="multimood",
    )


def load_multimood(path: str | Path, *, split: str | None = None, report: LoadReport | None = None) -> Corpus:
    """Rebuild the dialogues of a MultiMood jsonl file of either shape (format ``"multimood"``).

    Samples are grouped by ``Dialogue_ID``; a dialogue's text is its longest history plus that
    sample's target, a described client turn taking its plain text from the sample where it is the
    current utterance. Therapist labels come from the sample targeting each turn, client labels,
    description and video (the first of several) from the samples whose most recent client turn it
    is, else from the history's label prefixes; anything else is None. ``split`` defaults to the one
    named in the file name (train, val/valid/dev, test). Samples of one dialogue that disagree
    raise, or skip that whole dialogue when ``report.on_error == "skip"``.
    """
    path = Path(path)
    chosen = check_split(split) if split is not None else _split_from_name(path)
    report = report or LoadReport()
    groups: dict[str, list[tuple[int, MultiMoodSample]]] = {}
    for line, sample in _read(path, report):
        groups.setdefault(sample.dialogue_id, []).append((line, sample))
    dialogues = []
    for dialogue_id, entries in groups.items():
        try:
            dialogues.append(_rebuild(dialogue_id, entries, path, chosen))
        except DataError as err:
            report.fail(err)
    return Corpus(dialogues=dialogues, format="multimood", source=str(path), report=report)
