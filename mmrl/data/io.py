"""Reading text and JSON-lines files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from mmrl.errors import DataError

__all__ = ["json_lines", "read_text", "require_file"]


def _decode(data: bytes, path: Path, line: int, offset: int = 0) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line += data.count(b"\n", 0, exc.start)
        raise DataError(f"not valid UTF-8 (byte {data[exc.start]:#04x}); re-save the file as UTF-8", path=path, line=line) from exc


def require_file(path: Path) -> None:
    """A DataError unless ``path`` is a readable file: "is a directory" and "file not found" are told apart."""
    if path.is_dir():
        raise DataError("is a directory; expected a file", path=path)
    if not path.is_file():
        raise DataError("file not found", path=path)


def read_text(path: str | Path) -> str:
    """Read a UTF-8 file (a leading BOM is dropped), reporting the line of the first undecodable byte."""
    path = Path(path)
    require_file(path)
    return _decode(path.read_bytes(), path, 1)


def json_lines(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yield ``(line number, value)`` for each non-blank line of a JSON-lines file.

    A line that is not UTF-8 or not JSON yields a :class:`DataError` as its value, so the caller
    decides whether to raise it or skip the line.
    """
    path = Path(path)
    require_file(path)
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                text = _decode(raw, path, number)
                if not text.strip():
                    continue
                yield number, json.loads(text)
            except DataError as err:
                yield number, err
            except json.JSONDecodeError as exc:
                yield number, DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=number)
