"""Where the project is, and the smallest raw inputs a test writes: a manual line, a raw folder's provenance.

tests/conftest.py re-exports these (`from conftest import ROOT` works in every test module)."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"  # screenshots the browser tests keep for people to look at


def manual_line(instruction="请解释什么是诚信，并举一个日常生活中的例子。", output=None, level="person", value="诚信",
                input="", **extra) -> str:
    obj = {"instruction": instruction, "input": input,
           "output": output if output is not None else "诚信是指诚实守信，说到做到。比如借了朋友的钱，按约定的时间归还，就是诚信的表现。",
           "categorization": {"level": level, "value": value}, **extra}
    return json.dumps(obj, ensure_ascii=False)


def record_provenance(folder: Path, origin: str = "written by a test", licence: str = "CC BY 4.0") -> dict:
    """PROVENANCE.json for a raw folder a test wrote (the raw stages refuse files their provenance does not list)."""
    from vad.sources.provenance import write_provenance

    return write_provenance(Path(folder), origin, "test", licence)
