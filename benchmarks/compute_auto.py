"""What `dtype: auto` picks on this CPU, natively and with oneDNN/ATen restricted to AVX2 (a CPU without native
bf16, reproduced), and the ifd_score stage's tokens/s with it — plus, for the restricted CPU, what bf16 would cost.

    .venv/bin/python benchmarks/compute_auto.py [--n 12] [--n-bf16 3]

Each case runs the stage as DVC does (`python stages/ifd_score.py`, its own process: the restriction must be set
before torch loads) in a scratch project whose build/merge/merged.jsonl holds the first --n hand-written records,
with an empty score cache; the figures are the stage's own metrics (`ifd_compute`: the choice and why;
`tokens_per_s`). Also the GEMM rates the choice rests on (512x640 by 640x8192, best of 5). Writes
benchmarks/results/compute_auto.json. The machine may be shared: the 1-minute load average is recorded."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESTRICTED = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
GEMM = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from vad.compute.device import gemm_seconds
ts = gemm_seconds((torch.float32, torch.bfloat16), (512, 640, 8192))
print(json.dumps({d: round(2 * 512 * 640 * 8192 / t / 1e9, 1) for d, t in zip(("float32", "bfloat16"), ts)}))
"""


def scratch_project(tmp: Path, name: str, n: int, dtype: str) -> Path:
    from vad.core.io import iter_jsonl, write_jsonl
    from vad.core.record import Record

    p = tmp / name
    p.mkdir()
    shutil.copy(ROOT / "dvc.yaml", p / "dvc.yaml")
    params = (ROOT / "params.yaml").read_text(encoding="utf-8")
    start = params.index("\nifd:\n")
    params = params[:start] + re.sub(r"\n  dtype: auto ", f"\n  dtype: {dtype} ", params[start:], count=1)
    (p / "params.yaml").write_text(params, encoding="utf-8")
    for d in ("expectations", "stages"):
        shutil.copytree(ROOT / d, p / d)
    rows = []
    for f in sorted((ROOT / "data/raw/manual").glob("*.jsonl")):
        rows += [o for _n, _r, o in iter_jsonl(f)]
    recs = [Record(instruction=o["instruction"], input=o.get("input", "") or "", output=o["output"], source="manual",
                   categorization=o["categorization"]) for o in rows[:n]]
    (p / "build/merge").mkdir(parents=True)
    write_jsonl(p / "build/merge/merged.jsonl", recs)
    return p


def run_case(tmp: Path, name: str, env: dict[str, str], n: int, dtype: str) -> dict:
    e = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT), "VAD_CACHE_DIR": str(tmp / f"cache-{name}"),
         **env}
    gemm = subprocess.run([sys.executable, "-c", GEMM, str(ROOT)], env=e, capture_output=True, text=True, check=True)
    proj = scratch_project(tmp, name, n, dtype)
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "stages/ifd_score.py"], cwd=proj, env=e, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    m = json.loads((proj / "build/metrics/ifd_score.json").read_text())
    return {"ifd_compute": m["ifd_compute"], "gemm_gflops": json.loads(gemm.stdout), "records": m["scored"],
            "tokens": m["tokens"], "tokens_per_s": m["tokens_per_s"], "stage_seconds": round(time.perf_counter() - t, 1),
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="records scored per case")
    ap.add_argument("--n-bf16", type=int, default=3, help="records scored in bf16 on the restricted CPU (slow)")
    a = ap.parse_args()
    cases = {}
    with tempfile.TemporaryDirectory() as t:
        for name, env, n, dtype in (("native", {}, a.n, "auto"), ("restricted_avx2", RESTRICTED, a.n, "auto"),
                                    ("restricted_avx2_forced_bf16", RESTRICTED, a.n_bf16, "bfloat16")):
            if n > 0:
                print(f"{name} ...", flush=True)
                cases[name] = run_case(Path(t), name, env, n, dtype)
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
