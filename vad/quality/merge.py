"""Merge the corpora: category, length, content (machine-made records) and language checks, then exact and
near-duplicate removal.

Order matters and is fixed: corpora in the order given (manual first, so hand-written text wins a duplicate
tie), then each record's file order."""
from __future__ import annotations

from vad.core.text import MIN_HAN_RATIO, han_ratio
from vad.quality.content import ContentCheck
from vad.quality.dedup import exact_dedup, near_dedup
from vad.quality.lang import detect_lang
from vad.quality.length import LengthBounds
from vad.core.filters import Drop, Filter
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.core.taxonomy import SOURCES, check_categorization


class CategoryCheck(Filter):
    reasons = {"bad_source": "the record's source is not one of the taxonomy's sources",
               "bad_categorization": "the level or value is not in the taxonomy, or the value is not of that level"}

    def decide(self, rec: Record, stats: None) -> Drop | None:
        if rec.source not in SOURCES:
            return Drop("bad_source", f"source {rec.source!r} not in {SOURCES}")
        problem = check_categorization(rec.categorization)
        return Drop("bad_categorization", problem) if problem else None


class LanguageCheck(Filter):
    """Instruction and output must be identified as `lang` with at least `min_score` (fastText lid.176), and, for
    Chinese, be at least MIN_HAN_RATIO Han characters: what the merged and final GX suites demand. fastText calls
    a short Chinese text full of digits Chinese ("比如12356或希望24热线400-161-9995？"); the filter must ledger what
    the suite would otherwise refuse, so the stage never fails on a record."""

    name = "lang"  # meta.lang: {field: {lang, score, han_ratio}} (the export's lineage shows it)
    reasons = {"lang_not_zh": "instruction or output not identified as zh with at least `merge.min_lang_score`, "
                              f"or under {MIN_HAN_RATIO:.0%} Han characters (vad.core.text.MIN_HAN_RATIO)"}

    def __init__(self, lang: str, min_score: float):
        self.lang, self.min_score = lang, min_score
        if lang != "zh":  # the code is made from the language
            self.reasons = {f"lang_not_{lang}": f"instruction or output not identified as {lang}"}

    def measure(self, rec: Record) -> dict:
        out = {}
        for field in ("instruction", "output"):
            text = getattr(rec, field)
            got, score = detect_lang(text, self.lang)
            out[field] = {"lang": got, "score": score, "han_ratio": han_ratio(text)}
        return out

    def decide(self, rec: Record, stats: dict) -> Drop | None:
        code = f"lang_not_{self.lang}"
        for field, s in stats.items():
            if s["lang"] != self.lang or s["score"] < self.min_score:
                return Drop(code, f"{field} detected as {s['lang']!r} (p({self.lang}) = {s['score']} < {self.min_score})")
            if self.lang == "zh" and s["han_ratio"] < MIN_HAN_RATIO:
                return Drop(code, f"{field} is {s['han_ratio']:.0%} Han characters (< {MIN_HAN_RATIO:.0%})")
        return None


def merge(corpora: list[list[Record]], params: "MergeParams", lengths: "IngestParams", content: "ContentParams",
          run: StageRun) -> list[Record]:
    records = [r for corpus in corpora for r in run.take(corpus)]
    records = run.apply(records, [CategoryCheck(), LengthBounds(lengths.min_chars, lengths.max_chars),
                                  ContentCheck(content), LanguageCheck(params.lang, params.min_lang_score)])
    records = exact_dedup(records, run)
    records = near_dedup(records, params.near_dup_threshold, params.ngram, params.num_perm, run)
    for rec in records:
        rec.add_op("merge", "merge")
    return records
