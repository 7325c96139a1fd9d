"""Shared fixtures: the real MESC data from ../shared when present, skipped with a message otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MESC_DIR = Path(os.environ.get("MMRL_MESC_DIR", REPO.parent / "shared" / "data" / "mesc"))


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
