"""Character-level diff of an edit, shown to the reviewer before it is saved (Chinese has no word boundaries,
so characters are the unit)."""
from __future__ import annotations

from difflib import SequenceMatcher


def char_diff(old: str, new: str) -> list[tuple[str, str]]:
    """[(op, text)] with op "=" (kept), "-" (removed) or "+" (added), in reading order."""
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("=", old[i1:i2]))
            continue
        if i2 > i1:
            out.append(("-", old[i1:i2]))
        if j2 > j1:
            out.append(("+", new[j1:j2]))
    return out
