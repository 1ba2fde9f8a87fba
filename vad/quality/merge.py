"""Merge the corpora: category, length and language checks, then exact and near-duplicate removal.

Order matters and is fixed: corpora in the order given (manual first, so hand-written text wins a duplicate
tie), then each record's file order."""
from __future__ import annotations

from vad.core.text import MIN_HAN_RATIO, han_ratio
from vad.quality.dedup import exact_dedup, near_dedup
from vad.quality.lang import detect_lang
from vad.quality.length import LengthBounds
from vad.core.ledger import Drop, Filter, StageRun
from vad.core.record import Record
from vad.core.taxonomy import SOURCES, check_categorization


class CategoryCheck(Filter):
    def check(self, rec: Record) -> Drop | None:
        if rec.source not in SOURCES:
            return Drop("bad_source", f"source {rec.source!r} not in {SOURCES}")
        problem = check_categorization(rec.categorization)
        return Drop("bad_categorization", problem) if problem else None


class LanguageCheck(Filter):
    """Instruction and output must be identified as `lang` with at least `min_score` (fastText lid.176), and, for
    Chinese, be at least MIN_HAN_RATIO Han characters: what the merged and final GX suites demand. fastText calls
    a short Chinese text full of digits Chinese ("比如12356或希望24热线400-161-9995？"); the filter must ledger what
    the suite would otherwise refuse, so the stage never fails on a record."""

    def __init__(self, lang: str, min_score: float):
        self.lang, self.min_score = lang, min_score

    def check(self, rec: Record) -> Drop | None:
        scores = {}
        for field in ("instruction", "output"):
            text = getattr(rec, field)
            got, score = detect_lang(text, self.lang)
            scores[field] = {"lang": got, "score": score}
            if got != self.lang or score < self.min_score:
                return Drop(f"lang_not_{self.lang}", f"{field} detected as {got!r} (p({self.lang}) = {score} < {self.min_score})",
                            {"lang": scores})
            if self.lang == "zh" and han_ratio(text) < MIN_HAN_RATIO:
                return Drop("lang_not_zh", f"{field} is {han_ratio(text):.0%} Han characters (< {MIN_HAN_RATIO:.0%})",
                            {"lang": scores, "han_ratio": han_ratio(text)})
        rec.meta["lang"] = scores
        return None


def merge(corpora: list[list[Record]], params: "MergeParams", lengths: "IngestParams", run: StageRun) -> list[Record]:
    records = [r for corpus in corpora for r in run.take(corpus)]
    records = run.apply(records, [CategoryCheck(), LengthBounds(lengths.min_chars, lengths.max_chars),
                                  LanguageCheck(params.lang, params.min_lang_score)])
    records = exact_dedup(records, run)
    records = near_dedup(records, params.near_dup_threshold, params.ngram, params.num_perm, run)
    for rec in records:
        rec.add_op("merge", "merge")
    return records
