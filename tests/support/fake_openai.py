"""A fake OpenAI-compatible server for tests and benchmarks: a real HTTP server on 127.0.0.1.

    with FakeOpenAI(answer_fn=my_answer, latency_s=0.05, fault_rate=0.3, seed=1) as srv:
        cfg = LLMParams(backend="openai", base_url=srv.base_url, model="fake", ...)
        ...
        srv.count                 # requests received
        srv.hashes()              # messages_hash of every request, in arrival order
        srv.log                   # one dict per request: i, path, hash, body, fault, status, delivered, t_start, t_done

Serves POST /v1/chat/completions in the OpenAI response format (honours `stop` and `max_tokens` like a real
server: cut at the first stop string, at most max_tokens characters). `answer_fn(messages) -> str` makes the
answers. Faults hit ~fault_rate of requests; which request gets which fault is a pure function of (seed,
messages, how many times these messages were seen before), so a schedule does not depend on thread timing:
  "429"       status 429 with retry-after (retry_after_s)
  "500","503" server errors
  "timeout"   the answer comes after slow_s (set it above the client's timeout)
  "truncated" 200, application/json, body cut in the middle
  "nonjson"   200, text/html body
  "garbage"   200, a well-formed completion whose text is `garbage_text` (fails the caller's parser)
  "400","401","404"  (not in the default mix) a bad request, a rejected key, an unknown model
`fault_fn(index, messages) -> kind | None` replaces the random schedule when given.
"""
from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "503", "timeout", "truncated", "nonjson", "garbage")  # the default mix
EXTRA_FAULTS = ("400", "401", "404")  # only when asked for (faults=... or fault_fn): client / config errors


def messages_hash(messages: Any) -> str:
    """Hash of a chat request's messages (list/tuple of {role, content}); same as the server logs."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    return hashlib.sha256(json.dumps(msgs, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def echo_answer(messages: list[dict[str, str]]) -> str:
    """Default answer: deterministic, Chinese, mentions the last user turn."""
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"答：关于「{last[:30]}」，这是测试回答。"


class FakeOpenAI:
    def __init__(self, answer_fn: Callable[[list[dict[str, str]]], str] = echo_answer, *, latency_s: float = 0.0,
                 fault_rate: float = 0.0, faults: tuple[str, ...] = FAULTS, seed: int = 0,
                 retry_after_s: float = 0.05, slow_s: float = 2.0, garbage_text: str = "我不知道",
                 fault_fn: Callable[[int, list[dict[str, str]]], str | None] | None = None, model: str = "fake-model"):
        bad = set(faults) - set(FAULTS) - set(EXTRA_FAULTS)
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; known: {FAULTS + EXTRA_FAULTS}")
        self.answer_fn = answer_fn
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.seed = seed
        self.retry_after_s = retry_after_s
        self.slow_s = slow_s
        self.garbage_text = garbage_text
        self.fault_fn = fault_fn
        self.model = model
        self.log: list[dict[str, Any]] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> "FakeOpenAI":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in latency/slow faults
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- inspection -----------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        with self._lock:
            return len(self.log)

    def hashes(self) -> list[str]:
        with self._lock:
            return [e["hash"] for e in self.log]

    def delivered(self, before: float | None = None) -> list[dict[str, Any]]:
        """Requests whose answer (a 200 completion) was fully written, optionally before a time.monotonic()."""
        with self._lock:
            return [e for e in self.log if e["delivered"] and (before is None or e["t_done"] < before)]

    def fault_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(e["fault"] for e in self.log if e["fault"])

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # --- behaviour ------------------------------------------------------------------------------------
    def _pick_fault(self, index: int, messages: list[dict[str, str]], h: str, nth: int) -> str | None:
        if self.fault_fn is not None:
            return self.fault_fn(index, messages)
        if self.fault_rate <= 0 or not self.faults:
            return None
        r = random.Random(f"{self.seed}|{h}|{nth}")
        if r.random() >= self.fault_rate:
            return None
        return self.faults[r.randrange(len(self.faults))]


def _cut(text: str, stop: Any, max_tokens: Any) -> tuple[str, str]:
    finish = "stop"
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    idx = [text.find(s) for s in stops if s]
    idx = [i for i in idx if i >= 0]
    if idx:
        text = text[:min(idx)]
    if isinstance(max_tokens, int) and len(text) > max_tokens:
        text, finish = text[:max_tokens], "length"
    return text, finish


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> bool:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            return False  # the client gave up (e.g. its timeout fired)

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        t_start = time.monotonic()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, json.dumps({"error": {"message": f"no route {self.path}", "type": "not_found"}}).encode())
            return
        try:
            body = json.loads(raw)
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            self._send(400, b'{"error": {"message": "bad request body", "type": "invalid_request_error"}}')
            return
        h = messages_hash(messages)
        with fake._lock:
            index = len(fake.log)
            nth = fake._seen[h]
            fake._seen[h] += 1
            entry = {"i": index, "path": self.path, "hash": h, "body": body, "fault": None, "status": None,
                     "delivered": False, "t_start": t_start, "t_done": None,
                     "has_auth": bool(self.headers.get("Authorization"))}
            fake.log.append(entry)
        fault = fake._pick_fault(index, messages, h, nth)
        entry["fault"] = fault
        if fake.latency_s and fake._stop.wait(fake.latency_s):
            return
        if fault == "429":
            entry["status"] = 429
            self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit_exceeded"}}',
                       headers={"retry-after": f"{fake.retry_after_s:g}"})
        elif fault in ("500", "503", "400", "401", "404"):
            entry["status"] = int(fault)
            self._send(int(fault), json.dumps({"error": {"message": f"fake error {fault}", "type": "fake"}}).encode())
        elif fault == "nonjson":
            entry["status"] = 200
            self._send(200, b"<html><body>502 Bad Gateway</body></html>", ctype="text/html")
        else:
            if fault == "timeout" and fake._stop.wait(fake.slow_s):
                return
            text = fake.garbage_text if fault == "garbage" else fake.answer_fn(messages)
            text, finish = _cut(text, body.get("stop"), body.get("max_tokens"))
            prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
            resp = {
                "id": f"chatcmpl-fake-{index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", fake.model),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": prompt_chars, "completion_tokens": len(text),
                          "total_tokens": prompt_chars + len(text)},
            }
            data = json.dumps(resp, ensure_ascii=False).encode()
            if fault == "truncated":
                data = data[: len(data) // 2]
            entry["status"] = 200
            ok = self._send(200, data)
            entry["delivered"] = ok and fault not in ("truncated", "timeout")  # a timed-out client never read it
        entry["t_done"] = time.monotonic()
