"""A generating stage as a funnel: LLM steps and rules, each ledgering what it loses and counting what passes.

    funnel = Funnel(client, stage_run, counts={"pairs": len(todo)})
    passed = funnel.ask(todo, tasks_of, "translate", asked="chunks", passed="translated")
    kept = funnel.filter([...], "after_not_zh", [NotChinese()])
    stage_run.metrics["funnel"] = funnel.counts

The items flowing through are the stage's own (a Record, or evolve's candidate: `rec=` says how to get the
record to ledger). An LLM step (`ask`) gives each item the tasks it needs — keyed by a `TaskKey` (record id,
step, part and chunk, round), never by a string to be taken apart again — and runs all of them in one
`vad.llm.run_tasks` call (cached, retried, re-asked). An item passes when each of its tasks ended ok; otherwise it
is ledgered `llm_error` / `parse_error` with its first failure, the detail naming the step and part. Task keys
only identify calls within a step: the request cache key is made from the request itself, so changing them never
changes an answer.

`counts` is the funnel (how many calls were asked, how many items passed each step and rule, in the order the
stage counted them); `by` adds breakdowns of the outcomes per item (evolve: per operation and per round)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vad.core.filters import Filter, apply as apply_filters
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.llm import GenerationTask, Prompt, TaskResult, run_tasks

T = TypeVar("T")
LLM_REASONS = {  # how an item that an LLM step failed is ledgered
    "llm_error": "a call failed after its retries (connection refused, HTTP error status, timeout)",
    "parse_error": "every answer to a call was refused by its parser (wrong language, empty, a template copied)",
}
Breakdown = tuple[Callable[[Any], Hashable], Iterable[Hashable]]  # (item -> group, groups listed up front)


@dataclass(frozen=True)
class TaskKey:
    """Which call a task is: the record it serves, the step, the part of the record (field, chunk), the round."""

    record: str
    step: str
    part: str = ""
    chunk: int = 0
    round: int = 0

    @property
    def where(self) -> str:
        """How the ledger names the call: `judge`, `translate output:2`."""
        return f"{self.step} {self.part}:{self.chunk}" if self.part else self.step


def task(key: TaskKey, call: tuple[Prompt, dict[str, Any]], parse: Callable[[str], Any]) -> GenerationTask:
    """A task from a stage's (prompt, generation settings) for a call."""
    prompt, gen = call
    return GenerationTask(key=key, prompt=prompt, parse=parse, gen=gen)


def _same(item: Any) -> Record:
    return item


def _no_fields(_item: Any) -> dict[str, Any]:
    return {}


class Funnel(Generic[T]):
    def __init__(self, client, run: StageRun, *, counts: dict[str, int] | None = None,
                 rec: Callable[[T], Record] = _same, call_fields: Callable[[T], dict[str, Any]] = _no_fields,
                 by: dict[str, Breakdown] | None = None, progress: bool = True):
        """`rec(item)`: the record ledgered for an item; `call_fields(item)`: extra ledger fields of a failed call;
        `by`: name -> (item -> group, groups listed first) breakdowns of every outcome."""
        self.client, self.run, self.progress = client, run, progress
        self.counts: dict[str, int] = dict(counts or {})
        self._rec, self._call_fields = rec, call_fields
        self._by = {name: (group, {g: Counter() for g in first}) for name, (group, first) in (by or {}).items()}

    # --- counting -------------------------------------------------------------------------------------
    def count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def outcome(self, item: T, outcome: str) -> None:
        """Count an item's outcome (a reason code, "emitted", ...) in every breakdown."""
        for group, table in self._by.values():
            table.setdefault(group(item), Counter())[outcome] += 1

    def breakdowns(self) -> dict[str, dict[str, dict[str, int]]]:
        return {name: {str(g): dict(c) for g, c in table.items()} for name, (_g, table) in self._by.items()}

    # --- losing items ---------------------------------------------------------------------------------
    def drop(self, item: T, reason: str, detail: str = "", **extra: Any) -> None:
        self.run.drop(self._rec(item), reason, detail, **extra)
        self.outcome(item, reason)

    def filter(self, items: Sequence[T], name: str, rules: Sequence[Filter]) -> list[T]:
        """Apply rules in order (the first that objects ledgers the item); count the items kept as `name`."""
        kept = apply_filters(items, rules, lambda item, d: self.drop(item, d.reason, d.detail, **d.extra),
                             rec=self._rec)
        self.count(name, len(kept))
        return kept

    # --- an LLM step ----------------------------------------------------------------------------------
    def ask(self, items: Sequence[T], tasks_of: Callable[[T], Iterable[GenerationTask]], desc: str, *,
            asked: str | None = None, passed: str | None = None, tolerate: Iterable[str] = (),
            on_failure: Callable[[T], None] | None = None) -> list[tuple[T, list[TaskResult]]]:
        """Run the tasks of every item (keys: TaskKey) in one run_tasks call; returns (item, its results in task
        order) for each item that passed. A task that failed with a reason in `tolerate` does not fail its item
        (the stage copes, e.g. keeps the draft of a rejected polish). A failed item is ledgered with its first
        failure, after `on_failure(item)` (which may make the record to ledger). `asked` counts the calls, and
        each item's outcome `asked`; `passed` counts the items that passed."""
        per_item = [list(tasks_of(item)) for item in items]
        tasks = [t for ts in per_item for t in ts]
        if asked:
            self.count(asked, len(tasks))
            for item in items:
                self.outcome(item, asked)
        results = iter(run_tasks(self.client, tasks, stage=self.run.stage, desc=desc, progress=self.progress)
                       if tasks else [])
        tolerated = set(tolerate)
        out = []
        for item, ts in zip(items, per_item):
            res = [next(results) for _ in ts]
            bad = next((r for r in res if not r.ok and r.reason not in tolerated), None)
            if bad is None:
                out.append((item, res))
                continue
            if on_failure is not None:
                on_failure(item)
            key: TaskKey = bad.key
            self.drop(item, bad.reason or "llm_error", f"{key.where}: {bad.detail}"[:500], step=key.step,
                      **self._call_fields(item), attempts=bad.attempts, text=bad.text[:300])
        if passed:
            self.count(passed, len(out))
        return out
