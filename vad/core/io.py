"""JSON-lines reading and writing. Bad raw input fails with the file and line that caused it."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vad.core.errors import InputError
from vad.core.record import Record, dumps


def parse_json_line(raw: str, where: str) -> Any:
    """One JSON line; malformed JSON is an InputError naming `where` (file:line)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(where, f"malformed JSON ({e.msg} at column {e.colno})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, str, Any]]:
    """Yield (1-based line number, raw line without newline, parsed object); blank lines are skipped."""
    path = Path(path)
    with path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            raw = line.rstrip("\n").rstrip("\r")
            if raw.strip():
                yield n, raw, parse_json_line(raw, f"{path}:{n}")


def read_records(path: str | Path) -> list[Record]:
    out = []
    for n, _raw, obj in iter_jsonl(path):
        try:
            out.append(Record.from_dict(obj))
        except (KeyError, TypeError) as e:
            raise InputError(f"{path}:{n}", f"not a vad record ({e})") from None
    return out


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write atomically (temp file + rename) so a killed stage never leaves half a corpus behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(dumps(row.to_dict() if isinstance(row, Record) else row))
            f.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
