"""The one exception hierarchy users see. Messages say what was expected, what arrived, and the fix."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MmrlError", "DataError", "ConfigError", "DiskFullError", "EvalError", "MissingDependencyError", "SplitLeakError"]


class MmrlError(Exception):
    """Base class of every error mmrl raises on purpose."""


class DataError(MmrlError):
    """Malformed input data; names the file, the line or record, and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        record: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.record = record
        self.field = field
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(MmrlError):
    """A configuration value or file that cannot be used."""


class MissingDependencyError(MmrlError):
    """An optional dependency is not installed; the message carries the pip command that fixes it."""


class SplitLeakError(MmrlError):
    """Validation/test data was requested where only the train split is allowed."""


class DiskFullError(MmrlError):
    """The device of an output directory filled up while a run wrote to it."""


class EvalError(MmrlError):
    """An evaluation whose generations failed too often to be reported as a result."""
