"""The fused log-sum-exp head (vad/quality/ifd/head.py) against torch.log_softmax over full logits: several dtypes,
with and without final-logit softcapping and a bias, row and vocabulary sizes that are not multiples of the tiles."""
import pytest
import torch

from vad.quality.ifd.head import TILES, head_dtype, token_losses

# dtype of the head GEMM, and the relative rounding of its logits (bf16/fp16 logits are rounded to 8/11 bits
# before the fp32 log-sum-exp): a token loss may be off by about that share of the largest logit, no more
DTYPES = [(torch.float32, 2.0 ** -20), (torch.bfloat16, 2.0 ** -8), (torch.float16, 2.0 ** -11)]


def reference(h, w, target, bias, softcap):
    """−log_softmax of the full logits, in float64, from the same rounded inputs the head sees."""
    logits = h.to(w.dtype).double() @ w.double().t()
    if bias is not None:
        logits = logits + bias.double()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return -torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]


@pytest.mark.parametrize("dtype,eps", DTYPES, ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("softcap", [None, 30.0], ids=["plain", "softcap"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("V", [1000, 256], ids=["V1000", "V256"])
def test_fused_head_equals_log_softmax(dtype, eps, softcap, with_bias, V):
    g = torch.Generator().manual_seed(V + 7 * bool(softcap) + 3 * with_bias)
    n, H = 37, 48
    h = torch.randn(n, H, generator=g) * 2
    w = (torch.randn(V, H, generator=g) * 0.5).to(dtype)
    bias = torch.randn(V, generator=g) if with_bias else None
    target = torch.randint(0, V, (n,), generator=g)
    # 37 rows in tiles of 16 (16, 16, 5) and V rows in tiles of 96 (the last one partial): every edge is crossed
    got = token_losses(h, w, target, bias, softcap, tiles=(16, 96))
    want = reference(h, w, target, bias, softcap)
    big = (h.to(dtype).double() @ w.double().t()).abs().max().item()  # ~20 here, like a real model's logits
    tol = 2 * eps * big + 1e-5
    assert got.dtype == torch.float32 and got.shape == (n,)
    assert torch.isfinite(got).all()
    err = (got.double() - want).abs().max().item()
    assert err <= tol, err
    # the default tiles (one vocabulary tile here) agree with the small ones
    assert (token_losses(h, w, target, bias, softcap) - got).abs().max().item() <= tol


def test_large_logits_do_not_overflow():
    """The online max keeps exp() in range: logits of ~±500 (fp32) give the exact losses."""
    g = torch.Generator().manual_seed(1)
    h = torch.randn(9, 16, generator=g) * 40
    w = torch.randn(300, 16, generator=g)
    target = torch.randint(0, 300, (9,), generator=g)
    got = token_losses(h, w, target, tiles=(4, 64))
    assert torch.isfinite(got).all()
    assert (got.double() - reference(h, w, target, None, None)).abs().max().item() <= 1e-3


def test_no_rows_and_head_dtypes():
    w = torch.randn(10, 4)
    assert token_losses(torch.empty(0, 4), w, torch.empty(0, dtype=torch.long)).shape == (0,)
    assert head_dtype("bfloat16", "cpu") == "bfloat16" and head_dtype("float32", "cpu") == "float32"
    assert head_dtype("float16", "cpu") == "float32" and head_dtype("float16", "cuda") == "float16"
    assert set(TILES) == {"cpu", "cuda"}
