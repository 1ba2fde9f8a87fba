"""`run_tasks`: cache lookups, model calls, parsing and re-asks for a list of tasks, in rounds.

Round k holds the k-th ask of every task still open. Identical requests (same cache key) in a round are sent
once. A task ends ok, or with reason "llm_error" (the call failed after retries) or "parse_error" (still
unusable after cfg.max_reasks re-asks). Only configuration errors (LLMFatalError) and the spend guard
(SpendCapReached: llm.max_calls / llm.max_cost reached, every completed call cached) escape."""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence

from tqdm import tqdm

from vad.llm.cache import Completion
from vad.llm.client import CallError, LLMClient, Request
from vad.llm.tasks import GenerationTask, ParseError, TaskResult

log = logging.getLogger(__name__)


def run_tasks(client: LLMClient, tasks: Sequence[GenerationTask], stage: str, desc: str | None = None,
              progress: bool = True) -> list[TaskResult]:
    """Run every task; returns one TaskResult per task, in the order of `tasks`."""
    tasks = list(tasks)
    seen: set[str] = set()
    for t in tasks:
        if t.key in seen:
            raise ValueError(f"duplicate task key {t.key!r} in run_tasks({stage!r})")
        seen.add(t.key)
    t0 = time.monotonic()
    lock = threading.Lock()
    results: list[TaskResult | None] = [None] * len(tasks)
    texts = [""] * len(tasks)
    all_cached = [True] * len(tasks)
    parser_crashes = 0
    bar = tqdm(total=len(tasks), desc=desc or stage, unit="task", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, mininterval=0.5)
    calls0 = client.stats(stage)["calls"]

    def finish(i: int, req: Request, **kw) -> None:
        results[i] = TaskResult(key=tasks[i].key, text=texts[i], attempts=req.attempt, cached=all_cached[i], **kw)
        bar.update(1)
        dt = time.monotonic() - t0
        st = client.stats(stage)
        bar.set_postfix_str(f"calls/s={(st['calls'] - calls0) / dt if dt else 0:.1f} hits={st['cache_hits']}",
                            refresh=False)

    def handle(i: int, req: Request, res: Completion | CallError, cached: bool,
               next_round: list[tuple[int, Request]]) -> None:
        nonlocal parser_crashes
        if not cached:
            all_cached[i] = False
        if isinstance(res, CallError):
            finish(i, req, ok=False, reason="llm_error", detail=res.detail)
            return
        texts[i] = res.text
        try:
            value = tasks[i].parse(res.text)
        except ParseError as e:
            why = str(e) or "ParseError"
            nxt = client.reask_request(req, res.text, why) if req.attempt <= client.cfg.max_reasks else None
            if nxt is None:
                finish(i, req, ok=False, reason="parse_error", detail=why)
            else:
                client._add(stage, reasks=1)
                next_round.append((i, nxt))
        except Exception as e:  # noqa: BLE001 - a parser bug: ledger it loudly, do not re-ask
            parser_crashes += 1
            if parser_crashes == 1:
                log.exception("parser of task %s raised %s (a bug in the parser, not a model error)",
                              tasks[i].key, type(e).__name__)
            finish(i, req, ok=False, reason="parse_error", detail=f"parser raised {type(e).__name__}: {e}")
        else:
            finish(i, req, ok=True, value=value)

    try:
        for t in tasks:
            client.note_template(t.prompt)
        todo = [(i, client.build_request(t.prompt, t.gen, attempt=1)) for i, t in enumerate(tasks)]
        while todo:
            nxt: list[tuple[int, Request]] = []
            waiting: dict[str, list[int]] = {}
            uniq: list[Request] = []
            for i, req in todo:
                if req.key in waiting:  # same request as another task in this round: one call
                    waiting[req.key].append(i)
                    continue
                hit = client.lookup(req, stage)
                if hit is not None:
                    handle(i, req, hit, True, nxt)
                else:
                    waiting[req.key] = [i]
                    uniq.append(req)

            def done(req: Request, res: Completion | CallError) -> None:
                with lock:
                    for i in waiting[req.key]:
                        handle(i, req, res, False, nxt)

            client.execute(uniq, done, stage)
            todo = nxt
    finally:
        bar.close()
        client._add(stage, seconds=time.monotonic() - t0)
    out = [r for r in results if r is not None]
    assert len(out) == len(tasks), "run_tasks lost a task"  # every path above calls finish()
    st = client.stats(stage)
    n_ok = sum(r.ok for r in out)
    log.info("%s: %d tasks, %d ok, %d llm_error, %d parse_error | calls %d, cache hits %d, retries %d, reasks %d, "
             "%.1fs", stage, len(out), n_ok, sum(r.reason == "llm_error" for r in out),
             sum(r.reason == "parse_error" for r in out), st["calls"], st["cache_hits"], st["retries"],
             st["reasks"], time.monotonic() - t0)
    return out
