"""Per-record IFD score cache (SQLite, default `cache_dir()/ifd.sqlite`).

A score is reusable exactly when everything that determines it is the same, so the key is (model fingerprint,
template key = name@version#digest, max_length, dtype of body and head such as "bfloat16/head-bfloat16", sha256
of the exact texts). When 1% new records arrive only they are scored. Losses are rounded to 6 decimals *before*
they are stored and every output is derived from the stored values, so a record gets byte-identical figures
whether it was scored now or earlier.

An interrupted run keeps its finished work: besides whole scores, the loss of every finished sequence of a record
whose other sequence is not done yet goes into `ifd_partial` (same key plus the kind, 0 = conditioned, 1 = direct);
a resumed run computes only the missing sequence, and the partial row goes when the whole score is written.

The cache lives outside DVC outputs (DVC deletes outputs before rerunning a stage) and may be shared by
processes: WAL journal, short transactions, INSERT OR REPLACE."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from vad.core.paths import cache_dir

ROUND = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ifd_scores (
    model_fp TEXT NOT NULL,
    template TEXT NOT NULL,
    max_length INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    text_sha TEXT NOT NULL,
    loss_cond REAL NOT NULL,
    loss_direct REAL NOT NULL,
    n_answer_tokens INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model_fp, template, max_length, dtype, text_sha)
) WITHOUT ROWID
"""
_PARTIAL = """
CREATE TABLE IF NOT EXISTS ifd_partial (
    model_fp TEXT NOT NULL,
    template TEXT NOT NULL,
    max_length INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    text_sha TEXT NOT NULL,
    kind INTEGER NOT NULL,
    loss REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model_fp, template, max_length, dtype, text_sha, kind)
) WITHOUT ROWID
"""
_WHERE = "model_fp=? AND template=? AND max_length=? AND dtype=?"


def text_sha(instruction: str, input: str, output: str) -> str:
    """sha256 of the exact texts (no normalisation: any change of a character is a different score)."""
    return hashlib.sha256(json.dumps([instruction, input, output], ensure_ascii=False).encode("utf-8")).hexdigest()


def default_path() -> Path:
    return cache_dir() / "ifd.sqlite"


@dataclass(frozen=True)
class CacheContext:
    """Everything but the text that determines a score."""

    model_fp: str
    template: str
    max_length: int
    dtype: str


@dataclass(frozen=True)
class CachedScore:
    loss_cond: float
    loss_direct: float
    n_answer_tokens: int
    truncated: bool


class IFDCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.execute(_PARTIAL)
        self._db.commit()

    @staticmethod
    def _key(ctx: CacheContext) -> tuple:
        return ctx.model_fp, ctx.template, ctx.max_length, ctx.dtype

    def _select(self, sql: str, ctx: CacheContext, shas: list[str]):
        uniq = sorted(set(shas))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            yield from self._db.execute(f"{sql} WHERE {_WHERE} AND text_sha IN ({','.join('?' * len(chunk))})",
                                        (*self._key(ctx), *chunk))

    def get_many(self, ctx: CacheContext, shas: list[str]) -> dict[str, CachedScore]:
        return {sha: CachedScore(lc, ld, int(n), bool(tr)) for sha, lc, ld, n, tr in self._select(
            "SELECT text_sha, loss_cond, loss_direct, n_answer_tokens, truncated FROM ifd_scores", ctx, shas)}

    def get_partial(self, ctx: CacheContext, shas: list[str]) -> dict[tuple[str, int], float]:
        """{(sha, kind): loss} of the finished sequences of records without a whole score."""
        return {(sha, int(kind)): loss for sha, kind, loss in self._select(
            "SELECT text_sha, kind, loss FROM ifd_partial", ctx, shas)}

    def put_many(self, ctx: CacheContext, scores: dict[str, CachedScore],
                 partial: dict[tuple[str, int], float] | None = None) -> None:
        """Whole scores (their partial rows go) and finished single sequences, in one transaction."""
        now, key = time.time(), self._key(ctx)
        rows = [(*key, sha, round(s.loss_cond, ROUND), round(s.loss_direct, ROUND), s.n_answer_tokens,
                 int(s.truncated), now) for sha, s in scores.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO ifd_scores VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            if partial:
                self._db.executemany("INSERT OR REPLACE INTO ifd_partial VALUES (?,?,?,?,?,?,?,?)",
                                     [(*key, sha, kind, loss, now) for (sha, kind), loss in partial.items()])
            if scores:
                self._db.executemany(f"DELETE FROM ifd_partial WHERE {_WHERE} AND text_sha=?",
                                     [(*key, sha) for sha in scores])

    def partial_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM ifd_partial").fetchone()[0]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM ifd_scores").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "IFDCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
