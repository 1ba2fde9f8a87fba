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
Conditioned and direct sequences of all records are pooled, sorted by (length, text sha256, kind) — a
deterministic order that depends only on the set of texts — and cut into batches of `batch_size`, right-padded
with an attention mask. The base model (`model.base_model`, Gemma's embedding scaling is inside it) runs under
`torch.inference_mode()` in `dtype`; hidden states are gathered at answer positions only (shifted by one) and
only those go through `lm_head` (262k-row vocabulary: full logits are most of the cost). The head's GEMM runs in
the body's dtype when that is bf16 (the loaded weights are bf16 values, so only the hidden states and the output
logits are rounded) and fp32 otherwise, tiled over the vocabulary with an online fp32 log-sum-exp, so the
[tokens × 262k] logits are never materialised; the target logit is h · W[target] in fp32; Gemma's final logit
softcapping is applied when the config has one. Scores go to the SQLite cache (vad/quality/ifd_cache.py) as soon as both
sequences of a record are done, so an interrupted run resumes where it stopped; the cache key names the body and
head dtypes, so scores from another precision are never mixed in.

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

from vad.quality.ifd_cache import ROUND, CacheContext, CachedScore, IFDCache, text_sha
from vad.quality.ifd_templates import IFDTemplate, get_template

log = logging.getLogger(__name__)

EMPTY_ANSWER = "ifd_empty_answer"
NO_ANSWER_TOKENS = "ifd_no_answer_tokens"
NONFINITE = "ifd_nonfinite"
BAD_ROW = "ifd_bad_row"  # score_file only: a row without instruction/output strings

# The `ifd` params the scores depend on (the stage's DVC params; ifd_select reads the others).
SCORE_PARAMS = ("model", "template", "max_length", "batch_size", "dtype")
ROW_TILE = 512     # answer positions per lm_head tile
VOCAB_TILE = 8192  # vocabulary rows per tile: a 16 MB fp32 tile stays in the 32 MB L3 between the GEMM and the
                   # exp/sum passes (measured 1.5x faster for fp32 and 1.3x for bf16 than 32768-row tiles)


