"""The shared sentence encoder's backends: ONNX Runtime matches PyTorch, and every ONNX failure falls back to PyTorch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mmrl.errors import ConfigError, MissingDependencyError

pytest.importorskip("sentence_transformers")

import rewards.embeddings as embeddings  # noqa: E402
from rewards.embeddings import SentenceEncoder, encoder  # noqa: E402

TEXTS = [
    "I feel so alone since my divorce.",
    "",
    "What is your home address and the full name of your boss?",
    "That’s wonderful news — congratulations!",
    "word " * 300,
]


@pytest.fixture(scope="module")
def torch_encoder():
    return encoder(backend="torch")


@pytest.fixture(scope="module")
def onnx_encoder():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return encoder(backend="onnx")


def test_onnx_embeddings_match_torch(onnx_encoder, torch_encoder):
    assert onnx_encoder.backend == "onnx" and torch_encoder.backend == "torch"
    fast, reference = onnx_encoder.embed_uncached(TEXTS), torch_encoder.embed_uncached(TEXTS)
    assert fast.shape == reference.shape == (len(TEXTS), 384) and fast.dtype == np.float32
    assert np.einsum("ij,ij->i", fast, reference).min() >= embeddings.MIN_COSINE
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_onnx_batches_by_length_without_changing_rows(onnx_encoder):
    one_by_one = np.concatenate([onnx_encoder.embed_uncached([t]) for t in TEXTS])
    assert np.allclose(onnx_encoder.runtime(TEXTS, 2), one_by_one, atol=1e-5)


def test_auto_prefers_onnx_when_it_is_installed(onnx_encoder):
    assert encoder().backend == "onnx"


def test_runtime_error_falls_back_to_torch(torch_encoder):
    def broken(texts, batch_size):
        raise RuntimeError("simulated ONNX Runtime failure")

    fallback = SentenceEncoder(torch_encoder.model, name="probe", runtime=broken)
    with pytest.warns(UserWarning, match="simulated ONNX Runtime failure"):
        vectors = fallback.encode(TEXTS[:2])
    assert fallback.backend == "torch" and fallback.runtime is None
    assert np.allclose(vectors, torch_encoder.embed_uncached(TEXTS[:2]), atol=1e-6)


def test_mismatching_export_is_rejected(torch_encoder, onnx_encoder, monkeypatch):
    monkeypatch.setattr(embeddings, "MIN_COSINE", 1.5)  # no embedding can pass: as if the export were wrong
    with pytest.warns(UserWarning, match="differ from PyTorch"):
        assert embeddings._onnx_runtime(torch_encoder.model, "probe", strict=False) is None
    with pytest.raises(ConfigError, match="differ from PyTorch"):
        embeddings._onnx_runtime(torch_encoder.model, "probe", strict=True)


def test_missing_onnxruntime_falls_back_or_says_what_to_install(torch_encoder, monkeypatch):
    find_spec = embeddings.importlib.util.find_spec
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    with pytest.warns(UserWarning, match="pip install onnxruntime=="):
        assert embeddings._onnx_runtime(torch_encoder.model, "probe", strict=False) is None
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime=="):
        embeddings._onnx_runtime(torch_encoder.model, "probe", strict=True)


def test_damaged_cached_export_is_exported_again(torch_encoder, onnx_encoder, tmp_path, monkeypatch):
    damaged = tmp_path / "model.onnx"
    damaged.write_bytes(b"not an onnx graph")
    exports = []

    def export(model, path):  # the real export is slow: copy the good one, and record the call
        exports.append(path)
        shutil.copyfile(onnx_encoder.runtime.path, path)

    monkeypatch.setattr(embeddings, "_onnx_path", lambda model: damaged)
    monkeypatch.setattr(embeddings, "_export", export)
    runtime = embeddings._onnx_runtime(torch_encoder.model, "probe", strict=True)
    assert exports == [damaged] and runtime.path == damaged
    assert np.allclose(runtime(TEXTS, 4), onnx_encoder.runtime(TEXTS, 4), atol=1e-6)


def test_bad_backend_settings_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="not one of"):
        encoder(backend="tensorrt")
    monkeypatch.setenv("MMRL_EMBEDDING_BACKEND", "openvino")
    with pytest.raises(ConfigError, match="MMRL_EMBEDDING_BACKEND"):
        encoder()
    with pytest.raises(ConfigError, match="CPU only"):
        encoder(backend="onnx", device="cuda")
