"""The length bounds every corpus keeps (`ingest.min_chars` / `ingest.max_chars`): applied to the hand-written
records as they are ingested, and to every source again in merge (LLM output included)."""
from __future__ import annotations

from vad.core.filters import Drop, Filter
from vad.core.record import Record


class LengthBounds(Filter):
    """At most max_chars in every field (as stored: what the GX suites count), at least min_chars of
    non-space text in the instruction and the output."""

    reasons = {"too_long": "a field has more than `ingest.max_chars` characters",
               "too_short": "the instruction or the output has fewer than `ingest.min_chars` non-space characters"}

    def __init__(self, min_chars: int, max_chars: int):
        self.min_chars, self.max_chars = min_chars, max_chars

    def decide(self, rec: Record, stats: None) -> Drop | None:
        for name in ("instruction", "input", "output"):
            n = len(getattr(rec, name))
            if n > self.max_chars:
                return Drop("too_long", f"{name} has {n} characters > max_chars {self.max_chars}")
        for name in ("instruction", "output"):
            n = len(getattr(rec, name).strip())
            if n < self.min_chars:
                return Drop("too_short", f"{name} has {n} characters < min_chars {self.min_chars}")
        return None
