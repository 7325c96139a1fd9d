"""benchmarks/env.py runs end to end with a tiny budget (slow: it loads the local reward pack's encoder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_env_benchmark_prints_its_figures(cache_dir, corpus_dir):
    env = {**os.environ, "MMRL_CACHE": str(cache_dir)}
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "env.py"),
        "--json",
        "--n-dialogues",
        "16",
        "--steps",
        "400",
        "--reward-steps",
        "4",
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True, timeout=600).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert {"steps_per_s_rewards_off", "steps_per_s_rewards_local", "steps_per_s_vector2"} <= set(figures)
    assert all(value > 0 for value in figures.values())
