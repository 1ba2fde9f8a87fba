"""The device/dtype resolver (vad/compute/device.py): what `auto` picks, how it decides on a CPU, the params checks,
and the cache keys that keep precisions and devices apart."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from vad.compute import device as dev
from vad.core.config import EvalParams, IFDParams, LLMParams, ParamsError, load_params

PROBE = """
import json, torch
from vad.compute.device import resolve, gemm_seconds
c = resolve("auto", "auto", "ifd")
bf16_s, fp32_s = gemm_seconds((torch.bfloat16, torch.float32), (512, 640, 2048))
print(json.dumps({"dtype": c.dtype, "device": c.device, "why": c.why, "bf16_s": bf16_s, "fp32_s": fp32_s}))
"""
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}  # a CPU without native bf16, reproduced


def resolve_in_subprocess(extra_env: dict[str, str]) -> dict:
    # the CPU as it is, unless extra_env restricts it: a suite run under the AVX2 restriction (to reproduce a CPU
    # without bf16) must not leak it into the native case
    base = {k: v for k, v in os.environ.items() if k not in AVX2}
    env = {**base, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", **extra_env}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def fresh_probe():
    dev.cpu_bf16_native.cache_clear()
    yield
    dev.cpu_bf16_native.cache_clear()


def test_auto_picks_fp32_on_a_cpu_without_native_bf16():
    """Restricting oneDNN to AVX2 really makes bf16 slow (checked here, so the test means something), the flags
    still say avx512_bf16 — and auto decides fp32 anyway, because the probe measures."""
    r = resolve_in_subprocess(AVX2)
    assert r["bf16_s"] > 2 * r["fp32_s"], r  # the restriction slows bf16 GEMMs (measured ~7x here)
    assert r["device"] == "cpu" and r["dtype"] == "float32", r
    assert "fp32" in r["why"], r


def test_auto_picks_bf16_where_the_cpu_computes_it_natively():
    flags = dev.cpu_flags() or set()
    if not any(f in flags for f in dev.CPU_BF16_FLAGS):
        pytest.skip("this CPU has no native bf16")
    r = resolve_in_subprocess({})
    assert r["bf16_s"] < r["fp32_s"], r
    assert r["dtype"] == "bfloat16" and "native bf16" in r["why"], r


def test_cpu_decision_rules(monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(dev, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(dev, "gemm_seconds", lambda *a, **k: pytest.fail("no probe needed: the flags rule bf16 out"))
    assert dev.cpu_bf16_native() == (False, "no avx512_bf16/amx_bf16 in /proc/cpuinfo, fp32")
    dev.cpu_bf16_native.cache_clear()
    import torch

    monkeypatch.setattr(dev, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(dev, "gemm_seconds", lambda dtypes, *a, **k: [0.007 if d == torch.bfloat16 else 0.001
                                                                        for d in dtypes])
    native, how = dev.cpu_bf16_native()
    assert not native and "7.00x" in how  # flags say yes, the GEMM says no: fp32
    dev.cpu_bf16_native.cache_clear()
    monkeypatch.setattr(dev, "gemm_seconds", lambda dtypes, *a, **k: [0.0002 if d == torch.bfloat16 else 0.001
                                                                        for d in dtypes])
    assert dev.cpu_bf16_native()[0]
    dev.cpu_bf16_native.cache_clear()
    monkeypatch.setattr(dev, "cpu_flags", lambda: None)  # no /proc/cpuinfo (macOS): the probe decides
    assert dev.cpu_bf16_native()[0]


def test_explicit_values_are_honoured():
    c = dev.resolve("cpu", "fp16")
    assert (c.device, c.kind, c.dtype, c.why) == ("cpu", "cpu", "float16", "as set; dtype as set")
    assert dev.resolve("cpu", "bf16").dtype == "bfloat16"
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        dev.resolve("gpu", "auto")


def test_cuda_asked_for_without_a_gpu_names_the_param():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert dev.resolve("auto", "auto").device == "cpu"
    with pytest.raises(ParamsError, match=r"params.yaml:\d+: ifd.device: cuda:1 was asked for but torch sees no CUDA"):
        dev.resolve("cuda:1", "auto", "ifd")


def test_params_checks():
    assert IFDParams().device == IFDParams().dtype == "auto"  # the defaults: the param text stays `auto`
    assert LLMParams().device == LLMParams().dtype == EvalParams().dtype == EvalParams().device == "auto"
    p = load_params(ROOT / "params.yaml")
    assert (p.ifd.device, p.ifd.dtype, p.llm.device, p.llm.dtype, p.eval.device, p.eval.dtype) == ("auto",) * 6
    with pytest.raises(ParamsError, match=r"ifd.dtype: unknown dtype 'bfloat15' \(did you mean bfloat16\?\)"):
        IFDParams.from_params({"dtype": "bfloat15"})
    with pytest.raises(ParamsError, match=r"llm.device: unknown device 'gpu'; use auto, cpu, cuda or cuda:N"):
        LLMParams.from_params({"device": "gpu"})
    with pytest.raises(ParamsError, match=r"eval.device: unknown device 'cuda:x'"):
        EvalParams.from_params({"device": "cuda:x"})
    with pytest.raises(ParamsError, match=r"ifd.max_batch_tokens: 100 must be at least ifd.max_length \(512\)"):
        IFDParams.from_params({"max_batch_tokens": 100})
    with pytest.raises(ParamsError, match=r"ifd.batch_size: must be auto or a positive integer"):
        IFDParams.from_params({"batch_size": 0})
    assert IFDParams.from_params({"batch_size": 16, "max_batch_tokens": 4096, "device": "cuda:1"}).batch_size == 16


def test_cache_keys_separate_precisions_and_devices():
    """The key names body dtype, head dtype and (off the CPU) the device kind; the CPU's key has no device part, so
    caches made on a CPU stay valid. Built without loading the model (the cache comes first)."""
    from vad.compute.device import Compute
    from vad.core.config import IFDParams
    from vad.quality.ifd.scorer import IFDScorer

    def key(device, dtype, **kw):
        s = IFDScorer(IFDParams(**kw), compute=Compute(device, dtype, "test"), cache=False, progress=False)
        assert s.kernel._lm is None  # nothing loaded
        return s.ctx.dtype, s.batch_size, s.max_batch_tokens

    assert key("cpu", "bfloat16") == ("bfloat16/head-bfloat16", 8, None)
    assert key("cpu", "float32") == ("float32/head-float32", 8, None)
    assert key("cpu", "float16") == ("float16/head-float32", 8, None)  # fp16 GEMMs are slow on CPUs: fp32 head
    assert key("cuda:1", "bfloat16") == ("bfloat16/head-bfloat16@cuda", 1024, 65536)
    assert key("cuda:0", "float16", batch_size=64, max_batch_tokens=8192) == ("float16/head-float16@cuda", 64, 8192)
