"""The categories people settled: what the categorizer learns from, and what the judge keeps.

A decision line names the content it judged by `sha256` = content_sha256 of the five exported attributes, the
categorization among them. So the category a reviewer *accepted* is the one of the twelve under which the
record's current text hashes to the decision's sha256 (no category is stored twice); an *edit* that changed the
category names it in `fields`. A decision whose sha256 matches none of the twelve was made on other text: it
settles nothing. Rejections settle no category.

Read by the categorize_train stage (training examples) and the judge stage (a settled record keeps its category
whatever a retrained categorizer says, so the decision about it stays valid)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from vad.core.record import Record
from vad.core.taxonomy import PAIRS
from vad.review.log import Decision, content_sha256
from vad.review.state import effective

_CATEGORIES = [dict(zip(("level", "value"), p.split("/", 1))) for p in PAIRS]


def category_seen(rec: Record, sha256: str) -> dict[str, str] | None:
    """The categorization under which `rec`'s text has content sha256 `sha256`, or None."""
    for cat in _CATEGORIES:
        if content_sha256(replace(rec, categorization=cat)) == sha256:
            return dict(cat)
    return None


@dataclass(frozen=True)
class Settled:
    seen: dict[str, str]    # the category the reviewer saw (the judge keeps it, so the decision still matches)
    final: dict[str, str]   # the category they settled on (an edit's new one, else the one seen)
    decision: str           # accept | edit


def settled(records: Iterable[Record], decisions: list[Decision]) -> dict[str, Settled]:
    """record id → Settled for each machine-made record whose latest effective decision (any reviewer's, undos
    applied) accepted it or edited only its category, made on its current text."""
    by_id: dict[str, dict[str, list[Decision]]] = {}
    for d in decisions:
        by_id.setdefault(d.id, {}).setdefault(d.reviewer, []).append(d)
    out = {}
    for rec in records:
        if rec.source == "manual" or rec.id not in by_id:
            continue
        eff = [e for ds in by_id[rec.id].values() if (e := effective(sorted(ds, key=lambda d: d.order)))]
        if not eff:
            continue
        d = max(eff, key=lambda d: d.order)
        if d.decision == "reject" or any(k in d.fields for k in ("instruction", "input", "output")):
            continue  # no category, or one for other text
        seen = category_seen(rec, d.sha256)
        if seen is None:
            continue
        cat = d.fields.get("categorization") if d.decision == "edit" else None
        out[rec.id] = Settled(seen, dict(cat) if cat else seen, d.decision)
    return out
