"""Where a model runs and in which precision: the one resolver shared by the IFD scorer, the local LLM backend and
the eval scorer (params `device` and `dtype` of the `ifd`, `llm` and `eval` sections).

    device: auto | cpu | cuda | cuda:N        dtype: auto | bfloat16 | float16 | float32

`auto` picks CUDA when torch sees a GPU (bf16 where the GPU computes it, else fp16), otherwise the CPU in its fastest
exact-enough dtype: bf16 only where the CPU computes it natively, fp32 otherwise (docs/methods.md §6: on a CPU
without avx512_bf16/AMX a bf16 GEMM runs ~10-140x slower than fp32). Whether the CPU is native is decided by a GEMM
probe of a few ms — the /proc/cpuinfo flags only rule it out early, because they do not see a restricted oneDNN
(`ONEDNN_MAX_CPU_ISA=AVX2` makes bf16 slow on a CPU whose flags still say avx512_bf16).

The params keep their text (`auto`), so moving between machines does not make DVC rerun a stage; what was resolved
goes into metrics, lineage and cache keys, so results of another precision or device never mix."""
from __future__ import annotations

import functools
import logging
import platform
import time
from dataclasses import dataclass
from typing import Any

from vad.core import devices as names

log = logging.getLogger(__name__)

# The probe: a head-shaped GEMM (rows x hidden by hidden x vocab tile) on one thread, bf16 and fp32 in turn,
# PROBE_REPS times each after a warm-up, best of each. bf16 must beat fp32 to be chosen: natively it ran ~5x
# faster here, restricted to AVX2 ~7x slower. One thread and interleaving keep a busy machine from deciding: with
# two threads on a loaded 2-core machine a descheduled thread stalled every GEMM (a 0.2 ms one took 5 ms).
PROBE_SHAPE = (128, 512, 1024)
PROBE_REPS = 5
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags of a native bf16 dot product (AVX512-BF16, AMX)


@dataclass(frozen=True)
class Compute:
    """A resolved (device, dtype). `device` is what torch takes (`cpu`, `cuda:0`); `kind` (`cpu`, `cuda`) is what
    keys and lineage record: two GPUs of one run compute the same thing."""

    device: str
    dtype: str
    why: str
    device_name: str = ""

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]

    @property
    def torch_device(self):
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "device_name": self.device_name, "dtype": self.dtype, "why": self.why}

    def __str__(self) -> str:
        return f"{self.device} ({self.device_name}) in {self.dtype}: {self.why}"


def resolve(device: str = "auto", dtype: str = "auto", section: str = "") -> Compute:
    """Resolve the params `<section>.device` and `<section>.dtype`. A device that is not there is a ParamsError
    naming the key; an explicit dtype is honoured as given."""
    import torch

    key = f"{section}.device" if section else "device"
    if not names.is_device(device):
        raise ValueError(f"unknown device {device!r}; use {names.DEVICE_HELP}")
    if not names.is_dtype(dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use {names.DTYPE_HELP}")
    dtype = dtype if dtype == "auto" else names.DTYPE_ALIASES[dtype]
    if device == "auto":
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        where = "auto: " + ("torch sees a CUDA GPU" if device != "cpu" else "no CUDA GPU")
    else:
        where = "as set"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            from vad.core.config import ParamsError

            raise ParamsError(key, f"{device} was asked for but torch sees no CUDA GPU (torch {torch.__version__}, "
                                   "a CPU build or no driver); use auto or cpu")
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            from vad.core.config import ParamsError

            raise ParamsError(key, f"{device} was asked for but there are {torch.cuda.device_count()} CUDA GPUs")
        device = f"cuda:{index}"
        name = torch.cuda.get_device_name(index)
        if dtype == "auto":
            bf16 = torch.cuda.is_bf16_supported()
            dtype = "bfloat16" if bf16 else "float16"
            why = f"{where}; dtype auto: {'bf16' if bf16 else 'no bf16 on this GPU, fp16'}"
        else:
            why = f"{where}; dtype as set"
        return Compute(device, dtype, why, name)
    name = cpu_name()
    if dtype == "auto":
        native, how = cpu_bf16_native()
        dtype = "bfloat16" if native else "float32"
        why = f"{where}; dtype auto: {how}"
    else:
        why = f"{where}; dtype as set"
    return Compute("cpu", dtype, why, name)


def _cpuinfo(*prefixes: str) -> str | None:
    """The value of the first /proc/cpuinfo line starting with one of `prefixes` (Linux), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(prefixes):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where there is none."""
    line = _cpuinfo("flags", "Features")
    return None if line is None else set(line.split())


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def gemm_seconds(dtypes, shape: tuple[int, int, int] = PROBE_SHAPE, reps: int = PROBE_REPS,
                 threads: int | None = None) -> list[float]:
    """Best time of one (m x k) @ (k x n) GEMM on the CPU per dtype, the dtypes taking turns (after a warm-up
    call each); `threads`: torch threads meanwhile (None = as set)."""
    import torch

    m, k, n = shape
    ops = [(torch.randn(m, k).to(d), torch.randn(n, k).to(d)) for d in dtypes]
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for a, b in ops:
            torch.mm(a, b.t())  # warm-up: oneDNN builds its kernel on the first call
        best = [float("inf")] * len(ops)
        for _ in range(reps):
            for i, (a, b) in enumerate(ops):
                t = time.perf_counter()
                torch.mm(a, b.t())
                best[i] = min(best[i], time.perf_counter() - t)
    finally:
        torch.set_num_threads(old)
    return best


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> tuple[bool, str]:
    """(does this CPU compute bf16 GEMMs faster than fp32, how that was decided). Memoised per process."""
    import torch

    flags = cpu_flags()
    if flags is not None and platform.machine().lower() in ("x86_64", "amd64", "i686") \
            and not any(f in flags for f in CPU_BF16_FLAGS):
        return False, f"no {'/'.join(CPU_BF16_FLAGS)} in /proc/cpuinfo, fp32"
    t16, t32 = gemm_seconds((torch.bfloat16, torch.float32), threads=1)
    ratio = t16 / t32
    native = ratio < 1.0
    how = (f"probe: a bf16 GEMM takes {ratio:.2f}x the fp32 time ({t16 * 1e3:.2f} vs {t32 * 1e3:.2f} ms), "
           + ("native bf16" if native else "no native bf16, fp32"))
    log.debug("cpu bf16 probe: %s", how)
    return native, how


@functools.lru_cache(maxsize=1)
def _libc_trim():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def trim_heap() -> None:
    """Hand memory freed by torch on the CPU back to the OS. glibc keeps freed blocks of varying sizes in its free
    lists: scoring batches of changing shapes grew the IFD scorer's RSS by ~2 GB over 293 records (to 3.1 GB); a
    trim after each batch takes about a millisecond."""
    trim = _libc_trim()
    if trim is not None:
        trim(0)
