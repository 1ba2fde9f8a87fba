"""What the decision log says about each record: who is asked to review it, whose decision counts, its state.

Shared by the review stage (vad/publish/review.py) and the app, so both read the log the same way:

- **Assignment** (params `review`): each record goes to one of `review.reviewers`, a `double_share` of them to
  two (deterministic by record id, so every process agrees without talking); with no reviewers listed anyone
  may review anything, and double-share records need two different people.
- **A reviewer's decision** is their latest accept / reject / edit, unless an undo withdrew it (then the one
  before counts again). Skips decide nothing.
- **State** of a record: `decided` when an adjudicator decided, or when the required number of reviewers
  decided and agree; `conflict` when reviewers disagree (until an adjudicator decides); `stale` when the only
  decisions were made on other content (the record changed upstream: content sha256 differs) — never applied;
  else `pending`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from vad.review.log import APPLYING, Decision

# The machine-generated sources (Evol-Instruct, translated SafeRLHF): `review.require: generated` holds them
# back until a reviewer accepts them; hand-written records pass.
GENERATED_SOURCES = ("evol", "translated")
STATES = ("pending", "decided", "conflict", "stale")


def unit(*parts: Any) -> float:
    """A number in [0, 1) that is a pure function of `parts` (assignment and sample draws)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


@dataclass(frozen=True)
class Assignment:
    reviewers: tuple[str, ...] = ()
    adjudicators: tuple[str, ...] = ()
    double_share: float = 0.0
    sample_share: float = 1.0
    seed: int = 0

    @classmethod
    def from_params(cls, p: Any) -> "Assignment":
        """p: the `review` params section."""
        return cls(tuple(p.reviewers), tuple(p.adjudicators), p.double_share, p.sample_share, p.seed)

    def double(self, rid: str) -> bool:
        return len(self.reviewers) != 1 and unit("double", self.seed, rid) < self.double_share

    def reviewers_of(self, rid: str) -> tuple[str, ...]:
        """Who is asked to review the record; () means anyone."""
        if not self.reviewers:
            return ()
        n = len(self.reviewers)
        i = int(unit("assign", self.seed, rid) * n)
        return (self.reviewers[i], self.reviewers[(i + 1) % n]) if self.double(rid) else (self.reviewers[i],)

    def required(self, rid: str) -> int:
        return 2 if self.double(rid) else 1

    def in_sample(self, rid: str) -> bool:
        return unit("sample", self.seed, rid) < self.sample_share

    def is_adjudication(self, d: Decision) -> bool:
        return d.role == "adjudicator" and d.reviewer in self.adjudicators


def effective(decisions: Iterable[Decision]) -> Decision | None:
    """One person's decision that counts: the latest applying one not withdrawn by an undo (input in log order)."""
    active: list[Decision] = []
    for d in decisions:
        if d.decision in APPLYING:
            active.append(d)
        elif d.decision == "undo":
            active = [a for a in active if a.uid != d.undoes]
    return active[-1] if active else None


def latest_active(decisions: Iterable[Decision], reviewer: str) -> Decision | None:
    """The decision an undo by `reviewer` would withdraw."""
    return effective(d for d in decisions if d.reviewer == reviewer)


@dataclass
class RecordState:
    status: str                                                   # one of STATES
    required: int = 1
    applied: Decision | None = None                               # what takes effect (decided)
    current: dict[str, Decision] = field(default_factory=dict)    # reviewers' decisions on this content
    stale: dict[str, Decision] = field(default_factory=dict)      # decisions (anyone's) made on other content
    adjudication: Decision | None = None
    detail: str = ""

    @property
    def has_stale(self) -> bool:
        return bool(self.stale)


def resolve(rid: str, sha256: str, decisions: list[Decision], a: Assignment) -> RecordState:
    """The state of record `rid` (content `sha256`) under `decisions` (those about it, in log order)."""
    rev: dict[str, list[Decision]] = {}
    adj: dict[str, list[Decision]] = {}
    for d in decisions:
        (adj if a.is_adjudication(d) else rev).setdefault(d.reviewer, []).append(d)
    eff = {r: e for r, ds in rev.items() if (e := effective(ds)) is not None}
    eff_adj = {r: e for r, ds in adj.items() if (e := effective(ds)) is not None}
    current = {r: d for r, d in eff.items() if d.sha256 == sha256}
    stale = {r: d for r, d in (*eff.items(), *eff_adj.items()) if d.sha256 != sha256}
    adjudications = [d for d in eff_adj.values() if d.sha256 == sha256]
    st = RecordState("pending", a.required(rid), current=current, stale=stale)
    if adjudications:
        st.adjudication = st.applied = max(adjudications, key=lambda d: d.order)
        st.status, st.detail = "decided", f"adjudicated by {st.applied.reviewer}"
    elif current:
        if len({d.outcome() for d in current.values()}) > 1:
            st.status = "conflict"
            st.detail = "reviewers disagree: " + ", ".join(f"{r} {d.decision}" for r, d in sorted(current.items()))
        elif len(current) >= st.required:
            st.applied = max(current.values(), key=lambda d: d.order)
            st.status, st.detail = "decided", ", ".join(sorted(current))
        else:
            st.detail = f"{len(current)} of {st.required} reviews"
    elif stale:
        st.status = "stale"
        st.detail = "decided on other content (the record changed upstream): " + ", ".join(
            f"{r} {d.decision} (line {d.line})" if d.line else f"{r} {d.decision}" for r, d in sorted(stale.items()))
    return st


def group(decisions: Iterable[Decision], ids: Iterable[str], origin_keys: dict[str, list[str]]
          ) -> tuple[dict[str, list[Decision]], list[Decision]]:
    """Decisions per current record id, in log order, and those that match no record.

    A decision whose id is gone (the text changed upstream, so the id did) joins the record now at the same
    origin key (vad/review/log.py origin_key) when exactly one record has it: there it is stale, not lost."""
    known = set(ids)
    by_id: dict[str, list[Decision]] = {}
    unmatched = []
    for d in decisions:
        if d.id in known:
            by_id.setdefault(d.id, []).append(d)
            continue
        hits = origin_keys.get(d.origin, []) if d.origin else []
        if len(hits) == 1:
            by_id.setdefault(hits[0], []).append(d)
        else:
            unmatched.append(d)
    return by_id, unmatched


def agreement_pair(rid: str, st: RecordState, a: Assignment) -> tuple[str, str] | None:
    """The two reviewers' labels (accept / reject / edit) on a twice-reviewed record, in assignment order."""
    if len(st.current) < 2:
        return None
    names = [r for r in a.reviewers_of(rid) if r in st.current] or sorted(st.current)
    names += sorted(r for r in st.current if r not in names)
    return st.current[names[0]].decision, st.current[names[1]].decision
