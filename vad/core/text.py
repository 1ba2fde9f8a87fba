"""Text helpers shared by every stage that judges text (the elimination rules, translation checks, GX columns).

Thresholds about text that several parts of the pipeline must agree on live here, once."""
from __future__ import annotations

import re

_HAN = re.compile(r"[\u4e00-\u9fff]")

# Share of Han characters below which a field is not Chinese: the GX suites' language check, and what the
# generating stages ask of an LLM answer before they accept it.
MIN_HAN_RATIO = 0.3


def han_ratio(text: str) -> float:
    """Share of non-space characters that are Han."""
    chars = [c for c in text if not c.isspace()]
    return round(sum(1 for c in chars if _HAN.match(c)) / len(chars), 4) if chars else 0.0


def is_han(char: str) -> bool:
    return bool(_HAN.match(char))
