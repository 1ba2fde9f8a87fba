"""The torch part of IFD: one chunk of records → their two mean answer losses. No cache, no executor: the
scorer (vad/quality/ifd/scorer.py) gives it chunks and a `commit` for what finishes; a Ray actor holds one.

Within a chunk, conditioned and direct sequences are pooled, sorted by (length, text sha256, kind) and cut into
batches (encode.plan_batches), right-padded with an attention mask. The base model (`model.base_model`: Gemma's
embedding scaling is inside it, SDPA attention) runs under `torch.inference_mode()` in the resolved dtype;
hidden states are gathered at answer positions only (shifted by one) and only those go through `lm_head`, fused
with an fp32 log-sum-exp over vocabulary tiles (head.py). On the CPU every batch commits its finished scores and
single finished sequences (an interrupted run resumes with only the missing ones); on a GPU each chunk commits
once (one host sync per chunk). A GPU out-of-memory splits the batch in halves; a single sequence that does not
fit is an error naming `ifd.max_length`."""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any

# OpenMP threads that spin at barriers collapse when other processes share the cores: measured on a 2-core
# machine, a bs=1 forward took 5.6 s with the default wait policy vs 0.3 s with PASSIVE (load ~3.5), and the
# batched scorer ran 4x slower. It only takes effect if set before torch (libgomp) is loaded; an explicit setting
# wins.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vad.compute.device import Compute, trim_heap  # noqa: E402
from vad.quality.ifd.cache import ROUND, CachedScore  # noqa: E402
from vad.quality.ifd.encode import encode_many, plan_batches  # noqa: E402
from vad.quality.ifd.head import head_dtype, head_weights, token_losses  # noqa: E402
from vad.quality.ifd.templates import IFDTemplate  # noqa: E402
from vad.quality.ifd.types import NONFINITE, Encoded, IFDError, IFDOutOfMemory, ScoreStats  # noqa: E402

log = logging.getLogger(__name__)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e)))


class Kernel:
    """One model (loaded on first use, vad.compute.models, once per process) scoring chunks of (sha, texts)."""

    def __init__(self, model: str, template: IFDTemplate, max_length: int, compute: Compute, fingerprint: str,
                 batch_size: int, max_batch_tokens: int | None, threads: int):
        self.model_spec, self.template, self.max_length = model, template, max_length
        self.compute, self.fingerprint = compute, fingerprint
        self.batch_size, self.max_batch_tokens, self.threads = batch_size, max_batch_tokens, threads
        self.head_dtype = head_dtype(compute.dtype, compute.kind)
        self.stats = ScoreStats()  # the scorer hands each run its own
        self._lm = None
        self._head_w = None

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
        """lm_head (weight, bias) in the head dtype (head.py), made once per scorer."""
        if self._head_w is None:
            self._head_w = head_weights(self.lm.model, self.head_dtype)
        return self._head_w
