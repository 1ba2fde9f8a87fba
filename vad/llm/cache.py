"""The persistent request cache: SQLite (WAL) at `cache_dir()/llm.sqlite`.

Key = sha256 of canonical JSON of (backend, model, messages or completion text, stop, effective generation
params, template name + version, attempt). Never the API key, never base_url. The cache holds RAW model
text: parsers run after it, so changing a parser never re-pays a call.

Every completed call is committed on its own (autocommit), so a killed run loses no completed call.
One connection guarded by a lock serves all threads; WAL + busy timeout let several processes share the file."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_FORMAT = 1  # bump to invalidate every key if the payload layout changes


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def cache_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"cache_format": CACHE_FORMAT, **payload}).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Completion:
    """One model answer: the raw text and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    template TEXT NOT NULL,
    template_version TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    stage TEXT NOT NULL,
    created REAL NOT NULL,
    request TEXT NOT NULL
)
"""


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit — each INSERT is its own committed transaction.
        self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a killed process
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._conn.execute(_SCHEMA)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason FROM completions WHERE key=?", (key,)
            ).fetchone()
        return Completion(*row) if row else None

    def put(self, key: str, c: Completion, payload: dict[str, Any], stage: str = "") -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO completions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, c.text, int(c.prompt_tokens), int(c.completion_tokens), c.finish_reason or "",
                 payload.get("backend", ""), payload.get("model", ""), payload.get("template", ""),
                 payload.get("template_version", ""), int(payload.get("attempt", 0)), stage, time.time(),
                 canonical_json(payload)),
            )

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM completions WHERE key=?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def keys(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT key FROM completions")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
