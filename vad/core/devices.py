"""The values the `device` and `dtype` params may take (checked by vad/core/config.py, resolved by
vad/compute/device.py). In core, apart from the resolver, so that every stage's params check depends on these
names only, and core imports no package above it."""
from __future__ import annotations

import re

DTYPES = ("bfloat16", "float16", "float32")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", **{d: d for d in DTYPES}}
DTYPE_CHOICES = ("auto", *DTYPE_ALIASES)
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"
DTYPE_HELP = "auto, bfloat16, float16 or float32"


def is_device(v: object) -> bool:
    return isinstance(v, str) and bool(DEVICE_RE.match(v))


def is_dtype(v: object) -> bool:
    return v in DTYPE_CHOICES
