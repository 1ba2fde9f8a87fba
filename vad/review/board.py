"""The app's view of the review: every record's state under the decision log, kept current as the log grows,
and the queues (filters, order, position) each reviewer works through.

The log is read once at start and then only its new lines (vad/review/log.py LogTail), on every request: other
reviewer processes append to the same file. A record's state is recomputed only when a decision about it
arrives; a queue is one pass over the index (no record text), cached until the log changes."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vad.core.taxonomy import LEVELS, SOURCES
from vad.review.corpus import Corpus
from vad.review.log import Decision, LogTail
from vad.review.state import STATES, Assignment, RecordState, group, resolve

QUEUE_STATES = (*STATES, "all")
SORTS = ("order", "flags", "confidence", "ifd")
EVERYONE = "*"


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    """A queue: which records, in which order, for whom (`reviewer`: a name, "" = me, "*" = everyone)."""

    state: str = "pending"
    source: str = ""
    level: str = ""
    value: str = ""
    ifd_min: float | None = None
    ifd_max: float | None = None
    reviewer: str = ""
    sort: str = "order"

    @classmethod
    def parse(cls, q: dict[str, str]) -> "Query":
        def num(k: str) -> float | None:
            v = (q.get(k) or "").strip()
            if not v:
                return None
            try:
                return float(v)
            except ValueError:
                raise QueryError(f"{k}: not a number: {v!r}") from None

        out = cls(state=q.get("state") or "pending", source=q.get("source") or "", level=q.get("level") or "",
                  value=q.get("value") or "", ifd_min=num("ifd_min"), ifd_max=num("ifd_max"),
                  reviewer=q.get("reviewer") or "", sort=q.get("sort") or "order")
        if out.state not in QUEUE_STATES:
            raise QueryError(f"state: one of {', '.join(QUEUE_STATES)}")
        if out.source and out.source not in SOURCES:
            raise QueryError(f"source: one of {', '.join(SOURCES)}")
        if out.level and out.level not in LEVELS:
            raise QueryError(f"level: one of {', '.join(LEVELS)}")
        if out.value and out.value not in {v for vs in LEVELS.values() for v in vs}:
            raise QueryError("value: one of the twelve values")
        if out.sort not in SORTS:
            raise QueryError(f"sort: one of {', '.join(SORTS)}")
        return out

    def params(self) -> dict[str, str]:
        """As URL query parameters (defaults left out, but the state: its default depends on who asks)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "state" or (v not in (None, "") and v != f.default):
                out[f.name] = f"{v:g}" if isinstance(v, float) else str(v)
        return out


