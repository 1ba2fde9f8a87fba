"""IFD — Instruction-Following Difficulty (Cherry LLM, Li et al. 2023; Superfiltering) — the scorer.

Definition implemented here
---------------------------
For a record (instruction Q, input X, answer A) and a template T (vad/quality/ifd_templates.py):

* P = token ids of the conditioned prompt text `T.prompt(Q, X)` (no special tokens),
  D = token ids of the template's direct prefix `T.direct` (`"### 回答：\\n"` for alpaca_zh_v1, empty for
  superfiltering_v1), A = token ids of the answer text, tokenised ONCE on its own (no special tokens).
  The texts are used exactly as stored (no stripping); a record "has input" when `input.strip()` is non-empty.
* conditioned sequence = [BOS] + P' + A'      direct sequence = [BOS] + D + A'
  (BOS = the tokenizer's bos token; a tokenizer without one uses its eos token as the start token). Both
  sequences end with the same answer ids A' — no EOS is appended.
* Truncation (to `max_length` tokens per sequence, BOS included; n = max_length - 1):
  - if len(P) + len(A) <= n: P' = P, A' = A, truncated = False;
  - else truncated = True and the answer keeps a' = max(n - len(P), reserve) tokens, reserve =
    min(len(A), max(1, n // 4)): the answer is cut at the end to what the whole prompt leaves, but never below
    the reserve; when the prompt leaves less than the reserve, the prompt loses tokens from its MIDDLE (its first
    ⌊k/2⌋ and last k - ⌊k/2⌋ tokens are kept, k = n - a'), so the template header and the response marker
    survive. Finally a' = min(a', n - len(D)) so the direct sequence fits too. A' = A[:a'].
  - a' <= 0 (max_length too small for any answer token) → `ifd_no_answer_tokens`.
* loss_cond = mean over the a' answer positions of −log p(A'_i | [BOS] + P' + A'_<i) (natural log),
  loss_direct = the same mean with [BOS] + D as context; positions are the answer tokens only, each predicted
  from the hidden state one position earlier.
* ifd = loss_cond / loss_direct (Cherry: ratio of mean cross-entropies);
  ifd_ppl = exp(loss_cond) / exp(loss_direct) = exp(loss_cond − loss_direct) (Superfiltering: ratio of
  perplexities). Both are computed from the losses AFTER rounding them to 6 decimals (the values that are
  cached), so cached and fresh outputs are byte-identical.
* Not scorable → a ledgered drop, never a 0: `ifd_empty_answer` (answer empty or whitespace only),
  `ifd_no_answer_tokens` (nothing of the answer survives truncation / tokenisation), `ifd_nonfinite` (a loss
  is NaN/inf, or loss_direct <= 0 so the ratio is undefined).

How it is computed (equal to the literal definition up to the body dtype's rounding)
-----------------------------------------------------------------------------------
Where and in which precision: `ifd.device` / `ifd.dtype` (auto: vad/compute/device.py). Every record is first
looked up in the SQLite score cache (vad/quality/ifd_cache.py) by the sha256 of its texts; only the misses are
tokenised and scored, and the model is loaded only if there are any. The misses are cut into chunks of at most
CHUNK_RECORDS records (`plan_chunks`, a function of the set of texts); within a chunk, conditioned and direct
sequences are pooled, sorted by (length, text sha256, kind) and cut into batches of at most `batch_size`
sequences and `max_batch_tokens` padded tokens (`plan_batches`), right-padded with an attention mask. The base
model (`model.base_model`, Gemma's embedding scaling is inside it, SDPA attention) runs under
`torch.inference_mode()` in `dtype`; hidden states are gathered at answer positions only (shifted by one) and only
those go through `lm_head` (262k-row vocabulary: full logits are most of the cost), fused with an online fp32
log-sum-exp over vocabulary tiles (vad/quality/ifd_head.py), so the [tokens × 262k] logits are never materialised.

What finishes is kept: on the CPU every batch commits its whole scores and the single finished sequences
(`ifd_partial`) to the cache, on a GPU each chunk commits once (one host sync per chunk); an interrupted run
resumes with only the missing sequences. A GPU out-of-memory splits the batch in halves (a single sequence that
does not fit is an error naming `ifd.max_length`). The cache key names the body and head dtypes (and the device
kind off the CPU), so scores of another precision or device are never mixed in. `ifd.executor: ray` scores the
same chunks on Ray Data actors (vad/quality/ifd_ray.py); the driver writes the same cache.

Cost model (benchmarks/ifd_throughput.py, 2-core AMD EPYC with avx512_bf16, quiet): bf16 GEMMs run at ~360–430
GFLOP/s vs ~140–190 for fp32. Per token the body is ~0.2 GFLOP and the 262k-row head ~0.34 GFLOP; every answer
token needs the head in BOTH sequences, and answers are ~85% of the tokens, so computing logits only at answer
positions saves only the prompt positions. The bf16 head reaches ~900 answer tokens/s (GEMM-bound), the bf16 body
~1200–1400 tokens/s; that bounds an exact scorer at ~3x the fp32 full-logits reference here."""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# OpenMP threads that spin at barriers collapse when other processes share the 2 cores: measured here, a
# bs=1 forward took 5.6 s with the default wait policy vs 0.3 s with PASSIVE (load ~3.5), and the batched scorer
# ran 4x slower. It only takes effect if set before torch (libgomp) is loaded; an explicit setting wins.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vad.compute.device import Compute, resolve as resolve_compute, trim_heap
from vad.compute.models import fingerprint as model_fingerprint
from vad.core.errors import VadError
from vad.quality.ifd_cache import ROUND, CacheContext, CachedScore, IFDCache, text_sha
from vad.quality.ifd_head import head_dtype, head_weights, token_losses
from vad.quality.ifd_templates import IFDTemplate, get_template

