"""`LLMClient`: the backend-independent part — request building, cache keys, cache, metrics, lineage.

Backends (openai_backend.OpenAIClient, local_backend.LocalClient) only implement `_execute`: turn a list of
requests into completions (or `CallError`s), calling `done(request, result)` as each finishes, and making only
the calls `admit()` allows (the spend guard: llm.max_calls, llm.max_cost)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vad.llm.cache import Completion, RequestCache, cache_key
from vad.core.config import LLMParams
from vad.core.errors import VadError
from vad.llm.config import GEN_KEYS, call_cost, effective_gen
from vad.llm.templates import Prompt

REASK_TEXT = "上面的回答无法使用（{reason}）。请严格按照要求重新回答，只输出所要求的内容。"
STAT_KEYS = ("calls", "cache_hits", "retries", "failures", "reasks", "prompt_tokens", "completion_tokens",
             "est_cost", "seconds")


class LLMFatalError(VadError, RuntimeError):
    """The endpoint refuses every request (bad key, unknown model, no permission): a configuration error.

    Raised out of run_tasks instead of ledgering every record as a drop. Completed calls stay cached."""


class SpendCapReached(VadError, RuntimeError):
    """llm.max_calls or llm.max_cost was reached: the stage stops with this one line (exit status 1). Every
    completed call is in the request cache, so a rerun with a higher cap makes only the calls not yet made."""


class _SpendGuard:
    """llm.max_calls / llm.max_cost for one client (one stage run). Backends ask `admit` before each model call;
    cache hits never reach it. max_cost is checked before a call starts, from the cost of the calls completed:
    calls already in flight when it is reached still complete (at most llm.concurrency of them)."""

    def __init__(self, cfg: LLMParams):
        self.max_calls, self.max_cost = cfg.max_calls, cfg.max_cost
        self.calls, self.cost, self.refused = 0, 0.0, False
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            if (self.max_calls and self.calls >= self.max_calls) or (self.max_cost and self.cost >= self.max_cost):
                self.refused = True
                return False
            self.calls += 1
            return True

    def spent(self, cost: float) -> None:
        with self._lock:
            self.cost += cost

    def error(self) -> SpendCapReached:
        if self.max_calls and self.calls >= self.max_calls:
            cap = f"llm.max_calls={self.max_calls} reached after {self.calls} calls"
        else:
            cap = f"llm.max_cost={self.max_cost:g} reached after {self.calls} calls (estimated cost {self.cost:.4g})"
        return SpendCapReached(f"{cap}; completed calls are cached — raise the cap and rerun to continue")


@dataclass(frozen=True)
class CallError:
    """A call that failed for good (after retries). `detail` names the last error."""

    detail: str
    retryable: bool = True


@dataclass
class Request:
    key: str
    attempt: int
    prompt: Prompt
    messages: tuple[dict[str, str], ...]  # what a chat backend sends (with re-ask turns)
    completion: str                       # what a completion backend sends
    stop: tuple[str, ...]
    gen: dict[str, Any]
    payload: dict[str, Any] = field(repr=False)


class _Stats:
    def __init__(self) -> None:
        self.v: dict[str, float] = {k: 0 for k in STAT_KEYS}


def safe_url(url: str) -> str:
    """base_url without user:password@ and without query/fragment (where keys are sometimes put)."""
    if not url:
        return ""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urlunsplit((p.scheme, host, p.path, "", ""))


class LLMClient:
    backend = "?"
    chat = True  # chat backends send messages; completion backends send Prompt.completion

    def __init__(self, cfg: LLMParams, cache_path: str | Path | None = None):
        from vad.core.paths import cache_dir

        self.cfg = cfg
        self.cache = RequestCache(cache_path or cache_dir() / "llm.sqlite")
        self._stats: dict[str, _Stats] = {}
        self._lock = threading.Lock()
        self._templates: dict[str, str] = {}
        self._spend = _SpendGuard(cfg)

    # --- identity -------------------------------------------------------------------------------------
    def model_id(self) -> str:
        """What identifies the model in cache keys."""
        return self.cfg.model

    def describe(self) -> dict[str, Any]:
        """For lineage and the dataset card. Never contains the API key."""
        return {
            "backend": self.backend,
            "model": self.cfg.model,
            "base_url": safe_url(self.cfg.base_url),
            "gen": {k: getattr(self.cfg, k) for k in GEN_KEYS},
            "max_reasks": self.cfg.max_reasks,
            "templates": dict(sorted(self._templates.items())),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, model={self.cfg.model!r}, base_url={safe_url(self.cfg.base_url)!r})"

    # --- requests -------------------------------------------------------------------------------------
    def build_request(self, prompt: Prompt, gen: dict[str, Any] | None, attempt: int = 1,
                      messages: tuple[dict[str, str], ...] | None = None) -> Request:
        g = effective_gen(self.cfg, gen)
        msgs = tuple(dict(m) for m in (messages if messages is not None else prompt.messages))
        stop = tuple(prompt.chat_stop if self.chat else prompt.stop)
        payload = {
            "backend": self.backend,
            "model": self.model_id(),
            ("messages" if self.chat else "completion"): list(msgs) if self.chat else prompt.completion,
            "stop": list(stop),
            "gen": self._key_gen(g),
            "template": prompt.template,
            "template_version": prompt.template_version,
            "attempt": attempt,
        }
        return Request(key=cache_key(payload), attempt=attempt, prompt=prompt, messages=msgs,
                       completion=prompt.completion, stop=stop, gen=g, payload=payload)

    def _key_gen(self, g: dict[str, Any]) -> dict[str, Any]:
        """The generation params that reach this backend (only those belong in the key)."""
        return {k: g[k] for k in GEN_KEYS}

    def reask_request(self, req: Request, previous_text: str, reason: str) -> Request | None:
        """The next ask after an unusable answer, or None when asking again cannot change the outcome."""
        reason = " ".join(reason.split())[:200] or "格式不对"
        msgs = req.messages + (
            {"role": "assistant", "content": previous_text},
            {"role": "user", "content": REASK_TEXT.format(reason=reason)},
        )
        return self.build_request(req.prompt, req.gen, attempt=req.attempt + 1, messages=msgs)

    # --- execution ------------------------------------------------------------------------------------
    def lookup(self, req: Request, stage: str) -> Completion | None:
        c = self.cache.get(req.key)
        if c is not None:
            self._add(stage, cache_hits=1)
        return c

    def execute(self, reqs: list[Request], done: Callable[[Request, Completion | CallError], None],
                stage: str) -> None:
        """Run uncached requests; each completion is committed to the cache before `done` sees it. Raises
        SpendCapReached after the admitted calls finished when the spend guard refused any."""

        def finished(req: Request, res: Completion | CallError) -> None:
            if isinstance(res, Completion):
                self.cache.put(req.key, res, req.payload, stage)
                cost = call_cost(self.cfg, res.prompt_tokens, res.completion_tokens)
                self._spend.spent(cost)
                self._add(stage, calls=1, prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                          est_cost=cost)
            else:
                self._add(stage, calls=1, failures=1)
            done(req, res)

        if reqs:
            self._execute(reqs, finished, stage)
        if self._spend.refused:
            raise self._spend.error()

    def admit(self) -> bool:
        """Asked by the backend before each model call: False (the call is not made, and `execute` raises
        SpendCapReached once the admitted calls are done) when llm.max_calls or llm.max_cost is reached."""
        return self._spend.admit()

    def _execute(self, reqs: list[Request], done: Callable[[Request, Completion | CallError], None],
                 stage: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    # --- metrics --------------------------------------------------------------------------------------
    def note_template(self, prompt: Prompt) -> None:
        if prompt.template:
            with self._lock:
                self._templates[prompt.template] = prompt.template_version

    def _add(self, stage: str, **inc: float) -> None:
        with self._lock:
            st = self._stats.setdefault(stage, _Stats())
            for k, v in inc.items():
                st.v[k] += v

    def stats(self, stage: str | None = None) -> dict[str, Any]:
        """Counters of one stage (or of all stages when stage is None). `calls` are model calls made
        (cache misses), `retries` extra transport attempts, `failures` calls that failed for good;
        token counts and est_cost cover calls made, not cache hits."""
        with self._lock:
            if stage is None:
                tot = {k: 0 for k in STAT_KEYS}
                for st in self._stats.values():
                    for k in STAT_KEYS:
                        tot[k] += st.v[k]
            else:
                tot = dict(self._stats[stage].v) if stage in self._stats else {k: 0 for k in STAT_KEYS}
        out: dict[str, Any] = {k: int(tot[k]) for k in STAT_KEYS if k not in ("est_cost", "seconds")}
        out["est_cost"] = round(float(tot["est_cost"]), 6)
        out["seconds"] = round(float(tot["seconds"]), 3)
        return out

    def close(self) -> None:
        self.cache.close()
