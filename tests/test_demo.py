from __future__ import annotations

import json

from mmrl.demo import run_demo


def test_demo_runs_end_to_end_on_a_small_corpus(tmp_path):
    out = run_demo(tmp_path / "demo", seed=1, n_dialogues=6)
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["total"]["dialogues"] == 6
    assert report["data"]["total"]["rows_with_video"] > 0
    assert "| train |" in (out / "report.md").read_text()