class Board:
    def __init__(self, corpus: Corpus, log_path: str | Path, review_params: Any,
                 suggestions_path: str | Path | None = None):
        self.corpus = corpus
        self.a = Assignment.from_params(review_params)
        self.reasons = dict(review_params.reasons)
        self.tail = LogTail(log_path, self.reasons)
        self.version = 0
        self.suggestions = _read_suggestions(suggestions_path, corpus) if suggestions_path else {}
        self._reset()
        self.refresh()

    def _reset(self) -> None:
        self.decisions: dict[int, list[Decision]] = {}
        self.unmatched: list[Decision] = []
        self.skipped: dict[str, set[int]] = {}
        self._states: dict[int, RecordState] = {}
        self._queues: dict[tuple, list[int]] = {}
        self.lines = 0

    # --- the log ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        new, reset = self.tail.new()
        if reset:
            self._reset()
        if not new and not reset:
            return
        self.lines += len(new)
        by_id, unmatched = group(new, self.corpus.pos, self.corpus.by_origin)
        self.unmatched += unmatched
        for rid, got in by_id.items():
            i = self.corpus.pos[rid]
            ds = self.decisions.setdefault(i, [])
            ds += got
            ds.sort(key=lambda x: x.order)  # a merged log's lines come in any order
            for d in got:
                if d.decision == "skip":
                    self.skipped.setdefault(d.reviewer, set()).add(i)
            self._states.pop(i, None)
        self.version += 1
        self._queues.clear()

    def state(self, i: int) -> RecordState:
        st = self._states.get(i)
        if st is None:
            st = resolve(self.corpus.ids[i], self.corpus.sha[i], self.decisions.get(i, []), self.a)
            self._states[i] = st
        return st

    def history(self, i: int) -> list[Decision]:
        return list(self.decisions.get(i, []))

    # --- whose queue ----------------------------------------------------------------------------------------
    def is_adjudicator(self, name: str) -> bool:
        return name in self.a.adjudicators

    def assigned(self, i: int, name: str) -> bool:
        names = self.a.reviewers_of(self.corpus.ids[i])
        return not names or name in names

    def status_for(self, i: int, name: str) -> str | None:
        """The record's state as `name` sees it (None: not in their queue); EVERYONE: the record's own."""
        st = self.state(i)
        if name == EVERYONE or self.is_adjudicator(name):
            return st.status
        if name in st.current:
            return "conflict" if st.status == "conflict" else "decided"
        if name in st.stale:
            return "stale"
        if not self.assigned(i, name):
            return None
        return "decided" if st.status == "decided" else "pending"

    def flags(self, i: int) -> int:
        """Objections to the record: the judge stage's (meta.flags, a failed or errored verdict) and the review
        suggestions' flags (vad/review/suggest.py)."""
        s = self.suggestions.get(self.corpus.ids[i])
        return self.corpus.objections[i] + (len(s.get("flags") or []) if s else 0)

    def queue(self, q: Query, me: str) -> list[int]:
        """Indices of the records in the queue, in its order."""
        who = q.reviewer or me
        key = (q, who)
        hit = self._queues.get(key)
        if hit is not None:
            return hit
        c = self.corpus
        lo = q.ifd_min if q.ifd_min is not None else float("-inf")
        hi = q.ifd_max if q.ifd_max is not None else float("inf")
        out = []
        for i in range(len(c)):
            if (q.source and c.source[i] != q.source) or (q.level and c.level[i] != q.level) \
                    or (q.value and c.value[i] != q.value):
                continue
            if (q.ifd_min is not None or q.ifd_max is not None) and not (c.ifd[i] is not None and lo <= c.ifd[i] <= hi):
                continue
            if i not in self.decisions:  # fast path: no decision about it yet
                if who != EVERYONE and not self.is_adjudicator(who) and not self.assigned(i, who):
                    continue
                status = "pending"
            else:
                status = self.status_for(i, who)
                if status is None:
                    continue
            if q.state == "all" or status == q.state:
                out.append(i)
        skipped = self.skipped.get(who, set())
        if q.sort == "flags":
            out.sort(key=lambda i: (-self.flags(i), i in skipped, i))
        elif q.sort == "confidence":  # the categorizer's least sure first; records without a prediction last
            out.sort(key=lambda i: (c.confidence[i] is None, c.confidence[i] or 0.0, i in skipped, i))
        elif q.sort == "ifd":
            out.sort(key=lambda i: (c.ifd[i] is None, c.ifd[i] or 0.0, i))
        elif skipped:
            out.sort(key=lambda i: (i in skipped, i))
        self._queues[key] = out
        return out

    def neighbours(self, queue: list[int], i: int) -> tuple[int | None, int | None, int | None]:
        """(position of i in the queue or None, previous index, next index). When i has left the queue (just
        decided), previous and next are its neighbours in the corpus order among the queue's records."""
        try:
            k = queue.index(i)
        except ValueError:
            after = [j for j in queue if j > i]
            before = [j for j in queue if j < i]
            return None, (before[-1] if before else None), (after[0] if after else (queue[0] if queue else None))
        return k, (queue[k - 1] if k > 0 else None), (queue[k + 1] if k + 1 < len(queue) else None)

    # --- progress -----------------------------------------------------------------------------------------
    def progress(self) -> dict[str, Any]:
        from vad.review.agreement import cohen_kappa
        from vad.review.state import agreement_pair

        c = self.corpus
        people = list(self.a.reviewers) + [r for r in sorted({d.reviewer for ds in self.decisions.values() for d in ds})
                                            if r not in self.a.reviewers and r not in self.a.adjudicators]
        per = {r: {"assigned": 0, "decided": 0, "accept": 0, "reject": 0, "edit": 0, "stale": 0} for r in people}
        cats = {f"{lvl}/{v}": {"records": 0, "decided": 0, "conflict": 0, "stale": 0}
                for lvl, vals in LEVELS.items() for v in vals}
        pairs: dict[str, list] = {lvl: [] for lvl in LEVELS}
        states = {s: 0 for s in STATES}
        for i in range(len(c)):
            st = self.state(i) if i in self.decisions else None
            status = st.status if st else "pending"
            states[status] += 1
            names = self.a.reviewers_of(c.ids[i])
            for r in names:
                per[r]["assigned"] += 1
            cat = cats.get(f"{c.level[i]}/{c.value[i]}")
            if cat is not None:
                cat["records"] += 1
                if status in cat:
                    cat[status] += 1
            if st is None:
                continue
            for r, d in st.current.items():
                p = per.setdefault(r, {"assigned": 0, "decided": 0, "accept": 0, "reject": 0, "edit": 0, "stale": 0})
                p["decided"] += 1
                p[d.decision] += 1
            for r in st.stale:
                if r in per:
                    per[r]["stale"] += 1
            pair = agreement_pair(c.ids[i], st, self.a)
            if pair and c.level[i] in pairs:
                pairs[c.level[i]].append(pair)
        every = [p for ps in pairs.values() for p in ps]
        return {"states": states, "reviewers": per, "categories": cats, "total": len(c),
                "kappa_overall": cohen_kappa(every), "kappa_pairs": len(every),
                "kappa_by_level": {lvl: cohen_kappa(ps) for lvl, ps in pairs.items()},
                "lines": self.lines, "unmatched": len(self.unmatched)}


def _read_suggestions(path: str | Path, corpus: Corpus) -> dict[str, dict]:
    """LLM judge suggestions (vad/review/suggest.py) that still match the record's content."""
    path = Path(path)
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                s = json.loads(line)
                i = corpus.pos.get(s.get("id"))
                if i is not None and s.get("sha256") == corpus.sha[i]:
                    out[s["id"]] = s
    return out
