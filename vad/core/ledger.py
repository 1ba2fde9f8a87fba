"""The ledger: every record a stage does not pass on is written here with the stage and a reason code.

Stages never drop a record any other way. `StageRun` checks the books at the end of each stage:
records in + records created == records out + records ledgered + records consumed (parents whose children
were emitted instead, as in Evol-Instruct), and refuses to finish if they do not balance.

It also keeps ids unique per record occurrence, whatever the stage's logic does: a record entering the stage
(`take`) with an id another entering record already has, and a record leaving it (output or ledger, at `finish`)
with an id already used in the stage, becomes a later occurrence (`Record.as_occurrence`, id from
`record.occurrence_id`). Precedence: consumed ids and records leaving as they entered keep their ids; then
outputs, then ledger entries, in order. So a duplicate is ledgered under its own id, its `dup_of` names the kept
record, and `vad why` finds one entry per id. The ledger entry holds the full record: the one place a dropped
record is stored."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from vad.core import paths
from vad.core.errors import AccountingError
from vad.core.io import write_json, write_jsonl
from vad.core.filters import Drop, Filter, apply as apply_filters
from vad.core.record import SAME_CONTENT, Record, occurrence_id

ENTRY_KEYS = ("stage", "id", "reason", "detail", "record")  # a drop's extra fields may not use these names


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
        self._taken: dict[int, tuple[Record, str]] = {}  # id(record) → (record, its id as it entered)
        self._taken_ids: set[str] = set()
        self._occurrences: Counter = Counter()  # content id → occurrences seen in this stage
        self._dropped: list[Record] = []  # the record object of each entry, in order

    # --- counting -------------------------------------------------------------------------------------
    def take(self, records: list[Record]) -> list[Record]:
        """Count records entering the stage (a second one with an id already taken becomes a later occurrence);
        returns them for chaining."""
        self.n_in += len(records)
        for rec in records:
            if id(rec) in self._taken:
                continue  # taken twice: the books will not balance, finish says so
            if rec.id in self._taken_ids:
                rec.as_occurrence(self._next_occurrence(rec.content_id, self._taken_ids))
            self._taken_ids.add(rec.id)
            self._taken[id(rec)] = (rec, rec.id)
        return records

    def created(self, n: int = 1) -> None:
        self.n_created += n

    def consume(self, record_id: str) -> None:
        """A record that leaves only through its children (e.g. an Evol-Instruct seed)."""
        self.consumed.add(record_id)

    def drop(self, rec: Record, reason: str, detail: str = "", **extra: Any) -> None:
        clash = set(extra) & set(ENTRY_KEYS)
        if clash:
            raise ValueError(f"stage {self.stage}: ledger extra field(s) {sorted(clash)} would overwrite the entry's own")
        self.entries.append(
            {"stage": self.stage, "id": rec.id, "reason": reason, "detail": detail, **extra, "record": rec.to_dict()}
        )
        self._dropped.append(rec)

    def drop_with(self, rec: Record, d: Drop) -> None:
        self.drop(rec, d.reason, d.detail, **d.extra)

    # --- filters --------------------------------------------------------------------------------------
    def apply(self, records: list[Record], filters: list[Filter]) -> list[Record]:
        """Run filters in order (vad.core.filters.apply); the first that drops a record ledgers it."""
        return apply_filters(records, filters, self.drop_with)

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
        self._unique_ids(outputs)
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
            "consumed_ids": sorted(self.consumed),  # for id-level audits: these left through their children
            "dropped_by_reason": dict(sorted(reasons.items())),
            **self.metrics,  # what the stage's logic recorded along the way
            **metrics,
            "seconds": round(time.monotonic() - self._t0, 2),
        }
        write_json(self.root / paths.metrics(self.stage), self.metrics)
        return self.metrics

    # --- ids ------------------------------------------------------------------------------------------
    def _next_occurrence(self, content_id: str, used: set[str]) -> str:
        n = max(self._occurrences[content_id], 1)
        while True:
            n += 1
            new = occurrence_id(content_id, self.stage, n)
            if new not in used:
                self._occurrences[content_id] = n
                return new

    def _unique_ids(self, outputs: dict[str, list[Record]]) -> None:
        """Give every record leaving the stage an id that no other leaving record, nor a consumed one, has."""
        leaving = [(rec, None) for recs in outputs.values() for rec in recs] + list(zip(self._dropped, self.entries))
        objects: set[int] = set()
        ranked = []
        for order, (rec, entry) in enumerate(leaving):
            rid = rec.id if entry is None else entry["id"]
            taken = self._taken.get(id(rec))
            unchanged = taken is not None and taken[1] == rid  # leaves as it entered: keeps its id
            if id(rec) in objects or (unchanged and rid in self.consumed):
                raise AccountingError(f"stage {self.stage}: record {rid} leaves the stage twice (passed on, "
                                      f"ledgered or consumed): the books balance only because another was lost")
            objects.add(id(rec))
            ranked.append((not unchanged, order, rid, rec, entry))
        used = set(self.consumed)
        for _changed, _order, rid, rec, entry in sorted(ranked, key=lambda t: t[:2]):
            if rid in used:
                if entry is None:
                    rec.as_occurrence(self._next_occurrence(rec.content_id, used))
                    rid = rec.id
                else:  # the entry holds a copy of the record as it was dropped
                    meta = entry["record"]["meta"]
                    meta[SAME_CONTENT] = meta.get(SAME_CONTENT, rid)
                    rid = entry["id"] = entry["record"]["id"] = self._next_occurrence(meta[SAME_CONTENT], used)
            used.add(rid)


def id_problems(inputs: Iterable[str], outputs: Iterable[dict], ledger: Iterable[dict], consumed: Iterable[str] = (),
                created: int = 0, key: Callable[[dict], str] | None = None) -> list[str]:
    """A stage's books at the id level, from what it wrote (records and ledger entries as dicts): what is wrong,
    or [] when every input leaves exactly once and every other leaving record was created.

    An input (`key(record)`, default its id) leaves as an output, a ledger entry or a consumed id; or, when its
    text changed, as the one leaving record that lists it last in `lineage.parents` (translate, review edits).
    Leaving records that are neither must number `created`. Ids of leaving records are unique. Raw stages pass
    `key` = the record's raw file:line and the raw lines as `inputs`."""
    key = key or (lambda r: r["id"])
    problems = [f"ledger entry {e['id']} holds record {e['record']['id']}" for e in ledger if e["id"] != e["record"]["id"]]
    leaving = list(outputs) + [e["record"] for e in ledger]
    problems += [f"id {i} leaves {n} times" for i, n in Counter(r["id"] for r in leaving).items() if n > 1]
    inputs = list(inputs)
    wanted = set(inputs)
    problems += [f"input {k} enters {n} times" for k, n in Counter(inputs).items() if n > 1]
    consumed = set(consumed)
    problems += [f"consumed id {i} is not an input" for i in sorted(consumed - wanted)]
    seen = Counter(key(r) for r in leaving if key(r) in wanted) + Counter(consumed & wanted)
    became: dict[str, list[str]] = {}
    for r in leaving:
        parents = (r.get("lineage") or {}).get("parents") or []
        if key(r) not in wanted and parents and parents[-1] in wanted and not seen[parents[-1]]:
            became.setdefault(parents[-1], []).append(r["id"])
    for k in inputs:
        n = seen[k] or len(became.get(k, []))
        if n != 1:
            how = f"became {became[k]}" if k in became else f"leaves {n} times" if n else "is lost"
            problems.append(f"input {k} {how}")
    new = sum(1 for r in leaving if key(r) not in wanted) - sum(len(v) for v in became.values())
    if new != created:
        problems.append(f"{new} records are neither inputs nor made from one, but {created} were created")
    return problems

