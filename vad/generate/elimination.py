"""The four elimination rules of Evol-Instruct (WizardLM paper, docs/methods.md §5), adapted to Chinese.

Each rule is a `vad.ledger.Filter` with its own reason code, so the ledger says exactly why an evolution failed:

  evol_no_gain         (1) no information gain over the parent prompt. Two filters share the code: a cheap
                           pre-check (`NoGainPrecheck`: identical, or fewer than `evol.min_gain_chars` new
                           characters) run before any judge call, and the LLM judge (`NoGainJudge`: the judge
                           answered 相同 "equal"; its verdict is in rec.meta["evol"]["judge"]).
  evol_refusal_short   (2) the answer contains a refusal phrase (vad.core.text.REFUSAL_PHRASES: 抱歉/对不起/
                           我无法/不能回答/作为一个AI…) and is shorter than `evol.refusal_max_chars` characters. A refusal followed by reasons and
                           positive guidance (CValues' best type 拒绝&正向建议) is longer and survives.
  evol_answer_empty    (3) the answer is only punctuation, symbols and stop words.
  evol_template_leak   (4) the evolved prompt copies words of the evolving prompt: the WizardLM markers
                           (#Given Prompt#, #Rewritten Prompt#, 给定提示, 改写后的提示 …), the field labels of our
                           own templates (原始提示, 领域：…), or a run of `COPY_RUN` characters from one of the
                           templates' few-shot examples that the parent prompt does not contain (a small base
                           model's typical failure: it pastes the example's clause onto the new prompt).

Rules that compare with the parent look it up through `lineage.parents[-1]` in the `parents` mapping they are
given (id → Record); a candidate whose parent is unknown is a programming error and raises."""
from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping

from vad.core.filters import Drop, Filter
from vad.core.record import Record
from vad.core.text import COPY_RUN, CopyDetector, compact, content_chars, refusal_phrase, strip_punct

# --- rule 3: stop words (function words, fillers, pronouns) ----------------------------------------------------
# Matched longest first after punctuation and whitespace are removed; what remains is the answer's content.
STOP_WORDS: tuple[str, ...] = tuple(sorted({
    # multi-character
    "我们", "你们", "他们", "她们", "它们", "这个", "那个", "这些", "那些", "这样", "那样", "什么", "怎么", "为什么",
    "因为", "所以", "但是", "而且", "或者", "如果", "就是", "还是", "可以", "没有", "不是", "一个", "一些", "一下",
    "好的", "是的", "对的", "嗯嗯", "哈哈", "呵呵", "然后", "其实", "这里", "那里", "回答", "答案", "问题", "不知道",
    "知道", "谢谢", "您好", "你好", "以上", "如下", "等等", "之类",
    # single characters
    "的", "了", "是", "在", "和", "与", "及", "或", "就", "都", "也", "还", "又", "很", "太", "更", "最", "把", "被",
    "让", "给", "对", "向", "从", "到", "为", "以", "而", "且", "但", "则", "即", "之", "其", "此", "这", "那", "哪",
    "我", "你", "您", "他", "她", "它", "咱", "谁", "吗", "呢", "吧", "啊", "呀", "哦", "喔", "嗯", "哈", "嘛", "啦",
    "哎", "唉", "诶", "噢", "着", "过", "地", "得", "个", "些", "有", "无", "不", "没", "要", "会", "能", "好", "行",
    "答", "等", "如", "下", "上",
}, key=lambda w: (-len(w), w)))
_STOP_RE = re.compile("|".join(re.escape(w) for w in STOP_WORDS))
# English fillers (a model may drift into them), removed as whole words before the Chinese ones.
EN_STOP_WORDS: tuple[str, ...] = ("the", "a", "an", "and", "or", "of", "to", "is", "are", "i", "you", "it", "yes",
                                  "no", "ok", "okay", "answer", "sorry", "um", "uh", "hmm")
_EN_STOP_RE = re.compile(r"\b(?:" + "|".join(EN_STOP_WORDS) + r")\b")

# --- rule 4: template words -----------------------------------------------------------------------------------
# WizardLM's own markers (English and the Chinese renderings the paper's rule names) and the labels our
# templates (vad/generate/prompts/evol_*.toml) put around the prompt. An evolved prompt containing one copied the template.
LEAK_WORDS: tuple[str, ...] = (
    "#Given Prompt#", "#Rewritten Prompt#", "#Created Prompt#", "Given Prompt", "Rewritten Prompt", "Created Prompt",
    "给定提示", "改写后的提示", "改写后提示", "重写后的提示", "新提示：", "新提示:",
    "原始提示", "提示一：", "提示二：", "领域：", "领域:", "### 任务", "### 回答", "提示改写专家", "提示创作专家",
)


def answer_content(text: str) -> str:
    """What is left of an answer after removing punctuation, symbols and stop words (rule 3)."""
    low = unicodedata.normalize("NFKC", text).lower()
    return _STOP_RE.sub("", strip_punct(_EN_STOP_RE.sub(" ", low)))