log = logging.getLogger(__name__)

EMPTY_ANSWER = "ifd_empty_answer"
NO_ANSWER_TOKENS = "ifd_no_answer_tokens"
NONFINITE = "ifd_nonfinite"
BAD_ROW = "ifd_bad_row"  # score_file only: a row without instruction/output strings
LEDGER_REASONS = {
    EMPTY_ANSWER: "the output is empty: there is no answer to score",
    NO_ANSWER_TOKENS: "nothing of the answer survives tokenisation and truncation to `ifd.max_length`",
    NONFINITE: "a loss came out NaN or infinite (fp16 overflow: set `ifd.dtype: float32`)",
}

# The `ifd` params the scores depend on, and those that only say how the work is spread (together: the stage's DVC
# params; ifd_select reads the others). `auto` values are resolved per machine (vad/compute/device.py).
SCORE_PARAMS = ("model", "template", "max_length", "device", "dtype", "batch_size", "max_batch_tokens")
RUN_PARAMS = ("executor", "ray_actors")
AUTO_BATCH = {"cpu": 8, "cuda": 1024}   # batch_size auto: sequences per batch
AUTO_BATCH_TOKENS = {"cuda": 65536}     # max_batch_tokens auto (padded tokens); the CPU's batches are small anyway
# Records per chunk: both sequences of a chunk's records are scored together, so each chunk completes whole
# scores. Up to this many records are one chunk (the default build: the same batches as one global pool).
CHUNK_RECORDS = 512


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


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- tokenisation and truncation -----------------------------------------------------------------------
def plan_truncation(n_prompt: int, n_answer: int, n_direct: int, max_length: int) -> tuple[int, int, bool]:
    """(prompt tokens kept, answer tokens kept, truncated) per the module docstring."""
    n = max_length - 1
    if n_prompt + n_answer <= n:
        a, keep_p, truncated = n_answer, n_prompt, False
    else:
        reserve = min(n_answer, max(1, n // 4))
        a = max(n - n_prompt, reserve)
        keep_p, truncated = min(n_prompt, n - a), True
    a = min(a, n - n_direct)
    return keep_p, max(a, 0), truncated


def cut_middle(ids: list[int], keep: int) -> list[int]:
    if keep >= len(ids):
        return list(ids)
    head = keep // 2
    return list(ids[:head]) + list(ids[len(ids) - (keep - head):])


def start_token(tokenizer) -> int:
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tid is None:
        raise ValueError("tokenizer has neither a bos nor an eos token to start sequences with")
    return tid


def encode_many(tokenizer, template: IFDTemplate, items: list[tuple[str, str, str]], max_length: int
                ) -> list[Encoded | IFDError]:
    bos = start_token(tokenizer)
    direct = tokenizer(template.direct, add_special_tokens=False)["input_ids"] if template.direct else []
    prompts = [template.prompt(q, x) for q, x, _a in items]
    answers = [a for _q, _x, a in items]
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if items else []
    a_ids = tokenizer(answers, add_special_tokens=False)["input_ids"] if items else []
    out: list[Encoded | IFDError] = []
    for (q, x, a), p, ans in zip(items, p_ids, a_ids):
        if not a.strip():
            out.append(IFDError(EMPTY_ANSWER, "the answer is empty"))
            continue
        keep_p, n_a, truncated = plan_truncation(len(p), len(ans), len(direct), max_length)
        if n_a <= 0 or not ans:
            out.append(IFDError(NO_ANSWER_TOKENS, f"no answer token fits max_length={max_length} "
                                                  f"(prompt {len(p)}, answer {len(ans)}, direct {len(direct)} tokens)"))
            continue
        ans = ans[:n_a]
        pp = cut_middle(p, keep_p)
        out.append(Encoded(text_sha(q, x, a), [bos, *pp, *ans], 1 + len(pp), [bos, *direct, *ans],
                           1 + len(direct), n_a, truncated))
    return out


# --- planning: chunks of records, batches of sequences -------------------------------------------------
def plan_chunks(todo: dict[str, tuple[str, str, str]], chunk_records: int | None = None
                ) -> list[list[tuple[str, tuple[str, str, str]]]]:
    """Records to score → chunks of (sha, texts), balanced, at most `chunk_records` (CHUNK_RECORDS) each. Records
    are ordered by (characters, sha) — a function of the set of texts only — so a chunk holds records of similar
    length and the same set always gives the same chunks (on every executor). Up to `chunk_records` records are
    one chunk."""
    recs = sorted(todo.items(), key=lambda kv: (sum(len(t) for t in kv[1]), kv[0]))
    if not recs:
        return []
    n = -(-len(recs) // (chunk_records or CHUNK_RECORDS))
    size = -(-len(recs) // n)
    return [recs[i:i + size] for i in range(0, len(recs), size)]


def plan_batches(lengths: list[int], batch_size: int, max_tokens: int | None) -> list[tuple[int, int]]:
    """Cut sequences sorted by length into [start, end) batches of at most `batch_size` sequences and at most
    `max_tokens` padded tokens (sequences x the longest one); a sequence longer than the budget goes alone."""
    out, start = [], 0
    for i, n in enumerate(lengths):
        count = i - start + 1
        if i > start and (count > batch_size or (max_tokens is not None and count * n > max_tokens)):
            out.append((start, i))
            start = i
    if start < len(lengths):
        out.append((start, len(lengths)))
    return out


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e)))


class IFDOutOfMemory(VadError):
    """A single sequence does not fit: lowering the batch budget cannot help."""

    exit_code = 1


# --- the scorer ------------------------------------------------------------------------------------------
class IFDScorer:
    """Scores lists of (instruction, input, output). Looks every record up in the score cache first and loads the
    tokenizer and the model (vad.compute.models, once per process) only when something is left to score."""

    def __init__(self, model: str = "gemma3-270m", template: str = "alpaca_zh_v1", max_length: int = 512,
                 batch_size: int | str = "auto", dtype: str = "auto", device: str = "auto",
                 max_batch_tokens: int | str = "auto", executor: str = "local", ray_actors: int = 0,
                 threads: int | None = None, progress: bool = True, cache: IFDCache | str | Path | bool | None = True,
                 compute: Compute | None = None, fingerprint: str | None = None):
        self.model_spec = model
        self.template = get_template(template)
        self.max_length = int(max_length)
        self.threads = int(threads) if threads else _available_cpus()
        self.progress = progress
        self.executor = None
        if executor == "ray":
            from vad.quality.ifd_ray import RayExecutor

            # resolved on the cluster (its GPUs, its CPUs), not on this machine
            self.executor = RayExecutor(model, template, self.max_length, batch_size, max_batch_tokens, device,
                                        dtype, ray_actors)
            compute, fingerprint = self.executor.compute, self.executor.fingerprint
        elif executor != "local":
            raise ValueError(f"unknown executor {executor!r}; use local or ray")
        self.compute = compute or resolve_compute(device, dtype, "ifd")
        kind = self.compute.kind
        self.batch_size = AUTO_BATCH[kind] if batch_size == "auto" else max(1, int(batch_size))
        self.max_batch_tokens = (AUTO_BATCH_TOKENS.get(kind) if max_batch_tokens == "auto"
                                 else max(self.max_length, int(max_batch_tokens)))
        self.head_dtype = head_dtype(self.compute.dtype, kind)
        self.fingerprint = fingerprint or model_fingerprint(model, self.compute.dtype, "ifd.model")
        if cache is True or cache is None:
            self.cache: IFDCache | None = IFDCache()
        elif cache is False:
            self.cache = None
        elif isinstance(cache, IFDCache):
            self.cache = cache
        else:
            self.cache = IFDCache(cache)
        # the body and head dtypes, and the device kind off the CPU: scores of another precision or device never
        # mix (the CPU's key is unchanged from before there were devices, so existing caches stay valid)
        key = f"{self.compute.dtype}/head-{self.head_dtype}" + ("" if kind == "cpu" else f"@{kind}")
        self.ctx = CacheContext(self.fingerprint, self.template.key, self.max_length, key)
        self.stats = ScoreStats()
        self._lm = None
        self._head_w = None
        log.info("ifd: scoring on %s (executor %s)", self.compute, executor)

    def close(self) -> None:
        """Let go of the Ray instance (executor ray); the cache and the loaded model stay for the process."""
        if self.executor is not None:
            self.executor.close()

    @classmethod
    def from_params(cls, params: Any, **kw: Any) -> "IFDScorer":
        """From the `ifd` params (vad.core.config.IFDParams, the stage's view of it, or a dict of them)."""
        if isinstance(params, dict):
            from vad.core.config import IFDParams

            params = IFDParams.from_params(params)
        return cls(**{k: getattr(params, k) for k in SCORE_PARAMS + RUN_PARAMS}, **kw)

    @property
    def lm(self):
        if self._lm is None:
            from vad.compute.models import load_causal_lm

            self._lm = load_causal_lm(self.model_spec, self.compute.dtype, param="ifd.model",
                                      device=self.compute.device, section="ifd")
            if self._lm.fingerprint != self.fingerprint:
                raise RuntimeError(f"model {self.model_spec} loaded with fingerprint {self._lm.fingerprint}, "
                                   f"expected {self.fingerprint} (did its files change during the run?)")
        return self._lm

    @property
    def tokenizer(self):
        from vad.compute.models import load_tokenizer

        return self._lm.tokenizer if self._lm is not None else load_tokenizer(self.model_spec, "ifd.model")

    def describe(self) -> dict[str, Any]:
        """Provenance written next to each score."""
        return {"model": self.model_spec, "fingerprint": self.fingerprint, "template": self.template.label,
                "max_length": self.max_length, "dtype": self.compute.dtype, "device": self.compute.kind}

    def compute_metrics(self) -> dict[str, Any]:
        """What was resolved, for the stage's metrics (`auto` stays `auto` in params)."""
        return {"ifd_compute": {**self.compute.describe(), "head_dtype": self.head_dtype,
                                "batch_size": self.batch_size, "max_batch_tokens": self.max_batch_tokens,
                                "executor": "ray" if self.executor else "local",
                                **(self.executor.describe() if self.executor else {"threads": self.threads})}}

    # -- public ----------------------------------------------------------------------------------------
    def score(self, items: list[tuple[str, str, str]]) -> list[IFDScore | IFDError]:
        """One result per item, in order. Updates `self.stats` (counts of this call)."""
        st = self.stats = ScoreStats(items=len(items))
        shas = [text_sha(*it) for it in items]
        scorable = {s: it for s, it in zip(shas, items) if it[2].strip()}  # an empty answer needs no tokenizer
        st.unique = len(scorable)
        cached = self.cache.get_many(self.ctx, list(scorable)) if self.cache is not None else {}
        todo = {s: it for s, it in scorable.items() if s not in cached}
        computed = self._compute(todo) if todo else {}
        results: list[IFDScore | IFDError] = []
        for sha, it in zip(shas, items):
            if sha not in scorable:
                results.append(IFDError(EMPTY_ANSWER, "the answer is empty"))
            elif sha in cached:
                results.append(IFDScore.from_losses(cached[sha], cached=True))
                st.cache_hits += 1
            else:
                r = computed[sha]
                if isinstance(r, CachedScore):
                    results.append(IFDScore.from_losses(r, cached=False))
                    st.scored += 1
                else:
                    results.append(r)
        st.unscorable = sum(isinstance(r, IFDError) for r in results)
        log.info("ifd: %d records, %d from cache, %d scored (%s tok/s), %d unscorable", st.items, st.cache_hits,
                 st.scored, st.tokens_per_s, st.unscorable)
        return results

    def score_chunk(self, chunk: list[tuple[str, tuple[str, str, str]]],
                    partial: dict[tuple[str, int], float] | None = None, commit=None
                    ) -> dict[str, CachedScore | IFDError]:
        """Score one chunk of (sha, texts) (the unit both executors share). `partial`: losses of sequences already
        finished (from the cache); `commit(scores, partial)`: called as work finishes — after every batch on the
        CPU (where a chunk takes minutes), once at the end of the chunk on a GPU (no per-batch host sync)."""
        import torch

        partial = partial or {}
        self.lm  # noqa: B018 - the weights before the tokenizer (vad.compute.models: the lower peak RSS)
        encoded = encode_many(self.tokenizer, self.template, [it for _s, it in chunk], self.max_length)
        out: dict[str, CachedScore | IFDError] = {}
        seqs = []  # (length, sha, kind, ids, start)
        by_sha: dict[str, Encoded] = {}
        losses: dict[str, list[float | None]] = {}
        for (sha, _it), e in zip(chunk, encoded):
            if isinstance(e, IFDError):
                out[sha] = e
                continue
            by_sha[sha] = e
            losses[sha] = [partial.get((sha, 0)), partial.get((sha, 1))]
            for kind, ids, start in ((0, e.cond_ids, e.cond_start), (1, e.direct_ids, e.direct_start)):
                if losses[sha][kind] is None:
                    seqs.append((len(ids), sha, kind, ids, start))
        seqs.sort(key=lambda s: (s[0], s[1], s[2]))
        batches = plan_batches([s[0] for s in seqs], self.batch_size, self.max_batch_tokens)
        per_batch = self.compute.kind == "cpu"
        pending: list[tuple[list, Any]] = []

        def flush() -> None:
            if not pending:
                return
            vals = torch.cat([t for _b, t in pending]).tolist()  # the one host sync
            done: dict[str, CachedScore] = {}
            new_partial: dict[tuple[str, int], float] = {}
            k = 0
            for batch, _t in pending:
                for s in batch:
                    loss = vals[k]
                    k += 1
                    pair = losses[s[1]]
                    pair[s[2]] = loss
                    lc, ld = pair
                    if lc is None or ld is None:
                        if math.isfinite(loss):
                            new_partial[(s[1], s[2])] = loss
                        continue
                    e = by_sha[s[1]]
                    if not (math.isfinite(lc) and math.isfinite(ld)) or ld <= 0:
                        out[s[1]] = IFDError(NONFINITE, f"loss_cond={lc!r} loss_direct={ld!r}")
                    else:
                        done[s[1]] = out[s[1]] = CachedScore(round(lc, ROUND), round(ld, ROUND), e.n_answer,
                                                             e.truncated)
            pending.clear()
            new_partial = {key: v for key, v in new_partial.items() if key[0] not in out}  # completed in this flush
            if commit is not None and (done or new_partial):
                commit(done, new_partial)

        old_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                for a, b in batches:
                    batch = seqs[a:b]
                    pending.append((batch, self._losses([(s[3], s[4]) for s in batch])))
                    self.stats.forward_batches += 1
                    self.stats.tokens += sum(s[0] for s in batch)
                    if per_batch:
                        flush()
                        trim_heap()
                flush()
        except BaseException:
            try:  # an error mid-chunk (a fatal OOM, Ctrl-C) still keeps what finished
                flush()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.warning("ifd: could not save the last finished batches", exc_info=True)
            raise
        finally:
            self.stats.seconds += time.perf_counter() - t0
            torch.set_num_threads(old_threads)
        for sha, (lc, ld) in losses.items():  # both sequences came from the cache's partial rows
            if sha not in out and lc is not None and ld is not None:
                e = by_sha[sha]
                done1 = {sha: CachedScore(round(lc, ROUND), round(ld, ROUND), e.n_answer, e.truncated)}
                out.update(done1)
                if commit is not None:
                    commit(done1, {})
        return out

    # -- internals -------------------------------------------------------------------------------------
    def _commit(self, done: dict[str, CachedScore], partial: dict[tuple[str, int], float]) -> None:
        if self.cache is not None:
            self.cache.put_many(self.ctx, done, partial)

    def _compute(self, todo: dict[str, tuple[str, str, str]]) -> dict[str, CachedScore | IFDError]:
        from tqdm import tqdm

        chunks = plan_chunks(todo)
        out: dict[str, CachedScore | IFDError] = {}
        with tqdm(total=len(todo), unit="rec", desc="ifd", disable=not self.progress, smoothing=0.1) as bar:
            if self.executor is not None:
                for res, stats in self.executor.run(chunks):
                    self._commit({s: r for s, r in res.items() if isinstance(r, CachedScore)}, {})
                    out.update(res)
                    self.stats.add(stats)
                    bar.update(len(res))
                    bar.set_postfix_str(f"{self.stats.tokens_per_s} tok/s")
                return out
            partial = self.cache.get_partial(self.ctx, list(todo)) if self.cache is not None else {}
            for chunk in chunks:
                out.update(self.score_chunk(chunk, partial, commit=self._commit))
                bar.update(len(chunk))
                bar.set_postfix_str(f"{self.stats.tokens_per_s} tok/s")
        return out

    def _losses(self, batch: list[tuple[list[int], int]]):
        """Per-sequence mean answer losses of a batch (a tensor on the model's device). Out of memory: the batch
        is split in halves and retried; a single sequence that does not fit is an error naming the params."""
        import torch

        try:
            return self._batch_losses(batch)
        except RuntimeError as e:
            if not is_oom(e):
                raise
            if self.compute.kind == "cuda":
                torch.cuda.empty_cache()
            n = sum(len(ids) for ids, _ in batch)
            if len(batch) == 1:
                raise IFDOutOfMemory(f"ifd: one sequence of {n} tokens does not fit in memory on "
                                     f"{self.compute.device}: lower ifd.max_length (scores so far are cached)") from None
            self.stats.oom_splits += 1
            if self.stats.oom_splits == 1:
                log.warning("ifd: out of memory on a batch of %d sequences (%d tokens): splitting; set "
                            "ifd.max_batch_tokens below %d to avoid it", len(batch), n,
                            len(batch) * max(len(ids) for ids, _ in batch))
            mid = len(batch) // 2
            return torch.cat([self._losses(batch[:mid]), self._losses(batch[mid:])])

    def _batch_losses(self, batch: list[tuple[list[int], int]]):
        """Mean answer-token cross-entropy of each (ids, answer_start) in the batch (float64, on the device)."""
        import torch

        lm = self.lm
        dev = lm.device
        L = max(len(ids) for ids, _ in batch)
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        ids_t = torch.full((len(batch), L), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        rows, cols, targets, counts = [], [], [], []  # rows[i] = the sequence that answer token i belongs to
        for b, (ids, start) in enumerate(batch):
            ids_t[b, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[b, :len(ids)] = 1
            n = len(ids) - start
            rows += [b] * n
            cols += range(start - 1, len(ids) - 1)  # the hidden state one position earlier predicts the token
            targets += ids[start:]
            counts.append(n)
        host = (ids_t, mask, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets, dtype=torch.long),
                torch.tensor(counts, dtype=torch.float64))
        if dev.type != "cpu":
            host = tuple(t.pin_memory().to(dev, non_blocking=True) for t in host)
        ids_t, mask, rows_t, cols_t, tgt, counts_t = host
        hidden = lm.model.base_model(input_ids=ids_t, attention_mask=mask, use_cache=False).last_hidden_state
        h = hidden[rows_t, cols_t]  # [N, H]: answer positions only
        w, bias = self._head()
        token_loss = token_losses(h, w, tgt, bias, getattr(lm.model.config, "final_logit_softcapping", None))
        sums = torch.zeros(len(batch), dtype=torch.float64, device=dev).index_add_(0, rows_t, token_loss.double())
        return sums / counts_t

    def _head(self):
        """lm_head (weight, bias) in the head dtype (vad/quality/ifd_head.py), made once per scorer."""
        if self._head_w is None:
            self._head_w = head_weights(self.lm.model, self.head_dtype)
        return self._head_w


# --- helpers shared by the stage and the CLI -----------------------------------------------------------
def score_fields(s: IFDScore, scorer: IFDScorer) -> dict[str, Any]:
    """The `meta["ifd"]` dict of a scored record (and the row of `vad ifd`)."""
    d = scorer.describe()
    return {"loss_cond": s.loss_cond, "loss_direct": s.loss_direct, "ifd": s.ifd, "ifd_ppl": s.ifd_ppl,
            "n_answer_tokens": s.n_answer_tokens, "truncated": s.truncated, "model": d["model"],
            "fingerprint": d["fingerprint"], "template": d["template"], "max_length": d["max_length"],
            "dtype": d["dtype"], "device": d["device"]}


def score_records(records: list, params: Any, run=None, scorer: IFDScorer | None = None,
                  **scorer_kw: Any) -> tuple[list, dict[str, Any]]:
    """Score vad Records: kept ones get `meta["ifd"]`; unscorable ones are dropped into `run` (a StageRun)
    with their reason (or, without a run, returned nowhere — the caller must use a run in stages)."""
    own = scorer is None
    scorer = scorer or IFDScorer.from_params(params, **scorer_kw)
    try:
        results = scorer.score([(r.instruction, r.input, r.output) for r in records])
    finally:
        if own:
            scorer.close()
    kept = []
    for rec, res in zip(records, results):
        if isinstance(res, IFDError):
            if run is None:
                raise ValueError(f"record {rec.id} is not scorable ({res.reason}) and no StageRun was given")
            run.drop(rec, res.reason, res.detail)
        else:
            rec.meta["ifd"] = score_fields(res, scorer)
            kept.append(rec)
    return kept, {**scorer.stats.as_metrics(), **{f"ifd_{k}": v for k, v in scorer.describe().items()},
                  **scorer.compute_metrics()}


def _row_texts(obj: Any) -> tuple[str, str, str] | None:
    if not isinstance(obj, dict):
        return None
    q, x, a = obj.get("instruction"), obj.get("input", "") or "", obj.get("output")
    if not isinstance(q, str) or not isinstance(a, str) or not isinstance(x, str):
        return None
    return q, x, a


def score_file(in_path: str | Path, out_path: str | Path, params: Any, **scorer_kw: Any) -> dict:
    """`vad ifd FILE.jsonl -o SCORES.jsonl`: the stage's scorer on any JSONL of vad records or plain
    {instruction, input, output} rows. One output row per input row, in order: {"line", "id"?, score fields}
    or {"line", "id"?, "error": reason, "detail"}."""
    from vad.core.io import iter_jsonl, write_jsonl

    rows = list(iter_jsonl(in_path))
    texts = [_row_texts(obj) for _n, _raw, obj in rows]
    scorer = IFDScorer.from_params(params, **scorer_kw)
    try:
        results = iter(scorer.score([t for t in texts if t is not None]))
    finally:
        scorer.close()
    out, errors = [], Counter()
    for (n, _raw, obj), t in zip(rows, texts):
        row: dict[str, Any] = {"line": n}
        if isinstance(obj, dict) and "id" in obj:
            row["id"] = obj["id"]
        res: IFDScore | IFDError = next(results) if t is not None else IFDError(
            BAD_ROW, "row needs string fields instruction and output (and input, if present)")
        if isinstance(res, IFDError):
            row |= {"error": res.reason, "detail": res.detail}
            errors[res.reason] += 1
        else:
            row |= score_fields(res, scorer)
        out.append(row)
    write_jsonl(out_path, out)
    return {"in": len(rows), "out": str(out_path), "ok": len(rows) - sum(errors.values()),
            "errors": dict(sorted(errors.items())), **scorer.stats.as_metrics(), **scorer.describe(),
            **scorer.compute_metrics()}

