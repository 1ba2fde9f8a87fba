"""The IFD scorer's output head: −log softmax(h · Wᵀ + b)[target] for the answer positions only, fused with an
online log-sum-exp over vocabulary tiles, so the [positions × 262k] logits are never materialised.

The GEMM runs in the head weight's dtype (bf16 on a native-bf16 CPU or a GPU: its logits are rounded to bf16,
≤0.06 on a logit, and the max, exp and sum are fp32); the target logit h · W[target] is computed in fp32 from the
same inputs. Final-logit softcapping (Gemma 2 style, tanh(x / c) · c) is applied when the config has one.

Tile sizes per device: on the CPU a 16 MB fp32 tile stays in the L3 between the GEMM and the exp/sum passes
(8192 rows measured 1.5x faster for fp32 and 1.3x for bf16 than 32768-row tiles); on a GPU the elementwise passes
are bound by memory bandwidth and kernel launches, so tiles are larger (a 4096 x 16384 fp32 tile is 256 MB)."""
from __future__ import annotations

import math

TILES = {"cpu": (512, 8192), "cuda": (4096, 16384)}  # (answer positions, vocabulary rows) per tile


def head_dtype(body_dtype: str, device_kind: str) -> str:
    """The dtype the head's GEMM runs in: the body's, except fp16 on the CPU (an fp16 GEMM there is ~10x slower
    than bf16; it runs in fp32). Cache keys name it, so it must be known before the model is loaded."""
    return "float32" if body_dtype == "float16" and device_kind == "cpu" else body_dtype


def head_weights(model, dtype: str):
    """(weight, bias) of the model's output embedding for `token_losses`: the weights themselves when they are
    already in `dtype` (bf16 weights ARE the values the fp32 reference upcasts), else a copy in `dtype`."""
    import torch

    head = model.get_output_embeddings()
    w = head.weight.detach()
    want = getattr(torch, dtype)
    if w.dtype != want:
        w = w.to(want)
    b = getattr(head, "bias", None)
    return w, None if b is None else b.detach().float()


def token_losses(h, w, target, bias=None, softcap: float | None = None, tiles: tuple[int, int] | None = None):
    """−log softmax(h · wᵀ + bias)[target] per row of h ([N, H]; w: [V, H]; target: [N] token ids), as fp32.

    Rows go in tiles of `tiles[0]`, the vocabulary in tiles of `tiles[1]` (defaults per device: TILES)."""
    import torch

    rows, vocab = tiles or TILES.get(w.device.type, TILES["cuda"])
    h = h.to(w.dtype)
    out = torch.empty(h.shape[0], dtype=torch.float32, device=w.device)
    if h.shape[0] == 0:
        return out
    tgt_logit = (h.float() * w[target].float()).sum(-1)
    if bias is not None:
        tgt_logit = tgt_logit + bias[target]
    if softcap:
        tgt_logit = torch.tanh(tgt_logit / softcap) * softcap
    V = w.shape[0]
    fp32 = w.dtype == torch.float32
    for i in range(0, h.shape[0], rows):
        hc = h[i:i + rows]
        n = hc.shape[0]
        logits = torch.empty(n, min(vocab, V), dtype=w.dtype, device=w.device)
        tile32 = logits if fp32 else torch.empty(n, min(vocab, V), device=w.device)
        m = torch.full((n,), -math.inf, device=w.device)
        s = torch.zeros(n, device=w.device)
        for j in range(0, V, vocab):
            wj = w[j:j + vocab]
            t = logits[:, :wj.shape[0]]
            torch.mm(hc, wj.t(), out=t)
            t32 = t if fp32 else tile32[:, :wj.shape[0]].copy_(t)
            if bias is not None:
                t32.add_(bias[j:j + vocab])
            if softcap:
                t32.div_(softcap).tanh_().mul_(softcap)
            nm = torch.maximum(m, t32.amax(-1))
            s.mul_(torch.exp(m - nm)).add_(t32.sub_(nm[:, None]).exp_().sum(-1))
            m = nm
        out[i:i + n] = m + s.log()
    return out - tgt_logit
