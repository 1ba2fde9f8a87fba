"""Prompt templates (`vad/generate/prompts/<name>.toml`) and the `Prompt` they render to.

A template file has: `name` (= file stem), `version` (str — bump it whenever the wording changes: it is part of
every request's cache key and of the dataset's lineage), `system`, `user` (a str.format template over the
render kwargs), `fewshot` (array of tables with the same variables as `user`, plus `answer`) and optional
`stop` (array of str).

One rendering serves both kinds of backend:
- `messages` for chat models: system, few-shot examples as user/assistant turns, then the user turn;
- `completion` for base models: the system text, then each example as "### 任务\\n{user}\\n### 回答\\n{answer}\\n\\n",
  then "### 任务\\n{user}\\n### 回答\\n". The model's answer ends where it starts the next "###" block.
"""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "generate" / "prompts"
DEFAULT_STOP: tuple[str, ...] = ("###", "\n\n\n")
TASK_HEADER = "### 任务\n"
ANSWER_HEADER = "### 回答\n"


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt. `messages` is for chat backends, `completion` for base models (local backend).

    `stop` holds the stop strings for `completion` (the template's own `stop`, plus the format delimiters
    "###" and "\\n\\n\\n", which can never belong to an answer). `chat_stop` holds only the stops the template
    declared; chat backends send those (a default "###" would cut markdown headings in chat answers)."""

    messages: tuple[dict[str, str], ...]
    completion: str
    stop: tuple[str, ...] = DEFAULT_STOP
    template: str = ""
    template_version: str = ""
    chat_stop: tuple[str, ...] = ()


def _fields(fmt: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None and f != ""}
    except ValueError as e:
        raise TemplateError(f"bad format string {fmt[:60]!r}: {e}") from None


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    system: str
    user: str
    fewshot: tuple[dict[str, str], ...] = ()
    stop: tuple[str, ...] | None = None
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version:
            raise TemplateError(f"template {self.name}: `version` must be a non-empty string (quote it in TOML)")
        if not isinstance(self.user, str) or not self.user:
            raise TemplateError(f"template {self.name}: `user` must be a non-empty string")
        if not isinstance(self.system, str):
            raise TemplateError(f"template {self.name}: `system` must be a string")
        names = self.variables
        for i, ex in enumerate(self.fewshot):
            if not isinstance(ex, dict) or not isinstance(ex.get("answer"), str):
                raise TemplateError(f"template {self.name}: fewshot[{i}] needs a string `answer`")
            missing = names - set(ex)
            if missing:
                raise TemplateError(f"template {self.name}: fewshot[{i}] lacks {sorted(missing)}")
        if self.stop is not None and not all(isinstance(s, str) and s for s in self.stop):
            raise TemplateError(f"template {self.name}: `stop` must be a list of non-empty strings")

    @property
    def variables(self) -> set[str]:
        return _fields(self.user)

    def fewshot_texts(self, *fields: str) -> list[str]:
        """The non-empty values of `fields` of every few-shot example, example by example (what a model that
        copies an example would paste: see vad.core.text.CopyDetector)."""
        return [ex[f] for ex in self.fewshot for f in fields if ex.get(f)]

    @classmethod
    def from_toml(cls, path: str | Path) -> "Template":
        path = Path(path)
        try:
            with path.open("rb") as f:
                d = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise TemplateError(f"{path}: not valid TOML: {e}") from None
        unknown = set(d) - {"name", "version", "system", "user", "fewshot", "stop"}
        if unknown:
            raise TemplateError(f"{path}: unknown key(s) {sorted(unknown)}")
        for k in ("name", "version", "user"):
            if k not in d:
                raise TemplateError(f"{path}: missing `{k}`")
        if d["name"] != path.stem:
            raise TemplateError(f"{path}: name {d['name']!r} must equal the file name {path.stem!r}")
        stop = d.get("stop")
        return cls(
            name=d["name"],
            version=d["version"],
            system=d.get("system", ""),
            user=d["user"],
            fewshot=tuple(dict(x) for x in d.get("fewshot", [])),
            stop=tuple(stop) if stop is not None else None,
            path=path,
        )

    def _fill(self, fmt: str, values: dict[str, Any], what: str) -> str:
        missing = _fields(fmt) - set(values)
        if missing:
            raise TemplateError(f"template {self.name}: {what} needs {sorted(missing)}")
        return fmt.format(**values)

    def render(self, **values: Any) -> Prompt:
        user = self._fill(self.user, values, "render()")
        shots = [(self._fill(self.user, ex, "fewshot"), ex["answer"]) for ex in self.fewshot]
        messages: list[dict[str, str]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for q, a in shots:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": user})
        parts = [self.system.rstrip("\n") + "\n\n"] if self.system else []
        parts += [f"{TASK_HEADER}{q}\n{ANSWER_HEADER}{a}\n\n" for q, a in shots]
        parts.append(f"{TASK_HEADER}{user}\n{ANSWER_HEADER}")
        own = tuple(self.stop or ())
        return Prompt(
            messages=tuple(messages),
            completion="".join(parts),
            stop=own + tuple(s for s in DEFAULT_STOP if s not in own),
            template=self.name,
            template_version=self.version,
            chat_stop=own,
        )


@lru_cache(maxsize=None)
def _load(path: str, mtime_ns: int) -> Template:
    return Template.from_toml(path)


def template_file(name: str) -> str:
    """A template's file, relative to the project root (a dep of the stages that use it)."""
    return (PROMPTS_DIR / f"{name}.toml").relative_to(PROMPTS_DIR.parents[2]).as_posix()


def load_template(name: str | Path) -> Template:
    """`name` → vad/generate/prompts/<name>.toml (or a path to a .toml file)."""
    p = Path(name)
    if p.suffix != ".toml":
        p = PROMPTS_DIR / f"{name}.toml"
    if not p.exists():
        avail = sorted(x.stem for x in PROMPTS_DIR.glob("*.toml"))
        raise TemplateError(f"no template {str(name)!r} ({p}); available: {avail}")
    return _load(str(p.resolve()), p.stat().st_mtime_ns)