def new_chars(parent: str, child: str) -> int:
    """How many characters of `child` are new relative to `parent` (inserted or replaced, per difflib),
    compared after normalisation; punctuation counts, whitespace does not."""
    a, b = compact(parent), compact(child)
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(j2 - j1 for tag, _i1, _i2, j1, j2 in sm.get_opcodes() if tag in ("insert", "replace"))


def prompt_text(rec: Record) -> str:
    """The prompt as the rules compare it: instruction plus its input material, if any."""
    return rec.instruction + (f"\n{rec.input}" if rec.input else "")


class _WithParents(Filter):
    def __init__(self, parents: Mapping[str, Record]):
        self.parents = parents

    def parent(self, rec: Record) -> Record:
        pid = rec.lineage.parents[-1] if rec.lineage.parents else None
        if pid is None or pid not in self.parents:
            raise KeyError(f"{type(self).__name__}: parent {pid!r} of candidate {rec.id} is unknown")
        return self.parents[pid]


class NoGainPrecheck(_WithParents):
    """Rule 1, cheap part: the evolved prompt is (nearly) the parent prompt. Runs before the judge is asked."""

    reasons = {"evol_no_gain": "rule 1: the evolved prompt is identical to its parent, has fewer than "
                               "`evol.min_gain_chars` new characters, or the judge found no gain (相同)"}

    def __init__(self, parents: Mapping[str, Record], min_gain_chars: int):
        super().__init__(parents)
        self.min_gain_chars = int(min_gain_chars)

    def decide(self, rec: Record, stats: None) -> Drop | None:
        before, after = prompt_text(self.parent(rec)), prompt_text(rec)
        if compact(before) == compact(after):
            return Drop(self.reason, "the evolved prompt is identical to its parent", {"rule": "precheck", "new_chars": 0})
        n = new_chars(before, after)
        if n < self.min_gain_chars:
            return Drop(self.reason, f"only {n} new characters (< evol.min_gain_chars={self.min_gain_chars})",
                        {"rule": "precheck", "new_chars": n})
        return None


class NoGainJudge(Filter):
    """Rule 1, LLM part: the judge (template evol_judge) found the two prompts 相同 (equal)."""

    reasons = NoGainPrecheck.reasons  # the paper's one rule, in two parts

    def decide(self, rec: Record, stats: None) -> Drop | None:
        verdict = (rec.meta.get("evol") or {}).get("judge")
        if verdict is None:
            raise KeyError(f"NoGainJudge: candidate {rec.id} has no judge verdict in meta.evol.judge")
        if verdict == "相同":
            return Drop(self.reason, "the judge found no information gain (相同)", {"rule": "judge"})
        return None


class RefusalShort(Filter):
    """Rule 2: a short refusal ("sorry" and < 80 words in the paper; here a refusal phrase and a char bound)."""

    reasons = {"evol_refusal_short": "rule 2: the answer has a refusal phrase and fewer than "
                                     "`evol.refusal_max_chars` content characters"}

    def __init__(self, max_chars: int):
        self.max_chars = int(max_chars)

    def decide(self, rec: Record, stats: None) -> Drop | None:
        hit = refusal_phrase(rec.output)
        n = content_chars(rec.output)
        if hit is not None and n < self.max_chars:
            return Drop(self.reason, f"refusal {hit!r} in a {n}-character answer (< evol.refusal_max_chars="
                                     f"{self.max_chars})", {"phrase": hit, "chars": n})
        return None


class AnswerEmpty(Filter):
    """Rule 3: the answer is only punctuation and stop words."""

    reasons = {"evol_answer_empty": "rule 3: the answer is only punctuation, symbols and stop words"}

    def decide(self, rec: Record, stats: None) -> Drop | None:
        if not answer_content(rec.output):
            return Drop(self.reason, f"the answer has no content beyond punctuation and stop words: "
                                     f"{rec.output[:40]!r}")
        return None


class TemplateLeak(_WithParents):
    """Rule 4: the evolved prompt copies words of the evolving prompt (markers, labels, few-shot examples)."""

    reasons = {"evol_template_leak": "rule 4: the evolved prompt copies template markers, field labels or a "
                                     "few-shot example"}

    def __init__(self, parents: Mapping[str, Record], examples: Iterable[str] = (),
                 words: Iterable[str] = LEAK_WORDS, run: int = COPY_RUN):
        super().__init__(parents)
        self.words = tuple(words)
        self.copies = CopyDetector(examples, run)

    def decide(self, rec: Record, stats: None) -> Drop | None:
        text = prompt_text(rec)
        low = text.lower()
        word = next((w for w in self.words if w.lower() in low), None)
        if word is not None:
            return Drop(self.reason, f"the evolved prompt contains the template words {word!r}", {"leak": word})
        if self.copies:
            w = self.copies.copied(text, allowed=prompt_text(self.parent(rec)))
            if w is not None:
                return Drop(self.reason, f"the evolved prompt copies a few-shot example: {w!r}",
                            {"leak": w, "example": self.copies.example(w)[:60]})
        return None
