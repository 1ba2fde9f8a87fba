"""Text helpers shared by every part of the pipeline that judges text: the elimination rules and parsers of the
generating stages, the translation checks, the GX columns and the evaluation's answer parser.

Thresholds and word lists about text that several parts of the pipeline must agree on live here, once."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from vad.core.record import normalise

_HAN = re.compile(r"[\u4e00-\u9fff]")

# Share of Han characters below which a field is not Chinese: the GX suites' language check, and what the
# generating stages ask of an LLM answer before they accept it.
MIN_HAN_RATIO = 0.3


_SPACE = re.compile(r"\s")  # the characters str.isspace() calls whitespace


def han_ratio(text: str) -> float:
    """Share of non-space characters that are Han (counted by the regex engine: a Python loop per character
    was most of merge's time at 30k records)."""
    chars = len(text) - len(_SPACE.findall(text))
    return round(len(_HAN.findall(text)) / chars, 4) if chars else 0.0


def han_chars(text: str) -> set[str]:
    """The distinct Han characters of a text."""
    return set(_HAN.findall(text))


def mark_share(text: str) -> float:
    """Share of the non-space characters that are combining marks (Unicode M*: accents, variation selectors)."""
    t = strip_ws(text)
    return round(sum(unicodedata.category(c).startswith("M") for c in t) / len(t), 4) if t else 0.0


def content_chars(text: str) -> int:
    """Characters that carry content: everything but whitespace."""
    return len(text) - len(_SPACE.findall(text))


def strip_ws(text: str) -> str:
    return "".join(text.split())


def compact(text: str) -> str:
    """Text as compared for copies and small edits: normalised (vad.core.record.normalise), whitespace removed."""
    return strip_ws(normalise(text))


def strip_punct(text: str) -> str:
    """Text without whitespace, punctuation (P*) and symbols (S*), NFKC-normalised and lower-cased."""
    t = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in t if not c.isspace() and unicodedata.category(c)[0] not in "PSZC")


# --- prompts and degenerate generations ---------------------------------------------------------------------
# What a prompt must contain to ask for something (a question mark, a question word or a request verb). A small
# base model asked to rewrite a prompt often writes a statement or an answer instead; the parsers re-ask then.
PROMPT_CUES: tuple[str, ...] = (
    "？", "?", "吗", "请", "怎么", "怎样", "如何", "什么", "为什么", "为何", "是否", "能否", "可否", "能不能", "可不可以",
    "该不该", "应不应该", "要不要", "哪些", "哪个", "哪里", "多少", "建议", "分析", "说明", "谈谈", "比较", "判断",
)
_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")
_LOOP = re.compile(r"(.{1,10}?)\1{4,}", re.S)


def asks_something(text: str) -> bool:
    return any(c in text for c in PROMPT_CUES)


def repeated_sentence(text: str) -> str | None:
    """The loop of a degenerate generation, or None: a unit of 1–10 characters repeated 5+ times in a row
    (向来向来向来…; units of only digits, punctuation or spaces do not count), a sentence of 6+ characters
    occurring 3+ times, or one of 20+ characters occurring twice."""
    for m in _LOOP.finditer(text):
        if any(c.isalpha() for c in m.group(1)):
            return m.group(0)[:40]
    counts: dict[str, int] = {}
    for s in _SENTENCE_END.split(text):
        s = strip_ws(s).strip("，,、")
        if len(s) >= 6:
            counts[s] = counts.get(s, 0) + 1
            if counts[s] >= 3 or (counts[s] >= 2 and len(s) >= 20):
                return s
    return None


# --- refusals ----------------------------------------------------------------------------------------------
# The phrases of a refusal, as regular expressions matched on NFKC text, case-insensitively. One list for the
# whole pipeline: Evol-Instruct's short-refusal rule (vad/generate/elimination.py) and the evaluation's answer
# parser (vad/eval/answers.py). Not a bare 无法: "无法比较" / "无法判断哪个" is an undecided comparison, not a refusal.
REFUSAL_PHRASES: tuple[str, ...] = (
    "抱歉", "对不起", "很遗憾", "无可奉告", "拒绝回答", "不便(?:回答|评价|作答)",
    "我不能", "不能回答", "不能提供", "不能帮", "我不会回答",
    "我无法", "无法回答", "无法提供", "无法作答",
    "作为(?:一个|一名)?(?:AI|人工智能|语言模型|大模型)",
    "sorry", "as an AI", "I (?:can ?not|can't|won't|am unable)",
)


def _ascii_bounded(p: str) -> str:
    # English phrases match whole words only (no \b: it would not separate "AI" from a following Han character)
    return (r"(?<![A-Za-z])" if p[0].isascii() and p[0].isalpha() else "") + p + \
        (r"(?![A-Za-z])" if p[-1].isascii() and p[-1].isalpha() else "")


_REFUSAL = re.compile("|".join(_ascii_bounded(p) for p in REFUSAL_PHRASES), re.IGNORECASE)


def refusal_phrase(text: str) -> str | None:
    """The first refusal phrase in a text (as it stands there), or None."""
    m = _REFUSAL.search(unicodedata.normalize("NFKC", text))
    return m.group(0) if m else None


# --- copies of examples -----------------------------------------------------------------------------------
COPY_RUN = 10  # characters copied verbatim from an example (and absent from what may be copied) that count as a copy


class CopyDetector:
    """Finds text pasted from examples (a small base model's favourite shortcut: it copies a clause of a few-shot
    example into its answer): a run of `run` characters, compared after `normalise` and without whitespace, that
    occurs in one of the examples and not in the text the answer may legitimately repeat (the parent prompt, the
    draft being polished)."""

    def __init__(self, examples: Iterable[str], run: int = COPY_RUN):
        self.run = int(run)
        self.windows: dict[str, str] = {}  # run-character window -> the example it comes from (the first one)
        for ex in examples:
            t = compact(ex)
            for i in range(len(t) - self.run + 1):
                self.windows.setdefault(t[i:i + self.run], ex)

    def __bool__(self) -> bool:
        return bool(self.windows)

    def copied(self, text: str, allowed: str = "") -> str | None:
        """The first window of `text` that comes from an example and is not in `allowed`, or None."""
        if not self.windows:
            return None
        t, ok = compact(text), compact(allowed)
        return next((w for w in (t[i:i + self.run] for i in range(len(t) - self.run + 1))
                     if w in self.windows and w not in ok), None)

    def example(self, window: str) -> str:
        """The example a copied window comes from."""
        return self.windows[window]
