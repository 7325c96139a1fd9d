"""Where a command may write: never over its own input, never over existing results unless asked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mmrl.errors import ConfigError

__all__ = ["check_output"]


def check_output(out: Path, *, inputs: Iterable[Path | str | None] = (), overwrite: bool = False, writes: Sequence[str] = ()) -> None:
    """Refuse ``--out`` when it would replace an input, or existing results without ``overwrite``.

    ``out`` is a file, or with ``writes`` a directory of which those file names are written.

    >>> check_output(Path("corpus.jsonl"), inputs=[Path("./corpus.jsonl")])
    Traceback (most recent call last):
    mmrl.errors.ConfigError: --out corpus.jsonl is the command's own input: write somewhere else
    """
    targets = [out / name for name in writes] if writes else [out]
    sources = {Path(p).expanduser().resolve() for p in inputs if p is not None}
    for target in targets:
        if target.expanduser().resolve() in sources:
            raise ConfigError(f"--out {out} is the command's own input: write somewhere else")
    if writes and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    if not writes and out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give the file to write")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        verb = "exists" if len(existing) == 1 else "exist"
        raise ConfigError(f"--out {out}: {', '.join(str(t) for t in existing[:3])} already {verb}; pass --overwrite to replace it")
