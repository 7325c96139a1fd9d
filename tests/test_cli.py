from __future__ import annotations

import json
import subprocess
import sys

from mmrl.cli import main
from tests.fixtures.mesc import write_mesc


def test_help_lists_command_groups(capsys):
    try:
        main(["--help"])
    except SystemExit as exit:
        assert exit.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "data"):
        assert command in out


def test_data_stats_json_on_mesc_fixture(tmp_path, capsys):
    root = write_mesc(tmp_path / "mesc")
    assert main(["data", "stats", str(root), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["format"] == "mesc"
    assert {s: stats["splits"][s]["dialogues"] for s in ("train", "val", "test")} == {"train": 2, "val": 1, "test": 1}
    assert stats["total"]["rows"] == 17
    assert stats["splits"]["train"]["therapist_turns"] == 3  # dialogue 0: 2, dialogue 3: 1 (its first turn is not a target)


def test_bad_input_is_one_clear_line_without_traceback(tmp_path):
    root = write_mesc(tmp_path / "mesc")
    path = root / "MESC.csv"
    path.write_text(path.read_text().replace("sadness", "melancholy", 1))
    result = subprocess.run([sys.executable, "-m", "mmrl.cli", "data", "stats", str(root)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mmrl: error: ") and "MESC.csv:2, field 'Emotion'" in result.stderr


def test_skip_mode_counts_skipped_records(tmp_path, capsys):
    root = write_mesc(tmp_path / "mesc")
    path = root / "MESC.csv"
    path.write_text(path.read_text().replace("sadness", "melancholy", 1))
    assert main(["data", "stats", str(root), "--json", "--on-error", "skip"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["skipped"]["skipped"] == 1 and stats["total"]["dialogues"] == 3


def test_data_synth_then_stats_and_dfew_stats(tmp_path, capsys):
    from tests.fixtures.dfew import make_dfew_fixture

    assert main(["data", "synth", "--out", str(tmp_path / "c"), "--dialogues", "5", "--seed", "3"]) == 0
    assert main(["data", "stats", str(tmp_path / "c"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert stats["format"] == "synth" and stats["total"]["dialogues"] == 5
    assert stats["total"]["rows_with_audio"] == stats["total"]["rows_with_video"] > 0
    root = make_dfew_fixture(tmp_path / "dfew", clips_per_class=1)
    assert main(["data", "stats", str(root), "--json"]) == 0
    folds = json.loads(capsys.readouterr().out)["folds"]
    assert sorted(folds) == ["1", "2", "3", "4", "5"]
    assert sum(f["test"]["count"] for f in folds.values()) == 7
