"""The machine measured against the people: once reviewers have decided, how often they kept the predicted
category (and where they moved records), and how well the judge's and the content checks' flags foresaw a
rejection. Computed by the review stage from the records it decides (build/metrics/review.json `machine`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """One decided machine-made record: what the machine said, what the people decided."""

    source: str
    pred: str | None          # "level/value" of meta.category_pred
    final: str | None         # the category the record leaves review with (None when rejected)
    rejected: bool
    judge_flagged: bool | None  # the LLM judge's verdict was fail (None: not judged)
    flagged: bool             # any flag (meta.flags: content checks, low confidence, judge)


def outcome(rec: Any, decision: str, edited_category: dict | None) -> Outcome:
    """From the record as reviewed (before an edit is applied) and its applied decision."""
    p = rec.meta.get("category_pred")
    cat = edited_category or rec.categorization
    j = rec.meta.get("judge")
    return Outcome(rec.source, f"{p['level']}/{p['value']}" if p else None,
                   None if decision == "reject" else f"{cat['level']}/{cat['value']}", decision == "reject",
                   None if j is None else j.get("verdict") == "fail", bool(rec.meta.get("flags")))


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def flag_quality(flags: list[bool], rejected: list[bool]) -> dict[str, Any]:
    """Precision and recall of "flagged" as a predictor of "rejected"."""
    tp = sum(f and r for f, r in zip(flags, rejected))
    fp = sum(f and not r for f, r in zip(flags, rejected))
    fn = sum(r and not f for f, r in zip(flags, rejected))
    return {"n": len(flags), "flagged": tp + fp, "rejected": tp + fn, "true_positive": tp,
            "precision": _rate(tp, tp + fp), "recall": _rate(tp, tp + fn)}


def _summary(outs: list[Outcome]) -> dict[str, Any]:
    kept_cat = [o for o in outs if not o.rejected and o.pred is not None]
    same = sum(o.final == o.pred for o in kept_cat)
    moves = Counter(f"{o.pred} → {o.final}" for o in kept_cat if o.final != o.pred)
    judged = [o for o in outs if o.judge_flagged is not None]
    return {
        "decided": len(outs),
        "rejected": sum(o.rejected for o in outs),
        "category_decided": len(kept_cat),
        "category_kept": same,
        "category_kept_rate": _rate(same, len(kept_cat)),
        "moved_to": dict(sorted(Counter(o.final for o in kept_cat if o.final != o.pred).items(),
                                key=lambda kv: (-kv[1], kv[0]))),
        "moves": dict(moves.most_common(20)),
        "judge_vs_rejected": flag_quality([bool(o.judge_flagged) for o in judged], [o.rejected for o in judged]),
        "flags_vs_rejected": flag_quality([o.flagged for o in outs], [o.rejected for o in outs]),
    }


def machine_vs_people(outs: list[Outcome]) -> dict[str, Any]:
    """Overall and per source."""
    return {"all": _summary(outs),
            "by_source": {s: _summary([o for o in outs if o.source == s]) for s in sorted({o.source for o in outs})}}