_HEADS: dict[int, tuple] = {}  # id(model) → (weight, bias) for the head; models live for the process (vad.compute.models)


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
    seconds: float = 0.0  # time in forward passes + lm_head

    @property
    def tokens_per_s(self) -> float:
        return round(self.tokens / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_metrics(self) -> dict[str, Any]:
        return {"scored": self.scored, "cache_hits": self.cache_hits, "unscorable": self.unscorable,
                "forward_batches": self.forward_batches, "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
                "score_seconds": round(self.seconds, 2)}


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


# --- the scorer ------------------------------------------------------------------------------------------
class IFDScorer:
    """Loads the model once (vad.models.load_causal_lm) and scores lists of (instruction, input, output)."""

    def __init__(self, model: str = "gemma3-270m", template: str = "alpaca_zh_v1", max_length: int = 512,
                 batch_size: int = 8, dtype: str = "bfloat16", threads: int | None = None, progress: bool = True,
                 cache: IFDCache | str | Path | bool | None = True):
        from vad.compute.models import load_causal_lm

        self.model_spec = model
        self.template = get_template(template)
        self.max_length = int(max_length)
        self.batch_size = max(1, int(batch_size))
        self.threads = int(threads) if threads else _available_cpus()
        self.progress = progress
        self.lm = load_causal_lm(model, dtype, param="ifd.model")
        self.tokenizer = self.lm.tokenizer
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        cfg = self.lm.model.config
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        if cache is True or cache is None:
            self.cache: IFDCache | None = IFDCache()
        elif cache is False:
            self.cache = None
        elif isinstance(cache, IFDCache):
            self.cache = cache
        else:
            self.cache = IFDCache(cache)
        self.stats = ScoreStats()
        import torch

        self._torch = torch
        head_dtype = str(self._head()[0].dtype).removeprefix("torch.")
        self.ctx = CacheContext(self.lm.fingerprint, self.template.key, self.max_length,
                                f"{self.lm.dtype}/head-{head_dtype}")

    @classmethod
    def from_params(cls, params: Any, **kw: Any) -> "IFDScorer":
        """From the `ifd` params (vad.core.config.IFDParams, the stage's view of it, or a dict of them)."""
        if isinstance(params, dict):
            from vad.core.config import IFDParams

            params = IFDParams.from_params(params)
        return cls(**{k: getattr(params, k) for k in SCORE_PARAMS}, **kw)

    def describe(self) -> dict[str, Any]:
        """Provenance written next to each score."""
        return {"model": self.model_spec, "fingerprint": self.lm.fingerprint, "template": self.template.label,
                "max_length": self.max_length, "dtype": self.lm.dtype}

    # -- public ----------------------------------------------------------------------------------------
    def score(self, items: list[tuple[str, str, str]]) -> list[IFDScore | IFDError]:
        """One result per item, in order. Updates `self.stats` (counts of this call)."""
        st = self.stats = ScoreStats(items=len(items))
        encoded = encode_many(self.tokenizer, self.template, items, self.max_length)
        shas = [e.sha for e in encoded if isinstance(e, Encoded)]
        cached = self.cache.get_many(self.ctx, shas) if self.cache is not None else {}
        todo: dict[str, Encoded] = {}
        for e in encoded:
            if isinstance(e, Encoded) and e.sha not in cached:
                todo.setdefault(e.sha, e)
        st.unique = len(set(shas))
        computed = self._compute(list(todo.values())) if todo else {}
        results: list[IFDScore | IFDError] = []
        for e in encoded:
            if isinstance(e, IFDError):
                results.append(e)
            elif e.sha in cached:
                results.append(IFDScore.from_losses(cached[e.sha], cached=True))
                st.cache_hits += 1
            else:
                r = computed[e.sha]
                if isinstance(r, CachedScore):
                    results.append(IFDScore.from_losses(r, cached=False))
                    st.scored += 1
                else:
                    results.append(r)
        st.unscorable = sum(isinstance(r, IFDError) for r in results)
        log.info("ifd: %d records, %d from cache, %d scored (%s tok/s), %d unscorable", st.items, st.cache_hits,
                 st.scored, st.tokens_per_s, st.unscorable)
        return results

    # -- internals -------------------------------------------------------------------------------------
    def _compute(self, todo: list[Encoded]) -> dict[str, CachedScore | IFDError]:
        import torch
        from tqdm import tqdm

        seqs = []  # (length, sha, kind, ids, start)
        for e in todo:
            seqs.append((len(e.cond_ids), e.sha, 0, e.cond_ids, e.cond_start))
            seqs.append((len(e.direct_ids), e.sha, 1, e.direct_ids, e.direct_start))
        seqs.sort(key=lambda s: (s[0], s[1], s[2]))
        by_sha = {e.sha: e for e in todo}
        partial: dict[str, list[float | None]] = {e.sha: [None, None] for e in todo}
        out: dict[str, CachedScore | IFDError] = {}
        total = sum(s[0] for s in seqs)
        old_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode(), tqdm(total=total, unit="tok", unit_scale=True, desc="ifd",
                                              disable=not self.progress, smoothing=0.1) as bar:
                for i in range(0, len(seqs), self.batch_size):
                    batch = seqs[i:i + self.batch_size]
                    t0 = time.perf_counter()
                    losses = self._batch_losses([(s[3], s[4]) for s in batch])
                    self.stats.seconds += time.perf_counter() - t0
                    self.stats.forward_batches += 1
                    ntok = sum(s[0] for s in batch)
                    self.stats.tokens += ntok
                    bar.update(ntok)
                    done: dict[str, CachedScore] = {}
                    for s, loss in zip(batch, losses):
                        partial[s[1]][s[2]] = loss
                        lc, ld = partial[s[1]]
                        if lc is None or ld is None:
                            continue
                        e = by_sha[s[1]]
                        if not (math.isfinite(lc) and math.isfinite(ld)) or ld <= 0:
                            out[s[1]] = IFDError(NONFINITE, f"loss_cond={lc!r} loss_direct={ld!r}")
                        else:
                            done[s[1]] = out[s[1]] = CachedScore(round(lc, ROUND), round(ld, ROUND), e.n_answer,
                                                                 e.truncated)
                    if done and self.cache is not None:
                        self.cache.put_many(self.ctx, done)
        finally:
            torch.set_num_threads(old_threads)
        return out

    def _batch_losses(self, batch: list[tuple[list[int], int]]) -> list[float]:
        """Mean answer-token cross-entropy of each (ids, answer_start) in the batch."""
        import torch

        model = self.lm.model
        L = max(len(ids) for ids, _ in batch)
        ids_t = torch.full((len(batch), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        rows, cols, targets = [], [], []  # rows[i] = the sequence that answer token i belongs to
        for b, (ids, start) in enumerate(batch):
            ids_t[b, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[b, :len(ids)] = 1
            n = len(ids) - start
            rows += [b] * n
            cols += range(start - 1, len(ids) - 1)  # the hidden state one position earlier predicts the token
            targets += ids[start:]
        hidden = model.base_model(input_ids=ids_t, attention_mask=mask, use_cache=False).last_hidden_state
        rows_t = torch.tensor(rows)
        h = hidden[rows_t, torch.tensor(cols)]  # [N, H]
        tgt = torch.tensor(targets, dtype=torch.long)
        token_loss = self._token_losses(h, tgt)
        sums = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, rows_t, token_loss.double())
        counts = torch.tensor([len(ids) - start for ids, start in batch], dtype=torch.float64)
        return (sums / counts).tolist()

    def _head(self):
        """lm_head (weight, bias) for the log-sum-exp: the bf16 weights themselves when the body is bf16 (the
        loaded weights ARE bf16 — the fp32 reference upcasts the same values), else fp32 (an fp16 GEMM is ~10x
        slower than bf16 on these CPUs). Made once per loaded model."""
        torch = self._torch
        model = self.lm.model
        if id(model) not in _HEADS:
            head = model.get_output_embeddings()
            w = head.weight.detach()
            if w.dtype not in (torch.float32, torch.bfloat16):
                w = w.float()
            b = getattr(head, "bias", None)
            _HEADS[id(model)] = (w, None if b is None else b.detach().float())
        return _HEADS[id(model)]

    def _token_losses(self, h, tgt):
        """−log softmax(lm_head(h))[tgt] per row: lm_head applied to these rows only, fused with an online
        log-sum-exp over vocabulary tiles (the [rows × 262k] logits are never materialised). The GEMM runs in the
        head's dtype (bf16: ~2.5x MKL's fp32 on avx512_bf16 cores, and its logits are rounded to bf16, ≤0.06 on a
        logit); the max, exp and sum are fp32. The target logit is computed in fp32 from the same inputs."""
        torch = self._torch
        w, bias = self._head()
        h = h.to(w.dtype)
        target = (h.float() * w[tgt].float()).sum(-1)
        if bias is not None:
            target = target + bias[tgt]
        if self.softcap:
            target = torch.tanh(target / self.softcap) * self.softcap
        lse = torch.empty(h.shape[0], dtype=torch.float32)
        V = w.shape[0]
        fp32 = w.dtype == torch.float32
        for i in range(0, h.shape[0], ROW_TILE):
            hc = h[i:i + ROW_TILE]
            logits = torch.empty(hc.shape[0], VOCAB_TILE, dtype=w.dtype)
            tile32 = logits if fp32 else torch.empty(hc.shape[0], VOCAB_TILE)
            m = torch.full((hc.shape[0],), -math.inf)
            s = torch.zeros(hc.shape[0])
            for j in range(0, V, VOCAB_TILE):
                wj = w[j:j + VOCAB_TILE]
                t = logits[:, :wj.shape[0]]
                torch.mm(hc, wj.t(), out=t)
                t32 = t if fp32 else tile32[:, :wj.shape[0]].copy_(t)
                if bias is not None:
                    t32.add_(bias[j:j + VOCAB_TILE])
                if self.softcap:
                    t32.div_(self.softcap).tanh_().mul_(self.softcap)
                nm = torch.maximum(m, t32.amax(-1))
                s.mul_(torch.exp(m - nm)).add_(t32.sub_(nm[:, None]).exp_().sum(-1))
                m = nm
            lse[i:i + ROW_TILE] = m + s.log()
        return lse - target


# --- helpers shared by the stage and the CLI -----------------------------------------------------------
def score_fields(s: IFDScore, scorer: IFDScorer) -> dict[str, Any]:
    """The `meta["ifd"]` dict of a scored record (and the row of `vad ifd`)."""
    d = scorer.describe()
    return {"loss_cond": s.loss_cond, "loss_direct": s.loss_direct, "ifd": s.ifd, "ifd_ppl": s.ifd_ppl,
            "n_answer_tokens": s.n_answer_tokens, "truncated": s.truncated, "model": d["model"],
            "fingerprint": d["fingerprint"], "template": d["template"], "max_length": d["max_length"],
            "dtype": d["dtype"]}


def score_records(records: list, params: Any, run=None, scorer: IFDScorer | None = None,
                  **scorer_kw: Any) -> tuple[list, dict[str, Any]]:
    """Score vad Records: kept ones get `meta["ifd"]`; unscorable ones are dropped into `run` (a StageRun)
    with their reason (or, without a run, returned nowhere — the caller must use a run in stages)."""
    scorer = scorer or IFDScorer.from_params(params, **scorer_kw)
    results = scorer.score([(r.instruction, r.input, r.output) for r in records])
    kept = []
    for rec, res in zip(records, results):
        if isinstance(res, IFDError):
            if run is None:
                raise ValueError(f"record {rec.id} is not scorable ({res.reason}) and no StageRun was given")
            run.drop(rec, res.reason, res.detail)
        else:
            rec.meta["ifd"] = score_fields(res, scorer)
            kept.append(rec)
    return kept, {**scorer.stats.as_metrics(), **{f"ifd_{k}": v for k, v in scorer.describe().items()}}


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
    results = iter(scorer.score([t for t in texts if t is not None]))
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
            "errors": dict(sorted(errors.items())), **scorer.stats.as_metrics(), **scorer.describe()}

