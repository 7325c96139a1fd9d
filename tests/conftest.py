"""Shared fixtures: one torch thread, and the real MESC data from ../shared when present (skipped with a message otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MESC_DIR = Path(os.environ.get("MMRL_MESC_DIR", REPO.parent / "shared" / "data" / "mesc"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a small shared CPU, more threads make the tiny models' steps ~15x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def mesc_dir() -> Path:
    """The real MESC directory; tests that need it are skipped when it is absent."""
    if not (MESC_DIR / "MESC.csv").is_file():
        pytest.skip(f"real MESC data not found at {MESC_DIR} (set MMRL_MESC_DIR to its directory)")
    return MESC_DIR


@pytest.fixture(scope="session")
def mesc_corpus(mesc_dir):
    from mmrl.data.mesc import load_mesc

    return load_mesc(mesc_dir)
