"""The literal IFD reference: the definition in vad/quality/ifd/__init__.py computed the slow obvious way — batch size 1,
the model's full forward (logits at every position, softcapping included), torch's cross-entropy over the answer
positions — with its own tokenisation and truncation, so the scorer's answer-token spans are checked too.

Tests and benchmarks compare the batched scorer against it; load the model in fp32 for the reference proper
(`load_causal_lm(spec, "float32", device=...)`), on the CPU or on the GPU being measured."""
from __future__ import annotations

import math
from typing import Any


def reference_score(lm, template, instruction: str, input: str, output: str, max_length: int) -> dict[str, Any]:
    """IFD of one record as vad/quality/ifd/__init__.py defines it. `lm`: a vad.compute.models.LoadedLM."""
    import torch

    tok = lm.tokenizer
    P = tok(template.prompt(instruction, input), add_special_tokens=False)["input_ids"]
    A = tok(output, add_special_tokens=False)["input_ids"]
    D = tok(template.direct, add_special_tokens=False)["input_ids"] if template.direct else []
    n = max_length - 1
    truncated = len(P) + len(A) > n
    if truncated:
        reserve = min(len(A), max(1, n // 4))
        keep_a = max(n - len(P), reserve)
        k = n - keep_a
        if k < len(P):
            P = P[:k // 2] + P[len(P) - (k - k // 2):]
        A = A[:keep_a]
    A = A[:n - len(D)]
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    device = next(lm.model.parameters()).device

    def mean_ce(ctx):
        ids = [bos, *ctx, *A]
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
        start = 1 + len(ctx)
        return torch.nn.functional.cross_entropy(logits[start - 1:len(ids) - 1],
                                                 torch.tensor(ids[start:], device=device)).item()

    lc, ld = mean_ce(P), mean_ce(D)
    return {"answer_ids": A, "loss_cond": lc, "loss_direct": ld, "ifd": lc / ld, "ifd_ppl": math.exp(lc - ld),
            "truncated": truncated, "n_tokens": 2 + len(P) + len(D) + 2 * len(A)}
