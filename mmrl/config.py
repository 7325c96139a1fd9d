"""Config dataclasses read from YAML: keys equal field names, values checked against the field types.

Every command's config (predictor, SFT, GRPO/RLOO, strategy PPO) subclasses :class:`YamlConfig`;
reward specs read their file with :func:`read_yaml`. An unknown key is an error that names the key,
the file and the closest field; a value of the wrong type names the field and what it expects.

    @dataclass
    class MyConfig(YamlConfig):
        learning_rate: float = 1e-5

    MyConfig.from_yaml("run.yaml", learning_rate=None)   # None overrides (unset CLI flags) keep the file's value
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from typing_extensions import Self

from mmrl.errors import ConfigError

__all__ = ["YamlConfig", "check_keys", "convert", "read_yaml", "suggest"]

C = TypeVar("C", bound="YamlConfig")


def suggest(key: object, allowed: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``allowed``, or ``""``."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(mapping: Mapping, allowed: Iterable[str], where: str) -> None:
    """Raise ConfigError on the first key of ``mapping`` not in ``allowed``, naming ``where`` it is."""
    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in {where}{suggest(key, allowed)} (allowed: {', '.join(allowed)})")


def read_yaml(path: str | os.PathLike, what: str = "config") -> Any:
    """The parsed YAML of ``path`` (an empty file is ``{}``); unreadable or invalid files raise naming ``path``."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return {} if values is None else values


class YamlConfig:
    """Mixin for config dataclasses: ``from_dict`` and ``from_yaml`` with key and type checks."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str | os.PathLike | None = None) -> Self:
        """Build from a mapping whose keys are field names; errors name the key and ``source``."""
        where = f"{source}: " if source is not None else ""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}a {cls.__name__} must be a mapping of fields, got {type(values).__name__}")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        converted = {}
        for key, value in values.items():
            if key not in names:
                raise ConfigError(f"{where}unknown key {key!r}{suggest(key, names)} (fields of {cls.__name__}: {', '.join(names)})")
            try:
                converted[key] = convert(str(key), value, hints[key])
            except ConfigError as err:
                raise ConfigError(f"{where}{err}") from None
        try:
            return cls(**converted)
        except ConfigError as err:
            raise ConfigError(f"{where}{err}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> Self:
        """Read ``path``; ``overrides`` (field=value) that are not None replace the file's values."""
        values = read_yaml(path, f"{cls.__name__} file")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path}: a {cls.__name__} file must be a mapping of fields, got {type(values).__name__}")
        return cls.from_dict({**values, **{k: v for k, v in overrides.items() if v is not None}}, source=path)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML-able values (what ``from_dict`` reads back)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def convert(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the field type ``hint``; YAML's ``1e-5`` (read as a string) becomes a float."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(name, value, option)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name}: expected {_type_name(hint)}, got {value!r}")
    origin = typing.get_origin(hint)
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint in (int, bool, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
    elif origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if isinstance(value, str) and item is str:
            return [value]
        if isinstance(value, (list, tuple)):
            return [convert(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    elif origin is dict or hint is dict:
        if isinstance(value, Mapping):
            return dict(value)
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            fields = [f.name for f in dataclasses.fields(hint)]
            check_keys(value, fields, name)
            return hint(**value)
    elif hint is Any:
        return value
    raise ConfigError(f"{name}: expected {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if dataclasses.is_dataclass(hint):
        return f"a mapping {{{', '.join(f.name for f in dataclasses.fields(hint))}}}"
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name((typing.get_args(hint) or (Any,))[0])}"
    return getattr(hint, "__name__", str(hint))
