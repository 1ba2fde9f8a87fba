"""What `dtype: auto` picks on this CPU, natively and with oneDNN/ATen restricted to AVX2 (a CPU without native
bf16, reproduced), and the IFD scorer's tokens/s with it — plus, for the restricted CPU, what bf16 would have cost.

    .venv/bin/python benchmarks/compute_auto.py [--n 12] [--n-bf16 3]

Each case runs in its own process (the restriction must be set before torch loads): the resolver's choice and
reason, the probe's GEMM rates, then the scorer (params.yaml `ifd`, no cache) on the first --n hand-written
records. Writes benchmarks/results/compute_auto.json. The machine may be shared: the 1-minute load average is
recorded next to every figure."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESTRICTED = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}

CASE = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import vad.quality.ifd_score as ifd
import torch
from vad.compute.device import gemm_seconds, resolve
from vad.core.config import load_params
from vad.core.io import iter_jsonl
from pathlib import Path

n, dtype = int(sys.argv[2]), sys.argv[3]
c = resolve("auto", "auto", "ifd")
shape = (512, 640, 8192)
rate = {d: round(2 * 512 * 640 * 8192 / t / 1e9, 1)
        for d, t in zip(("float32", "bfloat16"), gemm_seconds((torch.float32, torch.bfloat16), shape))}
rows = []
for f in sorted((Path(sys.argv[1]) / "data/raw/manual").glob("*.jsonl")):
    rows += [(o["instruction"], o.get("input", "") or "", o["output"]) for _n, _r, o in iter_jsonl(f)]
params = load_params(Path(sys.argv[1]) / "params.yaml").ifd.replace(dtype=dtype)
sc = ifd.IFDScorer.from_params(params, cache=False, progress=False)
sc.score(rows[:1])  # load + warm-up
load0 = os.getloadavg()[0]
t = time.perf_counter()
sc.score(rows[1:n + 1])
dt = time.perf_counter() - t
print(json.dumps({"auto": {"device": c.device, "dtype": c.dtype, "why": c.why}, "gemm_gflops_512x640x8192": rate,
                  "scored_dtype": sc.compute.dtype, "records": n, "tokens": sc.stats.tokens,
                  "seconds": round(dt, 2), "tokens_per_s": round(sc.stats.tokens / dt, 1),
                  "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}))
"""


def run_case(env: dict[str, str], n: int, dtype: str) -> dict:
    e = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **env}
    out = subprocess.run([sys.executable, "-c", CASE, str(ROOT), str(n), dtype], env=e, capture_output=True,
                         text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="records scored per case")
    ap.add_argument("--n-bf16", type=int, default=3, help="records scored in bf16 on the restricted CPU (slow)")
    a = ap.parse_args()
    cases = {}
    for name, env, n, dtype in (("native", {}, a.n, "auto"), ("restricted_avx2", RESTRICTED, a.n, "auto"),
                                ("restricted_avx2_forced_bf16", RESTRICTED, a.n_bf16, "bfloat16")):
        if n <= 0:
            continue
        print(f"{name} ...", flush=True)
        cases[name] = run_case(env, n, dtype)
        print(json.dumps(cases[name], ensure_ascii=False), flush=True)
    out = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": len(os.sched_getaffinity(0)),
           "restricted_env": RESTRICTED, "cases": cases}
    if "restricted_avx2_forced_bf16" in cases:
        r = cases["restricted_avx2"]["tokens_per_s"] / cases["restricted_avx2_forced_bf16"]["tokens_per_s"]
        out["restricted_auto_vs_bf16_speedup"] = round(r, 1)
    dest = ROOT / "benchmarks/results/compute_auto.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
