"""What a stage hands to `run_tasks` and what it gets back."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from vad.llm.config import GEN_KEYS
from vad.llm.templates import Prompt


class ParseError(ValueError):
    """Raised by a task's `parse` when the model text is unusable; the message says why (it is shown to the
    model in a re-ask and ends up in the ledger's detail)."""


def _identity(text: str) -> str:
    return text


@dataclass
class GenerationTask:
    key: Hashable                              # unique within one run_tasks call (stages: vad.generate.funnel.TaskKey)
    prompt: Prompt
    parse: Callable[[str], Any] = _identity    # raises ParseError when the text is unusable
    gen: dict[str, Any] = field(default_factory=dict)  # overrides of cfg: temperature, top_p, max_new_tokens, seed, repetition_penalty

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, Prompt):
            raise TypeError(f"task {self.key}: prompt must be a vad.llm.Prompt, got {type(self.prompt).__name__}")
        bad = set(self.gen) - set(GEN_KEYS)
        if bad:
            raise ValueError(f"task {self.key}: unknown gen param(s) {sorted(bad)}; allowed: {GEN_KEYS}")


@dataclass
class TaskResult:
    key: Hashable              # the task's key
    ok: bool
    value: Any = None          # what parse returned (None unless ok)
    text: str = ""             # raw model text of the last attempt that produced text
    reason: str | None = None  # None | "llm_error" | "parse_error"
    detail: str = ""
    attempts: int = 0          # asks made (1 + re-asks), whether answered from cache or by the model
    cached: bool = False       # True when every ask of this task was answered from the cache
