from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mmrl.config import YamlConfig, read_yaml
from mmrl.errors import ConfigError


@dataclass(frozen=True)
class _Inner:
    r: int = 8


@dataclass
class _Config(YamlConfig):
    rate: float = 1e-3
    widths: list[int] = field(default_factory=lambda: [4])
    inner: _Inner | None = None


def test_values_are_converted_element_by_element_and_nested_dataclasses_built(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rate: 3e-4\nwidths: [1, 2]\ninner: {r: 2}\n", encoding="utf-8")
    config = _Config.from_yaml(path, rate=None)
    assert config == _Config(rate=3e-4, widths=[1, 2], inner=_Inner(r=2))
    assert _Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("widths: [1, two]\n", r"c\.yaml: widths\[1\]: expected int, got 'two'"),
        ("inner: {rr: 2}\n", r"unknown key 'rr' in inner; did you mean 'r'"),
        ("rte: 1\n", r"c\.yaml: unknown key 'rte'; did you mean 'rate'"),
        ("- 1\n", r"c\.yaml: a _Config file must be a mapping"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        _Config.from_yaml(path)


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml(bad)
