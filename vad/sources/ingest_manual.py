"""Ingest the hand-written values instructions (source `manual`).

Decisions on bad input (docs/operations.md, "Bad input"), chosen so that our own data is fixed rather than silently thinned:
- a file not matching data/raw/manual/PROVENANCE.json (unlisted, missing, edited) → the stage FAILS naming it
  and the command that records the change (`vad provenance data/raw/manual --update`);
- malformed JSON, a missing or mistyped field, an unknown level/value → the stage FAILS naming file:line;
- an empty output, text shorter than `ingest.min_chars` or longer than `ingest.max_chars` → ledgered drop;
- an English-only record → ledgered later by the language check in `merge` (`lang_not_zh`);
- a duplicate → ledgered later by `merge` (`exact_duplicate` / `near_duplicate`, naming the kept record); an
  identical second line gets its own id here (a later occurrence, `meta.same_content_as` the first's id).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vad.core.errors import InputError
from vad.core.paths import RAW_MANUAL
from vad.core.io import iter_jsonl
from vad.core.filters import Drop, Filter
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record, sha256_text
from vad.core.taxonomy import check_categorization
from vad.quality.length import LengthBounds

REQUIRED = {"instruction": str, "output": str, "categorization": dict}
OPTIONAL = {"input": str, "task": str}


def parse_manual_line(obj: object, where: str) -> tuple[dict, dict]:
    """Validate one raw manual object; returns (fields, meta) or raises InputError naming `where`."""
    if not isinstance(obj, dict):
        raise InputError(where, f"expected a JSON object, got {type(obj).__name__}")
    for key, typ in REQUIRED.items():
        if key not in obj:
            raise InputError(where, f"missing field {key!r}")
        if not isinstance(obj[key], typ):
            raise InputError(where, f"field {key!r} must be {typ.__name__}, got {type(obj[key]).__name__}")
    for key, typ in OPTIONAL.items():
        if key in obj and not isinstance(obj[key], typ):
            raise InputError(where, f"field {key!r} must be {typ.__name__}, got {type(obj[key]).__name__}")
    unknown = set(obj) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise InputError(where, f"unknown field(s) {sorted(unknown)}")
    problem = check_categorization(obj["categorization"])
    if problem:
        raise InputError(where, problem)
    fields = {k: obj.get(k, "") for k in ("instruction", "input", "output")}
    return fields, {"task": obj["task"]} if "task" in obj else {}


def read_manual(files: list[Path], root: Path) -> list[Record]:
    records = []
    for path in files:
        rel = path.relative_to(root).as_posix() if path.is_absolute() else path.as_posix()
        for line_no, raw, obj in iter_jsonl(path):
            fields, meta = parse_manual_line(obj, f"{rel}:{line_no}")
            rec = Record(
                **fields,
                source="manual",
                categorization={"level": obj["categorization"]["level"], "value": obj["categorization"]["value"]},
                lineage=Lineage(origin={"file": rel, "line": line_no, "sha256": sha256_text(raw)}),
                meta=meta,
            )
            records.append(rec.add_op("ingest_manual", "ingest"))
    return records


class EmptyOutput(Filter):
    reasons = {"empty_output": "a hand-written record's output is empty or whitespace"}

    def decide(self, rec: Record, stats: None) -> Drop | None:
        if not rec.output.strip():
            return Drop("empty_output", "the output is empty or whitespace")
        return None


def ingest_manual(files: list[Path], root: Path, params: "IngestParams", run: StageRun,
                  validate: Callable[[list[Record]], object] | None = None) -> list[Record]:
    """Parse (failing on bad input), validate the parsed records (`validate`: the raw_manual suite, in the stage),
    then ledger empty and out-of-bounds records."""
    if not files:
        raise InputError(str(root / RAW_MANUAL), "no *.jsonl files")
    records = run.take(read_manual(files, root))
    if validate is not None:
        validate(records)
    return run.apply(records, [EmptyOutput(), LengthBounds(params.min_chars, params.max_chars)])
