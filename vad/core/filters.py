"""The one filter protocol: a filter measures a record, then says keep or drop-with-a-declared-reason.

    class TooShort(Filter):
        name = "length"                                    # its measurement goes to rec.meta["length"]
        reasons = {"too_short": "the output has fewer than min_chars characters"}

        def measure(self, rec):                            # what it sees, apart from what it decides
            return {"chars": len(rec.output)}

        def decide(self, rec, stats):
            if stats["chars"] < self.min_chars:
                return Drop("too_short", f"{stats['chars']} characters")

`apply` is the one loop (StageRun.apply and the generating stages' Funnel.filter both call it): filters run in
order, the first that objects drops the item — the caller's `on_drop` ledgers it — and an item nobody objects to
is kept. A filter whose `action` is "flag" never drops: its objection is appended to `rec.meta["flags"]` (the
review queue sorts flagged records first) and the next filter runs. A Drop whose reason the filter did not declare
is a programming error and raises, so the declarations are a complete list of what a filter can say; the table of
reason codes in docs/reasons.md is generated from them (`vad docs write`; `vad docs check` and the tests fail when it is stale)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from vad.core.record import Record

T = TypeVar("T")
FLAGS = "flags"  # meta key: the objections of flag-only filters, [{reason, detail, by}]


@dataclass
class Drop:
    """What a filter says about a record it rejects: a declared reason code, a human detail, extra ledger fields."""

    reason: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class UndeclaredReason(RuntimeError):
    pass


class Filter:
    """Subclasses declare `reasons` (code → meaning) and implement `decide`; `measure` is optional."""

    name: ClassVar[str] = ""                       # meta key of the measurement; "" = not stored
    reasons: ClassVar[dict[str, str]] = {}         # every reason code `decide` may return, with its meaning
    action: Literal["drop", "flag"] = "drop"       # "flag": mark the record for review instead of dropping it

    @property
    def reason(self) -> str:
        """The reason code of a filter that declares one."""
        (code,) = self.reasons
        return code

    def measure(self, rec: Record) -> Any:
        """What the filter measures about the record (JSON-able; stored in meta[name] when `name` is set)."""
        return None

    def decide(self, rec: Record, stats: Any) -> Drop | None:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, rec: Record) -> Drop | None:
        """Measure (storing the measurement), then decide; a Drop's reason must be declared."""
        stats = self.measure(rec)
        if self.name and stats is not None:
            rec.meta[self.name] = stats
        d = self.decide(rec, stats)
        if d is not None and d.reason not in self.reasons:
            raise UndeclaredReason(f"{type(self).__name__} returned reason {d.reason!r}, which it does not declare "
                                   f"in `reasons` ({sorted(self.reasons)})")
        return d


def flag(rec: Record, d: Drop, by: str) -> None:
    rec.meta.setdefault(FLAGS, []).append({"reason": d.reason, "detail": d.detail, "by": by})


def apply(items: Sequence[T], filters: Sequence[Filter], on_drop: Callable[[T, Drop], None],
          rec: Callable[[T], Record] = lambda item: item) -> list[T]:
    """Run `filters` in order over each item's record (`rec(item)`); the first dropping objection calls
    `on_drop(item, drop)` and the item is not kept; flag-only objections mark the record and it goes on."""
    kept = []
    for item in items:
        r = rec(item)
        for flt in filters:
            d = flt.check(r)
            if d is None:
                continue
            if flt.action == "flag":
                flag(r, d, type(flt).__name__)
                continue
            on_drop(item, d)
            break
        else:
            kept.append(item)
    return kept


def declared(filters: Iterable[type[Filter]]) -> dict[str, str]:
    """The reason codes a set of filter classes can give, with their meanings (metrics and docs list these)."""
    out: dict[str, str] = {}
    for cls in filters:
        out.update(cls.reasons)
    return out
