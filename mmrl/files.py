"""Where mmrl caches what it derives (``$MMRL_CACHE``, default ``~/.cache/mmrl``), and how it writes cache files safely."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["atomic_file", "cache_root", "cached_arrays", "read_arrays", "read_artefact"]


def cache_root() -> Path:
    """``$MMRL_CACHE`` (``~`` expanded), else ``~/.cache/mmrl``."""
    return Path(os.environ.get("MMRL_CACHE", Path.home() / ".cache" / "mmrl")).expanduser()


@contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` (mode 644) to write; it replaces ``path`` when the block succeeds, else is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_artefact(path: Path, what: str, rebuild: str, framework: str = "numpy") -> tuple[dict[str, str], dict]:
    """The metadata and tensors of a shipped safetensors artefact; an unreadable file is a ConfigError naming ``what`` and ``rebuild``."""
    from safetensors import SafetensorError, safe_open

    from mmrl.errors import ConfigError

    try:
        with safe_open(str(path), framework=framework) as f:
            return f.metadata() or {}, {key: f.get_tensor(key) for key in f.keys()}
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc}); {rebuild}") from None


def read_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of the safetensors file ``path`` if it holds ``keys``; ``None`` when it is missing, damaged or lacks one."""
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception:  # missing or damaged: the caller computes it afresh
        return None
    return arrays if set(keys) <= set(arrays) else None


def cached_arrays(
    path: Path, keys: tuple[str, ...], compute: Callable[[], dict[str, np.ndarray]], metadata: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (at least) in the safetensors file ``path``; when it is missing, damaged or lacks one,
    ``compute()`` them and write them atomically. Processes starting together compute once: a file lock, and a
    second look once it is held."""
    from filelock import FileLock
    from safetensors.numpy import save_file

    if (arrays := read_arrays(path, keys)) is not None:
        return arrays
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if (arrays := read_arrays(path, keys)) is not None:
            return arrays
        arrays = compute()
        with atomic_file(path) as tmp:
            save_file(arrays, tmp, metadata=metadata)
    return arrays
