"""The one record model every corpus uses, from raw ingestion to export.

A record is a plain dict on disk (JSON lines) so every stage and tool can read it; `Record` gives it a type
in code. `id` is a content hash: the same text from the same source always gets the same id — for the first
occurrence. Ids name record occurrences, not texts: when a stage sees a second record with an id already in use
(two identical raw lines, a duplicate that is ledgered), `StageRun` gives it `occurrence_id(...)` and records the
shared content id in `meta.same_content_as`, so every id in a build's corpora and ledgers names one record."""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

EXPORT_FIELDS = ("instruction", "input", "output", "source", "categorization")

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Text as compared for identity and exact dedup: NFKC (full-width → half-width), whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_id(instruction: str, input: str, output: str, source: str) -> str:
    key = "\x1f".join((source, normalise(instruction), normalise(input), normalise(output)))
    return sha256_text(key)[:16]


SAME_CONTENT = "same_content_as"  # meta key: the content id a later occurrence shares with the first one


def occurrence_id(content_id: str, stage: str, n: int) -> str:
    """The id of the n-th (n ≥ 2) record with content id `content_id` in `stage`: deterministic, and distinct
    across stages (a content id can repeat in two stages, e.g. a duplicated seed and a no-gain evolution of it)."""
    return sha256_text(f"{content_id}\x1f{stage}\x1f{n}")[:16]


@dataclass
class Lineage:
    """Where a record came from. `origin` points at raw bytes; `ops` lists what was done to it, in order."""

    origin: dict[str, Any] = field(default_factory=dict)  # {file, line, sha256} of the raw line
    parents: list[str] = field(default_factory=list)  # ids of the records this one was made from
    ops: list[dict[str, Any]] = field(default_factory=list)  # [{stage, op, ...}]


@dataclass
class Record:
    instruction: str
    input: str
    output: str
    source: str
    categorization: dict[str, str]
    lineage: Lineage = field(default_factory=Lineage)
    meta: dict[str, Any] = field(default_factory=dict)  # stage-specific data (rejected answer, domain, scores)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = record_id(self.instruction, self.input, self.output, self.source)

    @property
    def content_id(self) -> str:
        """The id the first record with this content has (its own id, unless it is a later occurrence)."""
        return self.meta.get(SAME_CONTENT, self.id)

    def rehash(self) -> "Record":
        """Recompute the id after the text changed (e.g. translation); the old id goes to parents. A later
        occurrence whose text did not change keeps its occurrence id."""
        new = record_id(self.instruction, self.input, self.output, self.source)
        if new != self.content_id:
            if self.id not in self.lineage.parents:
                self.lineage.parents.append(self.id)
            self.id = new
            self.meta.pop(SAME_CONTENT, None)  # new text: no longer the same content as that record
        return self

    def as_occurrence(self, new_id: str) -> "Record":
        """Make this record a later occurrence of its content under `new_id` (StageRun does this)."""
        self.meta[SAME_CONTENT] = self.content_id
        self.id = new_id
        return self

    def add_op(self, stage: str, op: str, **info: Any) -> "Record":
        self.lineage.ops.append({"stage": stage, "op": op, **info})
        return self

    def to_dict(self) -> dict[str, Any]:
        """The record as written to disk (id first). A snapshot of its containers, one level deep: a ledger entry
        keeps the record as it was when dropped (dataclasses.asdict's deep copy cost seconds per 30k records)."""
        lin = self.lineage
        return {"id": self.id, "instruction": self.instruction, "input": self.input, "output": self.output,
                "source": self.source, "categorization": dict(self.categorization),
                "lineage": {"origin": dict(lin.origin), "parents": list(lin.parents),
                            "ops": [dict(o) for o in lin.ops]},
                "meta": {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                         for k, v in self.meta.items()}}

    def export_dict(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "source": self.source,
            "categorization": {"level": self.categorization["level"], "value": self.categorization["value"]},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        lin = d.get("lineage") or {}
        return cls(
            id=d["id"],
            instruction=d["instruction"],
            input=d.get("input", ""),
            output=d.get("output", ""),
            source=d["source"],
            categorization=dict(d["categorization"]),
            lineage=Lineage(
                origin=dict(lin.get("origin", {})),
                parents=list(lin.get("parents", [])),
                ops=[dict(o) for o in lin.get("ops", [])],
            ),
            meta=dict(d.get("meta", {})),
        )


def dumps(obj: Any) -> str:
    """Canonical JSON: UTF-8 text, stable key order as given, no ASCII escaping."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
