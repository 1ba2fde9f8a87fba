"""The VAD categorization: three levels, each with four of the twelve core socialist values (docs/methods.md §1)."""
from __future__ import annotations

LEVELS: dict[str, tuple[str, ...]] = {
    "nation": ("富强", "文明", "和谐", "民主"),
    "social": ("自由", "平等", "公正", "法治"),
    "person": ("爱国", "敬业", "诚信", "友善"),
}
LEVEL_ZH = {"nation": "国家", "social": "社会", "person": "个人"}
SOURCES = ("manual", "evol", "translated")
PAIRS = [f"{lvl}/{val}" for lvl, vals in LEVELS.items() for val in vals]


def check_categorization(cat: object) -> str | None:
    """None if `cat` is a valid {level, value} pair, else a human-readable reason."""
    if not isinstance(cat, dict):
        return f"categorization must be an object, got {type(cat).__name__}"
    level, value = cat.get("level"), cat.get("value")
    if level not in LEVELS:
        return f"unknown level {level!r} (expected one of {', '.join(LEVELS)})"
    if value not in LEVELS[level]:
        return f"value {value!r} is not one of level {level!r}'s values ({'、'.join(LEVELS[level])})"
    extra = set(cat) - {"level", "value"}
    if extra:
        return f"categorization has unexpected keys {sorted(extra)}"
    return None
