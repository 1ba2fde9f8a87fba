"""IFDScorer: IFD of lists of (instruction, input, output), from the `ifd` params.

Every record is first looked up in the score cache (cache.py) by the sha256 of its texts; only the misses are
cut into chunks (encode.plan_chunks) and scored — by the local kernel (kernel.py), or on Ray actors
(`ifd.executor: ray`, ray.py) — and the model is loaded only if something is left to score. The cache key names
the model fingerprint, the template, `max_length`, the body and head dtypes and the device kind off the CPU, so
scores of another precision or device are never mixed in. Where and in which precision: `ifd.device` /
`ifd.dtype` (auto: vad/compute/device.py)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vad.compute.device import Compute, resolve as resolve_compute
from vad.compute.models import fingerprint as model_fingerprint
from vad.quality.ifd.cache import CacheContext, CachedScore, IFDCache, text_sha
from vad.quality.ifd.encode import batch_budget, plan_chunks
from vad.quality.ifd.kernel import Kernel, available_cpus
from vad.quality.ifd.templates import get_template
from vad.quality.ifd.types import EMPTY_ANSWER, IFDError, IFDScore, ScoreStats

log = logging.getLogger(__name__)

# The `ifd` params the scores depend on, and those that only say how the work is spread (together: the stage's DVC
# params; ifd_select reads the others). `auto` values are resolved per machine (vad/compute/device.py).
SCORE_PARAMS = ("model", "template", "max_length", "device", "dtype", "batch_size", "max_batch_tokens")
RUN_PARAMS = ("executor", "ray_actors")


class IFDScorer:
    """Scores lists of (instruction, input, output) with the `ifd` params (vad.core.config.IFDParams or the
    stage's view of it). `compute` / `fingerprint` skip resolving them (a Ray cluster resolved them already)."""

    def __init__(self, params: Any, *, threads: int | None = None, progress: bool = True,
                 cache: IFDCache | str | Path | bool | None = True, compute: Compute | None = None,
                 fingerprint: str | None = None):
        p = params
        self.model_spec = p.model
        self.template = get_template(p.template)
        self.max_length = int(p.max_length)
        self.threads = int(threads) if threads else available_cpus()
        self.progress = progress
        self.executor = None
        if p.executor == "ray":
            from vad.quality.ifd.ray import RayExecutor  # Ray is imported only for this executor

            # resolved on the cluster (its GPUs, its CPUs), not on this machine
            self.executor = RayExecutor(p.model, p.template, self.max_length, p.batch_size, p.max_batch_tokens,
                                        p.device, p.dtype, p.ray_actors)
            compute, fingerprint = self.executor.compute, self.executor.fingerprint
        elif p.executor != "local":
            raise ValueError(f"unknown executor {p.executor!r}; use local or ray")
        self.compute = compute or resolve_compute(p.device, p.dtype, "ifd")
        kind = self.compute.kind
        self.batch_size, self.max_batch_tokens = batch_budget(kind, p.batch_size, p.max_batch_tokens,
                                                              self.max_length)
        self.fingerprint = fingerprint or model_fingerprint(p.model, self.compute.dtype, "ifd.model")
        self.kernel = Kernel(p.model, self.template, self.max_length, self.compute, self.fingerprint,
                             self.batch_size, self.max_batch_tokens, self.threads)
        self.head_dtype = self.kernel.head_dtype
        if cache is True or cache is None:
            self.cache: IFDCache | None = IFDCache()
        elif cache is False:
            self.cache = None
        elif isinstance(cache, IFDCache):
            self.cache = cache
        else:
            self.cache = IFDCache(cache)
        # the body and head dtypes, and the device kind off the CPU: scores of another precision or device never
        # mix (the CPU's key has no device part, so caches made on a CPU stay valid)
        key = f"{self.compute.dtype}/head-{self.head_dtype}" + ("" if kind == "cpu" else f"@{kind}")
        self.ctx = CacheContext(self.fingerprint, self.template.key, self.max_length, key)
        self.stats = ScoreStats()
        log.info("ifd: scoring on %s (executor %s)", self.compute, p.executor)

    @classmethod
    def from_params(cls, params: Any, **kw: Any) -> "IFDScorer":
        """From the `ifd` params, or a dict of them (validated as IFDParams)."""
        if isinstance(params, dict):
            from vad.core.config import IFDParams

            params = IFDParams.from_params(params)
        return cls(params, **kw)

    def close(self) -> None:
        """Let go of the Ray instance (executor ray); the cache and the loaded model stay for the process."""
        if self.executor is not None:
            self.executor.close()

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

    def score(self, items: list[tuple[str, str, str]]) -> list[IFDScore | IFDError]:
        """One result per item, in order. Updates `self.stats` (counts of this call)."""
        st = self.stats = self.kernel.stats = ScoreStats(items=len(items))
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
                out.update(self.kernel.score_chunk(chunk, partial, commit=self._commit))
                bar.update(len(chunk))
                bar.set_postfix_str(f"{self.stats.tokens_per_s} tok/s")
        return out
