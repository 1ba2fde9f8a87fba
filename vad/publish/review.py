"""The review stage's logic: apply the reviewers' decisions and the review policy to the IFD-selected records.

The decisions come from the decision log (review/decisions.jsonl: vad/review/log.py), read the same way the app
reads them (vad/review/state.py). Per record:

- **decided** — accept: passes (op `review/accept`); reject: ledgered `review_rejected` (reason code, note,
  reviewer); edit: the new fields (new text → new id, the old one in `lineage.parents`), then the cheap checks
  again — taxonomy, length, language (vad.quality.merge's filters) and duplicates against the other records
  (vad.quality.dedup) — and never the IFD of the old text: `meta.ifd` moves to `meta.ifd_before_edit`.
- **conflict** (reviewers disagree) — held back as `review_pending` until an adjudicator decides, whatever the
  policy.
- **pending**, or **stale** (decided on other content: the record changed upstream; never applied) — passes
  or is held back as `review_pending`, by `review.require`: `none` passes it; `generated` holds the
  machine-generated sources (evol, translated) and passes hand-written ones; `all` holds it; `sample` holds it
  when it is in the seeded review sample (`review.sample_share`).

Metrics (build/metrics/review.json, flat where `dvc exp show` benefits): decided, pending, accepted, rejected,
edited, stale, conflicts, kappa_overall, kappa_by_level, policy, progress per reviewer and level, and for
`sample` the reject rate found in the sample with a Wilson interval."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.core.taxonomy import LEVELS
from vad.quality.dedup import exact_dedup, near_dedup
from vad.quality.length import LengthBounds
from vad.judge.agreement import machine_vs_people, outcome
from vad.quality.content import ContentCheck
from vad.quality.merge import CategoryCheck, LanguageCheck
from vad.review.agreement import cohen_kappa, wilson
from vad.review.log import TEXT_FIELDS, Decision, content_sha256, origin_key, read_log
from vad.review.state import GENERATED_SOURCES, Assignment, RecordState, agreement_pair, group, resolve

PENDING = "review_pending"
REJECTED = "review_rejected"
LEDGER_REASONS = {
    PENDING: "not yet decided (or reviewers disagree) where `review.require` holds records back",
    REJECTED: "a reviewer rejected it (`reason_code` says which of `review.reasons`)",
}


def read_decisions(path: str | Path, params: Any) -> list[Decision]:
    """params: the `review` section (reject reasons are checked against `review.reasons`)."""
    return read_log(path, dict(params.reasons))


def policy_hold(rec: Record, policy: str, a: Assignment) -> str | None:
    """Why an unreviewed record is held back under `review.require`, or None when it passes unreviewed."""
    if policy == "generated" and rec.source in GENERATED_SOURCES:
        return f"source {rec.source} is machine-generated: exported once a reviewer accepts it (review.require: generated)"
    if policy == "all":
        return "exported once a reviewer accepts it (review.require: all)"
    if policy == "sample" and a.in_sample(rec.id):
        return "in the review sample (review.require: sample): exported once a reviewer accepts it"
    return None


def states(records: list[Record], decisions: list[Decision], a: Assignment
           ) -> tuple[list[RecordState], list[Decision]]:
    """Each record's state, and the decisions that match no record (ids from an older build)."""
    keys: dict[str, list[str]] = {}
    for r in records:
        keys.setdefault(origin_key(r), []).append(r.id)
    by_id, unmatched = group(decisions, (r.id for r in records), keys)
    return [resolve(r.id, content_sha256(r), by_id.get(r.id, []), a) for r in records], unmatched


def _who(d: Decision) -> dict[str, Any]:
    return {"reviewer": d.reviewer, "role": d.role, "decision_uid": d.uid, "guidelines": d.guidelines}


def apply_edit(rec: Record, d: Decision) -> None:
    text = any(k in d.fields for k in TEXT_FIELDS)
    for k, v in d.fields.items():
        setattr(rec, k, dict(v) if k == "categorization" else v)
    if text and "ifd" in rec.meta:  # the IFD was computed on the old text: kept for audit, never reused
        rec.meta["ifd_before_edit"] = rec.meta.pop("ifd")
    rec.rehash()
    rec.add_op("review", "edit", fields=sorted(d.fields), **_who(d), **({"note": d.note} if d.note else {}))


class EditChecks:
    """The cheap checks an edited record goes through again (the merge stage's, with the same params)."""

    def __init__(self, params: Any):
        m = params.merge
        self.filters = [CategoryCheck(), LengthBounds(params.ingest.min_chars, params.ingest.max_chars),
                        ContentCheck(params.content),
                        LanguageCheck(m.lang, m.min_lang_score)]
        self.dedup = (m.near_dup_threshold, m.ngram, m.num_perm)

    def check(self, rec: Record, d: Decision, run: StageRun) -> bool:
        for flt in self.filters:
            drop = flt.check(rec)
            if drop is not None:
                run.drop(rec, drop.reason, f"after a review edit: {drop.detail}", **drop.extra, **_who(d))
                return False
        return True

    def duplicates(self, kept: list[Record], edits: dict[int, Decision], run: StageRun) -> list[Record]:
        """Edited records that became (near) duplicates of another record are ledgered; the other one stays.

        The dedup functions visit records in order and keep the first of a group, so the edits go last; the
        unedited records passed merge's dedup with the same params and stay whatever happens here."""
        text_edits = {k for k, d in edits.items() if any(f in d.fields for f in TEXT_FIELDS)}
        if not text_edits:
            return kept
        scratch = StageRun(run.stage)  # the dedup functions ledger into a StageRun; only the edits' drops count
        order = [r for r in kept if id(r) not in text_edits] + [r for r in kept if id(r) in text_edits]
        thr, ngram, num_perm = self.dedup
        survivors = {id(r) for r in near_dedup(exact_dedup(order, scratch), thr, ngram, num_perm, scratch)}
        entries = {e["id"]: e for e in scratch.entries}
        out = []
        for r in kept:
            if id(r) in survivors or id(r) not in text_edits:
                out.append(r)
                continue
            e = entries[r.id]
            extra = {k: v for k, v in e.items() if k not in ("stage", "id", "reason", "detail", "record")}
            run.drop(r, e["reason"], f"after a review edit: {e['detail']}", **extra, **_who(edits[id(r)]))
        return out


