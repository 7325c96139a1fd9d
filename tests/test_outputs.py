"""Issue 13 item 7: no command writes over its own input, nor over existing results without --overwrite."""

from __future__ import annotations

import doctest

import pytest

import mmrl.outputs
from mmrl.cli import main
from mmrl.errors import ConfigError
from mmrl.outputs import check_output


def test_check_output_rules(tmp_path):
    data = tmp_path / "corpus.jsonl"
    data.write_text("{}\n")
    with pytest.raises(ConfigError, match="own input"):
        check_output(data, inputs=[data], overwrite=True)  # not even with --overwrite
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        check_output(data, inputs=[tmp_path / "other.jsonl"])
    check_output(data, inputs=[], overwrite=True)
    check_output(tmp_path / "new.jsonl", inputs=[data])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"report\.json already exists"):
        check_output(tmp_path / "run", writes=("report.json", "report.md"))
    with pytest.raises(ConfigError, match="is a directory"):
        check_output(tmp_path / "run")
    assert doctest.testmod(mmrl.outputs).failed == 0


def test_env_prompts_refuses_to_overwrite_its_input_and_existing_files(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("precious\n")
    assert main(["env", "prompts", str(corpus), "--out", str(corpus), "--overwrite"]) == 2
    assert "own input" in capsys.readouterr().err and corpus.read_text() == "precious\n"
    out = tmp_path / "prompts.jsonl"
    assert main(["env", "prompts", "--out", str(out)]) == 0
    first = out.read_text()
    assert main(["env", "prompts", "--out", str(out)]) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(["env", "prompts", "--out", str(out), "--overwrite"]) == 0 and out.read_text() == first


def test_data_synth_and_ablate_keep_existing_results(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["data", "synth", "--out", str(out), "--dialogues", "3", "--seed", "1"]) == 0
    assert main(["data", "synth", "--out", str(out), "--dialogues", "3", "--seed", "2"]) == 2
    assert "corpus.jsonl, " in (err := capsys.readouterr().err) and "already exist; pass --overwrite" in err
    assert main(["data", "synth", "--out", str(out), "--dialogues", "3", "--seed", "2", "--overwrite"]) == 0
    runs = tmp_path / "ablate"
    runs.mkdir()
    (runs / "results.csv").write_text("earlier results\n")
    config = tmp_path / "ablate.yaml"
    config.write_text("unused: true\n")
    assert main(["ablate", "--config", str(config), "--out", str(runs)]) == 2
    assert "results.csv already exists" in capsys.readouterr().err and (runs / "results.csv").read_text() == "earlier results\n"
