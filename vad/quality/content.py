"""Offline content checks of machine-made records (evol, translated), run in merge before anything is scored.

Each check is a Filter (vad.core.filters) that measures, then decides; whether an objection ledgers the record
or only flags it for review first is `content.actions` (params.yaml). Hand-written records are not checked: a
person wrote them, and the test suite checks that none of them would trip a check.

  content_loop          a degenerate generation: a unit repeated 5+ times in a row, a sentence repeated, a
                        clause repeated back to back (可以接受的，可以接受的), or more than
                        `content.max_dup_ngram_frac` of the text covered by character 4-grams seen before in it
  content_few_han       the answer has fewer than `content.min_han_chars` Han characters
  content_marks         more than `content.max_mark_share` of the answer's characters are combining marks
                        (Unicode M*: a draft of accents, variation selectors or zalgo)
  content_refusal_only  the answer is a bare refusal (a refusal phrase, fewer than `content.refusal_max_chars`
                        content characters) — right for a harmful request, wrong where the task needed help,
                        which only a person or the judge can tell: flagged by default

English left in a translation is the translate stage's `translate_english_left` (a long Latin run, or more than
`translate.max_latin_share` Latin letters)."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from vad.core.filters import Drop, Filter, flag
from vad.core.record import Record
from vad.core.text import content_chars, mark_share, refusal_phrase, repeated_sentence, strip_ws

GENERATED = ("evol", "translated")  # the sources these checks apply to
NGRAM = 4  # characters per n-gram of the duplicated-n-gram share (Gopher's repetition measure, on characters)
MIN_NGRAM_TEXT = 40  # shorter texts are not judged by the n-gram share (a short answer repeats little by chance)
_CLAUSE = re.compile(r"[，,、。！？!?；;：:\n]+")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def dup_ngram_frac(text: str, n: int = NGRAM) -> float:
    """Share of the text's non-space characters covered by character n-grams that occurred earlier in it."""
    t = strip_ws(text)
    if len(t) < n:
        return 0.0
    seen: set[str] = set()
    covered = [False] * len(t)
    for i in range(len(t) - n + 1):
        g = t[i:i + n]
        if g in seen:
            for j in range(i, i + n):
                covered[j] = True
        seen.add(g)
    return round(sum(covered) / len(t), 4)


def repeated_clause(text: str, min_chars: int = 3) -> str | None:
    """A clause of `min_chars`+ characters repeated back to back, or 3+ times anywhere, or None."""
    clauses = [strip_ws(c) for c in _CLAUSE.split(text)]
    clauses = [c for c in clauses if len(c) >= min_chars and any(ch.isalpha() for ch in c)]
    for a, b in zip(clauses, clauses[1:]):
        if a == b:
            return a
    common = Counter(clauses).most_common(1)
    return common[0][0] if common and common[0][1] >= 3 else None


def _fields(rec: Record) -> list[tuple[str, str]]:
    out = [("instruction", rec.instruction), ("output", rec.output)]
    if rec.meta.get("rejected_zh"):
        out.append(("rejected", rec.meta["rejected_zh"]))
    return out


class ContentCheck(Filter):
    """The four checks as one filter: one measurement (meta.content), then every objection in table order; those
    whose `content.actions` is "flag" mark the record, the first whose action is "drop" drops it."""

    name = "content"
    reasons = {
        "content_loop": "a repetition loop: a repeated unit, sentence or back-to-back clause, or too many repeated "
                        "character 4-grams (`content.max_dup_ngram_frac`)",
        "content_few_han": "the answer has fewer than `content.min_han_chars` Han characters",
        "content_marks": "more than `content.max_mark_share` of the answer is combining marks",
        "content_refusal_only": "the answer is only a refusal (fewer than `content.refusal_max_chars` characters)",
    }

    def __init__(self, params: Any):
        self.p = params

    def applies(self, rec: Record) -> bool:
        return rec.source in GENERATED

    def measure(self, rec: Record) -> dict | None:
        if not self.applies(rec):
            return None
        loops = {}
        for field, text in _fields(rec):
            hit = repeated_sentence(text) or repeated_clause(text)
            frac = dup_ngram_frac(text) if content_chars(text) >= MIN_NGRAM_TEXT else 0.0
            loops[field] = {"repeat": hit, "dup_ngram_frac": frac}
        return {"loops": loops, "han_chars": len(_HAN.findall(rec.output)), "mark_share": mark_share(rec.output),
                "refusal": refusal_phrase(rec.output), "chars": content_chars(rec.output)}

    def objections(self, stats: dict) -> list[Drop]:
        """Every check the measurement fails, in table order."""
        p, out = self.p, []
        for field, s in stats["loops"].items():
            if s["repeat"] is not None:
                out.append(Drop("content_loop", f"{field} repeats {s['repeat'][:40]!r}", {"field": field}))
                break
            if s["dup_ngram_frac"] > p.max_dup_ngram_frac:
                out.append(Drop("content_loop", f"{field}: {s['dup_ngram_frac']:.0%} of it is repeated {NGRAM}-grams "
                                                f"(> content.max_dup_ngram_frac {p.max_dup_ngram_frac})",
                                {"field": field}))
                break
        if stats["han_chars"] < p.min_han_chars:
            out.append(Drop("content_few_han", f"the answer has {stats['han_chars']} Han characters "
                                               f"(< content.min_han_chars {p.min_han_chars})"))
        if stats["mark_share"] > p.max_mark_share:
            out.append(Drop("content_marks", f"{stats['mark_share']:.0%} of the answer is combining marks "
                                             f"(> content.max_mark_share {p.max_mark_share})"))
        if stats["refusal"] is not None and stats["chars"] < p.refusal_max_chars:
            out.append(Drop("content_refusal_only", f"a bare refusal ({stats['refusal']!r}, {stats['chars']} "
                                                    f"characters < content.refusal_max_chars {p.refusal_max_chars})"))
        return out

    def decide(self, rec: Record, stats: dict | None) -> Drop | None:
        if stats is None:
            return None
        found = self.objections(stats)
        drops = [d for d in found if self.p.actions[d.reason] == "drop"]
        for d in found:
            if self.p.actions[d.reason] == "flag":
                flag(rec, d, type(self).__name__)
        return drops[0] if drops else None