def review(records: list[Record], decisions: list[Decision], params: Any, run: StageRun
           ) -> tuple[list[Record], dict[str, Any]]:
    """params: the stage's view (sections review, merge, ingest). Returns (records passed on, metrics)."""
    p = params.review
    a = Assignment.from_params(p)
    run.take(records)
    sts, unmatched = states(records, decisions, a)
    checks = EditChecks(params)
    kept: list[Record] = []
    edits: dict[int, Decision] = {}
    n = Counter()
    pairs: dict[str, list[tuple[str, str]]] = {lvl: [] for lvl in LEVELS}
    progress = {lvl: Counter() for lvl in LEVELS}
    sample = Counter()
    outcomes = []  # decided machine-made records: the machine's word against the people's
    for rec, st in zip(records, sts):
        level = rec.categorization.get("level")
        pair = agreement_pair(rec.id, st, a)
        if pair and level in pairs:
            pairs[level].append(pair)
        n["stale"] += st.has_stale
        if level in progress:
            progress[level]["records"] += 1
            progress[level]["decided"] += st.status == "decided"
        in_sample = p.require == "sample" and a.in_sample(rec.id)
        sample["size"] += in_sample
        if st.status == "decided":
            d = st.applied
            n["decided"] += 1
            if rec.source in GENERATED_SOURCES:
                outcomes.append(outcome(rec, d.decision, d.fields.get("categorization") if d.decision == "edit" else None))
            sample["reviewed"] += in_sample
            if d.decision == "reject":
                n["rejected"] += 1
                sample["rejected"] += in_sample
                run.drop(rec, REJECTED, f"{d.reason}: {d.note}" if d.note else d.reason, reason_code=d.reason,
                         note=d.note, **_who(d))
                continue
            if d.decision == "edit":
                n["edited"] += 1
                apply_edit(rec, d)
                if not checks.check(rec, d, run):
                    n["edit_failed_checks"] += 1
                    continue
                edits[id(rec)] = d
            else:
                n["accepted"] += 1
                rec.add_op("review", "accept", **_who(d))
            kept.append(rec)
        elif st.status == "conflict":
            n["conflicts"] += 1
            n["pending"] += 1
            run.drop(rec, PENDING, f"{st.detail}; an adjudicator decides (review.adjudicators)", state="conflict")
        else:
            why = policy_hold(rec, p.require, a)
            if why is None:
                n["unreviewed_passed"] += 1
                kept.append(rec)
                continue
            n["pending"] += 1
            detail = why + (f"; {st.detail}" if st.detail else "")
            run.drop(rec, PENDING, detail, state=st.status)
    n_before = len(kept)
    kept = checks.duplicates(kept, edits, run)
    n["edit_failed_checks"] += n_before - len(kept)
    return kept, {**metrics(p, n, pairs, progress, sample, decisions, unmatched), "machine": machine_vs_people(outcomes)}


def metrics(p: Any, n: Counter, pairs: dict[str, list[tuple[str, str]]], progress: dict[str, Counter],
            sample: Counter, decisions: list[Decision], unmatched: list[Decision]) -> dict[str, Any]:
    by_level = {lvl: cohen_kappa(ps) for lvl, ps in pairs.items()}
    all_pairs = [x for ps in pairs.values() for x in ps]
    per_reviewer: dict[str, Counter] = {}
    for d in decisions:
        per_reviewer.setdefault(d.reviewer, Counter())[d.decision] += 1
    out: dict[str, Any] = {
        "policy": p.require,
        **{k: n[k] for k in ("decided", "pending", "accepted", "rejected", "edited", "stale", "conflicts",
                             "unreviewed_passed", "edit_failed_checks")},
        "kappa_overall": cohen_kappa(all_pairs),
        "kappa_pairs": len(all_pairs),
        "kappa_by_level": by_level,
        "decision_lines": len(decisions),
        "decisions_unmatched": len(unmatched),
        "reviewers": {r: dict(sorted(c.items())) for r, c in sorted(per_reviewer.items())},
        "progress_by_level": {lvl: dict(c) for lvl, c in progress.items()},
        "guidelines_versions": sorted({d.guidelines for d in decisions if d.guidelines}),
    }
    if p.require == "sample":
        lo, hi = wilson(sample["rejected"], sample["reviewed"], p.confidence)
        out.update({
            "sample_size": sample["size"], "sample_reviewed": sample["reviewed"],
            "sample_rejected": sample["rejected"],
            "sample_reject_rate": round(sample["rejected"] / sample["reviewed"], 4) if sample["reviewed"] else None,
            "sample_reject_ci_low": lo, "sample_reject_ci_high": hi, "sample_confidence": p.confidence,
        })
    return out
