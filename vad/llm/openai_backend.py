"""Any OpenAI-compatible chat endpoint (OpenAI, DeepSeek, vLLM, llama.cpp server, ...).

Retries (up to cfg.max_retries, exponential backoff with jitter): 429 (honouring retry-after), 408/409, 5xx,
timeouts, connection errors, and broken bodies (truncated or non-JSON, or JSON without an answer). The openai
client's own retries are switched off so every retry is counted and bounded here. 401/403/404 abort the run
(LLMFatalError): they are configuration errors, not per-record failures."""
from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from vad.llm.cache import Completion
from vad.llm.client import CallError, LLMClient, LLMFatalError, Request, safe_url
from vad.core.config import LLMParams, ParamsError

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DUMMY_KEY = "sk-local-no-key"
FATAL_STATUS = {401, 403, 404}
# A credential an endpoint may echo back in an error body: the value of an Authorization / api-key header or field.
_CREDENTIAL = re.compile(r"(?i)\b(authorization|x-api-key|api[-_]?key)(['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?([^\s'\",;}]+)")
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{10,}")  # a run long enough to be (part of) a key
REDACTED = "[redacted]"


def redact(text: str, key: str = "") -> str:
    """`text` without the API key, any 10+-character piece of it (an endpoint may quote the key truncated or
    without its prefix), and any credential-looking header value, before it is logged, ledgered or cached."""
    if key and len(key) >= 8:
        text = text.replace(key, REDACTED)
        text = _TOKEN.sub(lambda m: REDACTED if m.group(0) in key else m.group(0), text)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)


class BadBody(Exception):
    """A 2xx response whose body is not a usable chat completion."""


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, div in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        v = headers.get(name)
        if v is None:
            continue
        try:
            return max(0.0, float(v) / div)
        except ValueError:
            continue
    return None


class OpenAIClient(LLMClient):
    backend = "openai"
    chat = True

    def __init__(self, cfg: LLMParams, cache_path=None):
        import openai

        key = os.environ.get(cfg.api_key_env, "")
        host = urlsplit(cfg.base_url).hostname if cfg.base_url else None
        if not key:
            if host in LOCAL_HOSTS:
                key = DUMMY_KEY
            else:
                raise ParamsError("llm.api_key_env", f"the openai backend needs an API key in the environment variable "
                                  f"{cfg.api_key_env!r}, which is not set (base_url "
                                  f"{safe_url(cfg.base_url) or 'OpenAI default'})")
        super().__init__(cfg, cache_path)
        self._openai = openai
        # The key lives only inside the openai client object; it is never logged, hashed or stored.
        self._oa = openai.OpenAI(api_key=key, base_url=cfg.base_url or None, timeout=cfg.timeout_s, max_retries=0)
        del key

    def _scrub(self, text: str) -> str:
        return redact(text, str(getattr(self._oa, "api_key", "") or ""))

    def _key_gen(self, g: dict[str, Any]) -> dict[str, Any]:
        return {k: g[k] for k in ("temperature", "top_p", "max_new_tokens", "seed")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["base_url"] = d["base_url"] or "https://api.openai.com/v1"
        d["gen"] = self._key_gen(d["gen"])
        return d

    # --- one HTTP call --------------------------------------------------------------------------------
    def _call_once(self, req: Request) -> Completion:
        kw: dict[str, Any] = dict(
            model=self.cfg.model,
            messages=[dict(m) for m in req.messages],
            temperature=req.gen["temperature"],
            top_p=req.gen["top_p"],
            max_tokens=req.gen["max_new_tokens"],
            seed=req.gen["seed"],
        )
        if req.stop:
            kw["stop"] = list(req.stop)
        raw = self._oa.chat.completions.with_raw_response.create(**kw)
        body = raw.http_response.text
        try:
            data = json.loads(body)
        except ValueError:
            raise BadBody(f"response body is not JSON ({len(body)} chars: {body[:60]!r})") from None
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BadBody(f"response JSON has no choices[0].message.content: {body[:80]!r}") from None
        if text is not None and not isinstance(text, str):
            raise BadBody(f"message.content is {type(text).__name__}, not a string")
        usage = data.get("usage") or {}
        return Completion(
            text=self._scrub(text or ""),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=str(choice.get("finish_reason") or ""),
        )

    def _call(self, req: Request, stage: str, abort: threading.Event) -> Completion | CallError:
        oa = self._openai
        rng = random.Random()
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            if abort.is_set():
                return CallError("aborted: the endpoint refused an earlier request (see the error raised)")
            wait: float | None = None
            try:
                return self._call_once(req)
            except oa.APIStatusError as e:
                status = e.status_code
                last = f"HTTP {status}: {self._scrub(str(e.message))[:200]}"
                if status in FATAL_STATUS:
                    abort.set()
                    raise LLMFatalError(
                        f"{self.cfg.base_url or 'OpenAI'} answered {last} for model {self.cfg.model!r} — check "
                        f"llm.model, llm.base_url and the key in ${self.cfg.api_key_env}"
                    ) from None
                if not (status in (408, 409, 429) or status >= 500):
                    return CallError(last, retryable=False)
                if status == 429:
                    wait = _retry_after(getattr(e.response, "headers", None))
            except oa.APITimeoutError:
                last = f"timeout after {self.cfg.timeout_s:g} s"
            except oa.APIConnectionError as e:
                last = self._scrub(f"connection error: {e.__cause__ or e}")[:300]
            except BadBody as e:
                last = self._scrub(f"bad response body: {e}")
            except Exception as e:  # noqa: BLE001 - a broken transport must not escape run_tasks
                last = self._scrub(f"{type(e).__name__}: {e}")[:300]
            if attempt == self.cfg.max_retries:
                break
            if wait is None:
                wait = min(self.cfg.retry_max_s, self.cfg.retry_base_s * 2 ** attempt) * (0.5 + rng.random())
            else:
                wait = min(self.cfg.retry_max_s, wait) + rng.random() * self.cfg.retry_base_s * 0.2
            log.debug("retry %d/%d in %.2fs for %s…: %s", attempt + 1, self.cfg.max_retries, wait, req.key[:12], last)
            self._add(stage, retries=1)
            if abort.wait(wait):
                return CallError("aborted: the endpoint refused an earlier request (see the error raised)")
        log.warning("call %s… failed after %d tries: %s", req.key[:12], self.cfg.max_retries + 1, last)
        return CallError(last)

    def _execute(self, reqs: list[Request], done: Callable[[Request, Completion | CallError], None],
                 stage: str) -> None:
        abort = threading.Event()
        fatal: list[BaseException] = []

        def work(req: Request) -> None:
            if not self.admit():  # the spend guard: execute() raises once the admitted calls are done
                return
            try:
                res = self._call(req, stage, abort)
            except LLMFatalError as e:
                fatal.append(e)
                return
            done(req, res)

        with ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="llm") as pool:
            for fut in [pool.submit(work, r) for r in reqs]:
                fut.result()  # done() errors (bugs) surface here
        if fatal:
            raise fatal[0]
