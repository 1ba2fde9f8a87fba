"""The loglik method's scorer: log p("A" | prompt) vs log p("B" | prompt) from a local causal LM's next-token
distribution (works with a base model; no parsing). torch is imported only when scoring, so importing this
module (the runner does, for the generate method too) loads no model and no torch."""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence

from vad.compute.models import load_causal_lm
from vad.eval.prompts import CHOICES

log = logging.getLogger(__name__)


def auto_threads() -> int:
    """CPUs we may use minus the load other processes put on them (1-min load average), at least 1.

    On a shared 2-core machine, 2 torch threads next to other busy processes ran ~5× SLOWER than 1 thread
    (OpenMP threads wait for each other whenever one is descheduled)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return n
    return max(1, min(n, n - int(load + 0.5)))


class ChoiceScorer:
    """log p(choice | prefix + prompt) for single-token choices, from the next-token distribution.

    The token sequence is tok(prefix, with BOS) + tok(prompt, no special tokens), tokenised separately so the
    boundary never depends on the item. The prefix (the few-shot examples, shared by every prompt) is run once
    and its KV cache copied for each prompt; prompts run one at a time (no padding: a prompt's scores do not
    depend on the other prompts), logits for the last position only, log-softmax in fp32. bf16 reuse of the
    prefix cache shifts log-probs by ~0.01–0.05 nats against one full pass; pass dtype float32 for exactness."""

    def __init__(self, model: str = "gemma3-270m", dtype: str = "auto", choices: Sequence[str] = CHOICES,
                 threads: int = 0, device: str = "auto"):
        self.lm = load_causal_lm(model, dtype, param="eval.model", device=device, section="eval")
        log.info("eval: scoring on %s", self.lm.compute)
        self.threads = threads  # 0 = auto_threads() at scoring time
        tok = self.lm.tokenizer
        self.choice_ids: list[int] = []
        for c in choices:
            ids = tok(c, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise ValueError(f"choice {c!r} is {len(ids)} tokens for this tokenizer; loglik needs single tokens")
            self.choice_ids.append(ids[0])
        self.tokens = 0
        self.used_threads = 0

    def score(self, prompts: Sequence[str], prefix: str = "",
              progress: Callable[[int], None] | None = None) -> list[list[float]]:
        """[log p(choice_1), log p(choice_2), ...] after prefix + prompt, for each prompt."""
        import torch  # here, not at the top: the generate method and the light imports never load torch

        tok, model, dev = self.lm.tokenizer, self.lm.model, self.lm.device
        pre = tok(prefix, add_special_tokens=True)["input_ids"]
        out: list[list[float]] = []
        old_threads = torch.get_num_threads()
        self.used_threads = self.threads or auto_threads()
        torch.set_num_threads(self.used_threads)
        try:
            with torch.inference_mode():
                cache = model(input_ids=torch.tensor([pre], device=dev),
                              use_cache=True).past_key_values if pre else None
                self.tokens += len(pre)
                for p in prompts:
                    ids = tok(p, add_special_tokens=False)["input_ids"]
                    if not ids:
                        raise ValueError("empty prompt")
                    pos = torch.arange(len(pre), len(pre) + len(ids), device=dev)[None]
                    logits = model(input_ids=torch.tensor([ids], device=dev), position_ids=pos, use_cache=True,
                                   past_key_values=copy.deepcopy(cache) if cache is not None else None,
                                   logits_to_keep=1).logits[0, -1].float()
                    logp = torch.log_softmax(logits, dim=-1)[self.choice_ids].tolist()
                    out.append([round(v, 6) for v in logp])
                    self.tokens += len(ids)
                    if progress:
                        progress(1)
        finally:
            torch.set_num_threads(old_threads)
        return out
