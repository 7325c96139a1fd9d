"""mmrl.files: the cache root, atomic writes, and safetensors caches computed once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from mmrl.files import atomic_file, cache_root, cached_arrays


def test_cache_root_follows_the_environment(monkeypatch):
    monkeypatch.setenv("MMRL_CACHE", "~/elsewhere")
    assert cache_root() == Path.home() / "elsewhere"
    monkeypatch.delenv("MMRL_CACHE")
    assert cache_root() == Path.home() / ".cache" / "mmrl"


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_file(target) as tmp:
        Path(tmp).write_bytes(b"first")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"first" and [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_cached_arrays_computes_when_missing_damaged_or_incomplete(tmp_path):
    path, calls = tmp_path / "a.safetensors", []

    def compute():
        calls.append(1)
        return {"x": np.arange(3.0)}

    assert np.array_equal(cached_arrays(path, ("x",), compute)["x"], np.arange(3.0))
    cached_arrays(path, ("x",), compute)
    assert len(calls) == 1
    save_file({"y": np.zeros(1)}, str(path))  # readable, but without the key asked for
    cached_arrays(path, ("x",), compute)
    path.write_bytes(b"damaged")
    cached_arrays(path, ("x",), compute)
    assert len(calls) == 3
