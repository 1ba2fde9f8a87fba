"""The ledger: every record a stage does not pass on is written here with the stage and a reason code.

Stages never drop a record any other way. `StageRun` checks the books at the end of each stage:
records in + records created == records out + records ledgered + records consumed (parents whose children
were emitted instead, as in Evol-Instruct), and refuses to finish if they do not balance."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.errors import AccountingError
from vad.core.io import write_json, write_jsonl
from vad.core.record import Record



@dataclass
class Drop:
    """What a filter says about a record it rejects: a stable reason code and a human detail."""

    reason: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class StageRun:
    """Book-keeping for one stage run: counts, the ledger, metrics, and the conservation check."""

    def __init__(self, stage: str, root: str | Path = "."):
        self.stage = stage
        self.root = Path(root)
        self.n_in = 0
        self.n_created = 0
        self.consumed: set[str] = set()
        self.entries: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self._t0 = time.monotonic()

    # --- counting -------------------------------------------------------------------------------------
    def take(self, records: list[Record]) -> list[Record]:
        """Count records entering the stage; returns them for chaining."""
        self.n_in += len(records)
        return records

    def created(self, n: int = 1) -> None:
        self.n_created += n

    def consume(self, record_id: str) -> None:
        """A record that leaves only through its children (e.g. an Evol-Instruct seed)."""
        self.consumed.add(record_id)

    def drop(self, rec: Record, reason: str, detail: str = "", **extra: Any) -> None:
        self.entries.append(
            {"stage": self.stage, "id": rec.id, "reason": reason, "detail": detail, **extra, "record": rec.to_dict()}
        )

    def drop_with(self, rec: Record, d: Drop) -> None:
        self.drop(rec, d.reason, d.detail, **d.extra)

    # --- filters --------------------------------------------------------------------------------------
    def apply(self, records: list[Record], filters: list["Filter"]) -> list[Record]:
        """Run filters in order; the first that objects drops the record into the ledger."""
        kept = []
        for rec in records:
            for flt in filters:
                d = flt.check(rec)
                if d is not None:
                    self.drop_with(rec, d)
                    break
            else:
                kept.append(rec)
        return kept

    # --- finishing ------------------------------------------------------------------------------------
    def finish(self, outputs: dict[str, list[Record]], **metrics: Any) -> dict[str, Any]:
        """Write outputs, ledger and metrics; raise if the books do not balance."""
        n_out = sum(len(v) for v in outputs.values())
        n_drop = len(self.entries)
        lhs, rhs = self.n_in + self.n_created, n_out + n_drop + len(self.consumed)
        if lhs != rhs:
            raise AccountingError(
                f"stage {self.stage}: {self.n_in} in + {self.n_created} created != {n_out} out + {n_drop} ledgered"
                f" + {len(self.consumed)} consumed — a record was lost or double-counted"
            )
        for path, recs in outputs.items():
            write_jsonl(self.root / path, recs)
        write_jsonl(self.root / paths.ledger(self.stage), self.entries)
        reasons = Counter(e["reason"] for e in self.entries)
        self.metrics = {
            "in": self.n_in,
            "created": self.n_created,
            "out": n_out,
            "ledgered": n_drop,
            "consumed": len(self.consumed),
            "dropped_by_reason": dict(sorted(reasons.items())),
            **self.metrics,  # what the stage's logic recorded along the way
            **metrics,
            "seconds": round(time.monotonic() - self._t0, 2),
        }
        write_json(self.root / paths.metrics(self.stage), self.metrics)
        return self.metrics


class Filter:
    """A filter only says keep (None) or drop with a reason; StageRun does the book-keeping."""

    reason: str = "filtered"

    def check(self, rec: Record) -> Drop | None:  # pragma: no cover - interface
        raise NotImplementedError
