"""Where a command may write: never over its own input, never over existing results unless asked, never unchecked."""

from __future__ import annotations

import contextlib
import errno
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from mmrl.errors import ConfigError, DiskFullError

__all__ = ["check_output", "check_writable_dir", "disk_full_as_error"]

#: Below this much free space, a failed write under an output directory is taken to be a full disk.
_FULL = 256 * 2**20


def _no_space(directory: Path) -> str:
    free = shutil.disk_usage(directory).free if directory.exists() else 0
    return f"no space left on the device of {directory} ({free / 2**20:.0f} MiB free)"


def check_writable_dir(directory: Path, *, what: str = "output_dir") -> None:
    """ConfigError unless ``directory`` is (or can be made) a directory in which a file can be written.

    Called before a run loads any model, so that a read-only, misspelt or full output location stops
    it in seconds, not after minutes of loading.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{what} {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".mmrl-write-check-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ConfigError(f"{what}: {_no_space(directory)}") from None
        raise ConfigError(f"{what} {directory} is not writable ({exc.strerror or exc})") from None


@contextlib.contextmanager
def disk_full_as_error(directory: Path) -> Iterator[None]:
    """Turn a full disk while writing under ``directory`` into a DiskFullError that says so.

    torch reports it as ``RuntimeError: [enforce fail at inline_container.cc...]`` from deep inside
    ``torch.save``, and Python as ``OSError(ENOSPC)``.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise DiskFullError(f"{_no_space(Path(directory))} while writing: free space, then continue with --resume") from exc
    except RuntimeError as exc:
        if "inline_container" not in str(exc) or shutil.disk_usage(directory).free >= _FULL:
            raise
        raise DiskFullError(f"{_no_space(Path(directory))} while writing ({str(exc).splitlines()[0][:120]}): "
                            "free space, then continue with --resume") from exc  # fmt: skip


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
