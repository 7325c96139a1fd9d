"""The shared sentence encoder's backends: ONNX Runtime matches PyTorch, every ONNX failure falls back to PyTorch, and the
static distillation keeps meaning, pools tokens as documented and is cached."""

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


#: (text, paraphrase, unrelated): the static model must keep a paraphrase nearer than an unrelated text.
PARAPHRASES = [
    ("I feel so alone since my divorce.", "Since the divorce I've been really lonely.", "My car needs new tyres."),
    ("I'm terrified of my exam tomorrow.", "Tomorrow's test has me scared.", "We painted the kitchen yellow."),
    ("My boss shouted at me in front of everyone.", "My manager yelled at me in public.", "The cat sleeps on the sofa."),
    ("I can't stop crying since my dad died.", "My father passed away and I keep crying.", "I bought new running shoes."),
    ("Please call a crisis line right now.", "Contact a suicide hotline immediately.", "What did you have for lunch?"),
    ("What is your home address?", "Tell me where you live.", "How was the concert?"),
    ("Congratulations on the new job!", "Well done on getting hired!", "The weather is rainy today."),
    ("He hit me again last night.", "My partner beat me yesterday evening.", "I like gardening on weekends."),
]


@pytest.fixture(scope="module")
def static_encoder():
    return encoder("static")


def test_static_model_is_distilled_from_the_packaged_minilm(static_encoder, torch_encoder):
    assert static_encoder.backend == "static" and static_encoder.name == "static:all-MiniLM-L6-v2 (packaged)"
    assert encoder("static", backend="torch") is static_encoder  # the backend does not apply to a static model
    vectors = static_encoder.embed_uncached(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 2, 3, 4]], axis=1), 1.0, atol=1e-5) and not vectors[1].any()  # "" has no tokens
    words = ["happy", "lonely", "hospital", "angry", "money", "music"]  # one token each: close to the transformer's embedding
    assert np.einsum("ij,ij->i", static_encoder.encode(words), torch_encoder.encode(words)).min() > 0.7
    for text, paraphrase, unrelated in PARAPHRASES:
        a, b, c = static_encoder.encode([text, paraphrase, unrelated])
        assert a @ b > a @ c, (text, paraphrase, unrelated)


def test_static_encoder_is_the_normalised_mean_of_token_vectors(static_encoder):
    tokenizer = static_encoder.static.tokenizer
    vectors = np.random.default_rng(0).normal(size=(len(tokenizer), 8)).astype(np.float32)
    static = embeddings.StaticEncoder(tokenizer, vectors, max_tokens=4)
    texts = ["lonely and sad", "", "one two three four five six", "sad sad sad"]
    out = static(texts)
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=4)["input_ids"]
    expected = vectors[ids[0]].mean(axis=0)
    assert np.allclose(out[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert not out[1].any() and len(ids[2]) == 4  # empty text: zero row; long text: truncated to max_tokens
    truncated = vectors[ids[2]].sum(axis=0)
    assert np.allclose(out[2], truncated / np.linalg.norm(truncated), atol=1e-6)
    sad = vectors[ids[3][0]]
    assert len(ids[3]) == 3 and len(set(ids[3])) == 1 and np.allclose(out[3], sad / np.linalg.norm(sad), atol=1e-6)  # one token, 3×
    weights = np.random.default_rng(1).uniform(size=len(tokenizer)).astype(np.float32)
    weighted = static(texts, weights, 3)  # weighted by token, the *last* three tokens
    for row, text in zip(weighted, texts):
        last = tokenizer(text, add_special_tokens=False)["input_ids"][-3:]
        total = (vectors[last] * weights[last, None]).sum(axis=0)
        assert np.allclose(row, total / (np.linalg.norm(total) or 1.0), atol=1e-6)
    assert static([]).shape == static([], weights).shape == (0, 8)
    with pytest.raises(IndexError, match="outside the 100 static vectors"):  # too few vectors for the tokenizer
        embeddings.StaticEncoder(tokenizer, vectors[:100], max_tokens=4)(["lonely and sad"])


def test_static_vectors_are_cached_and_a_damaged_file_is_distilled_again(torch_encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("MMRL_CACHE", str(tmp_path))
    size = len(torch_encoder.model.tokenizer)
    distilled = []

    def distil(model):  # the real distillation takes ~30 s: count calls
        distilled.append(model)
        return np.random.default_rng(len(distilled)).normal(size=(size, 384)).astype(np.float32)

    monkeypatch.setattr(embeddings, "_distil", distil)
    first = embeddings._static_encoder(torch_encoder.model, 128)
    [path] = (tmp_path / "static").glob("*.safetensors")
    again = embeddings._static_encoder(torch_encoder.model, 128)
    assert len(distilled) == 1 and np.array_equal(again.vectors, first.vectors)
    path.write_bytes(b"not safetensors")
    embeddings._static_encoder(torch_encoder.model, 128)
    assert len(distilled) == 2 and path.stat().st_size > size * 384 * 4


def test_processes_starting_together_distil_once(torch_encoder, tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("MMRL_CACHE", str(tmp_path))
    size = len(torch_encoder.model.tokenizer)
    distilled = []

    def slow_distil(model):
        distilled.append(model)
        time.sleep(0.5)
        return np.ones((size, 4), dtype=np.float32)

    monkeypatch.setattr(embeddings, "_distil", slow_distil)
    results = []
    workers = [threading.Thread(target=lambda: results.append(embeddings._static_encoder(torch_encoder.model, 128))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(distilled) == 1 and len(results) == 3 and all(r.vectors.shape == (size, 4) for r in results)
