"""What IFD scoring produces and counts: scores, errors (the reason codes a record is ledgered with), the two
encoded sequences of a record, and the counters of a run."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vad.core.errors import VadError
from vad.quality.ifd.cache import ROUND, CachedScore

EMPTY_ANSWER = "ifd_empty_answer"
NO_ANSWER_TOKENS = "ifd_no_answer_tokens"
NONFINITE = "ifd_nonfinite"
BAD_ROW = "ifd_bad_row"  # `vad ifd` only: a row without instruction/output strings
LEDGER_REASONS = {
    EMPTY_ANSWER: "the output is empty: there is no answer to score",
    NO_ANSWER_TOKENS: "nothing of the answer survives tokenisation and truncation to `ifd.max_length`",
    NONFINITE: "a loss came out NaN or infinite (fp16 overflow: set `ifd.dtype: float32`)",
}


# --- results -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IFDScore:
    loss_cond: float
    loss_direct: float
    ifd: float
    ifd_ppl: float
    n_answer_tokens: int
    truncated: bool
    cached: bool = False

    @classmethod
    def from_losses(cls, c: CachedScore, cached: bool) -> "IFDScore":
        lc, ld = round(c.loss_cond, ROUND), round(c.loss_direct, ROUND)
        return cls(lc, ld, round(lc / ld, ROUND), round(math.exp(lc - ld), ROUND), c.n_answer_tokens,
                   c.truncated, cached)


@dataclass(frozen=True)
class IFDError:
    reason: str
    detail: str = ""


@dataclass
class Encoded:
    """The two token sequences of one record; answer ids are identical in both by construction."""

    sha: str
    cond_ids: list[int]
    cond_start: int  # index of the first answer token in cond_ids
    direct_ids: list[int]
    direct_start: int
    n_answer: int
    truncated: bool

    @property
    def answer_ids(self) -> list[int]:
        return self.cond_ids[self.cond_start:]


@dataclass
class ScoreStats:
    items: int = 0
    unique: int = 0
    cache_hits: int = 0   # items whose score came from the cache
    scored: int = 0       # items whose score was computed in this call
    unscorable: int = 0
    forward_batches: int = 0
    tokens: int = 0       # real (non-pad) tokens through the model
    seconds: float = 0.0  # time in forward passes + lm_head (per chunk, up to its host sync)
    oom_splits: int = 0   # batches split in halves after an out-of-memory

    def add(self, other: dict[str, Any]) -> None:
        """Add the counts of a chunk scored elsewhere (a Ray actor)."""
        for k in ("forward_batches", "tokens", "seconds", "oom_splits"):
            setattr(self, k, getattr(self, k) + other.get(k, 0))

    @property
    def tokens_per_s(self) -> float:
        return round(self.tokens / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_metrics(self) -> dict[str, Any]:
        return {"scored": self.scored, "cache_hits": self.cache_hits, "unscorable": self.unscorable,
                "forward_batches": self.forward_batches, "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
                "score_seconds": round(self.seconds, 2), "oom_splits": self.oom_splits}


class IFDOutOfMemory(VadError):
    """A single sequence does not fit: lowering the batch budget cannot help."""

    exit_code = 1
