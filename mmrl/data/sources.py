"""The one place that chooses dialogues: a path, a Corpus, a list of Dialogues, or the embedded demo corpus.

corpus = load_source("../shared/data/mesc")              # a Corpus (format detected)
train = load_dialogues(corpus, split="train")            # its train dialogues
demo = load_dialogues(None, split="val")                 # the embedded synthetic corpus's val dialogues
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

from mmrl.data import Corpus, Dialogue, load_corpus
from mmrl.data.schema import check_split
from mmrl.errors import ConfigError, DataError

__all__ = ["DataSource", "load_dialogues", "load_source"]

#: What every command and env accepts as data.
DataSource = Corpus | Sequence[Dialogue] | str | os.PathLike


def load_source(data: DataSource | None = None, *, format: str | None = None, on_error: str = "raise") -> Corpus:
    """``data`` as a Corpus: a path goes through ``load_corpus`` (``format``, ``on_error``), None is the embedded
    demo corpus (``mmrl.data.synth.demo_corpus``), a Corpus is returned as is, a list of Dialogues is wrapped."""
    if data is None:
        from mmrl.data.synth import demo_corpus

        data = demo_corpus()
        format = "synth"
    if isinstance(data, (str, os.PathLike)):
        return load_corpus(data, format, on_error=on_error)
    if format is not None:
        raise ConfigError(f"format= applies to a path, but data is a {type(data).__name__}; drop format=")
    if isinstance(data, Corpus):
        return data
    dialogues = list(data)
    wrong = next((d for d in dialogues if not isinstance(d, Dialogue)), None)
    if wrong is not None:
        raise ConfigError(f"data must be a Corpus, a path or a list of Dialogue, but it holds a {type(wrong).__name__}")
    return Corpus(dialogues=dialogues, format="dialogues", source="<list of Dialogue>")


def load_dialogues(
    data: DataSource | None = None, *, format: str | None = None, split: str | None = "train", on_error: str = "raise"
) -> list[Dialogue]:
    """The dialogues of ``split`` (None: all) of :func:`load_source`; a split the data lacks is a DataError naming those it holds."""
    corpus = load_source(data, format=format, on_error=on_error)
    if split is None:
        return list(corpus.dialogues)
    check_split(split)
    selected = corpus.split(split)
    if not selected:
        found = dict(Counter(d.split for d in corpus.dialogues))
        raise DataError(
            f"no dialogue of split {split!r} (the data holds {found or 'no dialogues'}); choose one of those (--split on the command line, split= in Python)",
            field="split",
        )
    return selected
