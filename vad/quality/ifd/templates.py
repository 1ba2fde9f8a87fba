"""Versioned prompt templates for IFD scoring (docs/methods.md §4: scores change with the template, so it is an
explicit parameter and part of every cache key).

A template gives three texts:

* the *conditioned prompt* put before the answer: one variant for records with an `input`, one without
  (a record "has input" when `input.strip()` is non-empty);
* the *direct prefix* put before the answer when scoring it without the instruction (may be empty).

The scorer tokenises prompt, direct prefix and answer separately and concatenates the token ids, so the answer
tokens are exactly the same in both sequences (see vad/quality/ifd/__init__.py). Changing any text of a template requires a new
`version`; `IFDTemplate.key` also carries a digest of the texts, so an edit that forgets the bump still cannot
reuse stale cached scores."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class IFDTemplate:
    name: str
    version: str
    prompt_input: str     # with {instruction} and {input}
    prompt_no_input: str  # with {instruction}
    direct: str           # the answer's context when scored without the instruction (after BOS)
    note: str = ""

    def prompt(self, instruction: str, input: str = "") -> str:
        if input and input.strip():
            return self.prompt_input.format(instruction=instruction, input=input)
        return self.prompt_no_input.format(instruction=instruction)

    @property
    def label(self) -> str:
        """What outputs record: `name@version`."""
        return f"{self.name}@{self.version}"

    @property
    def key(self) -> str:
        """What cache keys use: `name@version#digest-of-the-texts`."""
        h = hashlib.sha256("\x1f".join((self.prompt_input, self.prompt_no_input, self.direct)).encode()).hexdigest()
        return f"{self.label}#{h[:12]}"


ALPACA_ZH_V1 = IFDTemplate(
    name="alpaca_zh_v1",
    version="1",
    prompt_input=(
        "下面是一条描述任务的指令，并附有提供更多背景信息的输入。请写出恰当完成该请求的回答。\n\n"
        "### 指令：\n{instruction}\n\n### 输入：\n{input}\n\n### 回答：\n"
    ),
    prompt_no_input=(
        "下面是一条描述任务的指令。请写出恰当完成该请求的回答。\n\n"
        "### 指令：\n{instruction}\n\n### 回答：\n"
    ),
    direct="### 回答：\n",
    note="Cherry LLM's Alpaca prompt in Chinese; direct context = the response header only (as Cherry's "
         "'### Response:').",
)

SUPERFILTERING_V1 = IFDTemplate(
    name="superfiltering_v1",
    version="1",
    prompt_input="{instruction}\n{input}\n",
    prompt_no_input="{instruction}\n",
    direct="",
    note="Superfiltering's code_ifd prompt; direct context = nothing but BOS (the bare answer).",
)

TEMPLATES: dict[str, IFDTemplate] = {t.name: t for t in (ALPACA_ZH_V1, SUPERFILTERING_V1)}


def get_template(name: str) -> IFDTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        from vad.core.config import ParamsError, suggest

        raise ParamsError("ifd.template", f"unknown IFD template {name!r}{suggest(name, TEMPLATES)}; "
                                          f"known: {', '.join(sorted(TEMPLATES))}") from None
