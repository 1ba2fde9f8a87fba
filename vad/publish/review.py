"""Apply human review decisions (data/review/decisions.jsonl) to the IFD-selected records.

One decision per line: {"id": ..., "decision": "accept" | "reject" | "edit", "reason": ..., "reviewer": ...,
and for "edit" any of "instruction", "input", "output", "categorization"}. A rejected record is ledgered
(`review_rejected`, with reviewer and reason); an edit changes the text, so the record gets a new id and the
old one goes to lineage parents. Decisions naming ids not present (dropped earlier, or from an older build)
are counted in metrics, not errors: thresholds move, decisions stay."""
from __future__ import annotations

from pathlib import Path

from vad.core.errors import InputError
from vad.core.io import iter_jsonl
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.core.taxonomy import check_categorization

DECISIONS = ("accept", "reject", "edit")
EDITABLE = ("instruction", "input", "output", "categorization")


def read_decisions(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for n, _raw, d in iter_jsonl(path):
        where = f"{path}:{n}"
        if not isinstance(d, dict) or not isinstance(d.get("id"), str):
            raise InputError(where, "a decision needs a string 'id'")
        if d.get("decision") not in DECISIONS:
            raise InputError(where, f"decision must be one of {DECISIONS}, got {d.get('decision')!r}")
        if d["decision"] == "edit":
            if not any(k in d for k in EDITABLE):
                raise InputError(where, f"an edit must change one of {EDITABLE}")
            if "categorization" in d and check_categorization(d["categorization"]):
                raise InputError(where, check_categorization(d["categorization"]))
        if d["id"] in out:
            raise InputError(where, f"second decision for id {d['id']} (first at line {out[d['id']]['_line']})")
        out[d["id"]] = {**d, "_line": n}
    return out


def apply_review(records: list[Record], decisions: dict[str, dict], run: StageRun) -> list[Record]:
    run.take(records)
    kept, used = [], set()
    for rec in records:
        d = decisions.get(rec.id)
        if d is None:
            kept.append(rec)
            continue
        used.add(rec.id)
        who = {"reviewer": d.get("reviewer", ""), "reason": d.get("reason", "")}
        if d["decision"] == "reject":
            run.drop(rec, "review_rejected", d.get("reason", ""), reviewer=d.get("reviewer", ""))
            continue
        if d["decision"] == "edit":
            for k in EDITABLE:
                if k in d:
                    setattr(rec, k, d[k] if k != "categorization" else dict(d[k]))
            rec.rehash()
            rec.add_op("review", "edit", fields=[k for k in EDITABLE if k in d], **who)
        else:
            rec.add_op("review", "accept", **who)
        kept.append(rec)
    run.metrics.update({
        "decisions": len(decisions),
        "decisions_applied": len(used),
        "decisions_unmatched": len(set(decisions) - used),
    })
    return kept
