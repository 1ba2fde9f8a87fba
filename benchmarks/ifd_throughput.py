"""IFD scorer throughput: the stage's batched scorer vs the literal bs=1 fp32 full-logits reference.

    .venv/bin/python benchmarks/ifd_throughput.py [--n 200] [--block 40] [--no-fp32] [--device auto|cpu|cuda]

Records: build/merge/merged.jsonl if it exists, else the hand-written data/raw/manual/*.jsonl rows; when there are
fewer than --n distinct rows, the set is filled with deterministic mismatched pairs (instruction i + answer j),
which have realistic lengths (the results say how many of each).

What is measured (same process, same threads, model loaded once; the machine may be shared, so the 1-minute load
average is recorded next to every figure):
1. tokens/s, interleaved in blocks of --block records so both see the same contention: the stage scorer (params.yaml
   `ifd`, no cache, on --device) on a block, then the reference (vad/quality/ifd/reference.py: bs=1, fp32, full
   logits, on the same device) on the same block; also the scorer with dtype float32 on the first --fp32-blocks
   blocks unless --no-fp32 (its rate is over those blocks). Tokens = real tokens of both sequences of each record.
2. max / mean |ΔIFD| and Spearman between the scorer and the reference over all records.
3. full scoring of the n records with a cold score cache (a fresh SQLite file), then re-scoring after 2 new records
   are added (n + 2 records, warm cache): time ratio.
4. a cost model: GEMM FLOPs the reference and the scorer need for these records (body ~2·params per token, lm_head
   2·V·H per position that gets logits), and this machine's measured GEMM rate in fp32 and in the scorer's dtype.
   Their ratio is the speedup an exact scorer could reach if every GEMM ran at peak: the ceiling for figure 1. Also
   the share of that GEMM peak the scorer reaches (its FLOPs / its seconds / the peak in its dtype; goal >= 85%).
Writes benchmarks/results/ifd_throughput.json."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vad.quality.ifd.kernel  # noqa: E402, F401  (first: sets OMP_WAIT_POLICY before torch loads)
from vad.quality.ifd import scorer as ifd  # noqa: E402
from vad.quality.ifd.types import IFDScore  # noqa: E402
from vad.core.io import iter_jsonl  # noqa: E402
from vad.core.config import load_params  # noqa: E402


def load_rows(n: int) -> tuple[list[tuple[str, str, str]], dict]:
    merged = ROOT / "build/merge/merged.jsonl"
    files = [merged] if merged.exists() else sorted((ROOT / "data/raw/manual").glob("*.jsonl"))
    rows, seen = [], set()
    for f in files:
        for _n, _raw, o in iter_jsonl(f):
            t = (o.get("instruction", ""), o.get("input", "") or "", o.get("output", ""))
            if t[0] and t[2].strip() and t not in seen:
                seen.add(t)
                rows.append(t)
    base = rows[:n]
    k, extra = 1, []
    while len(base) + len(extra) < n + 2 and len(rows) > 1:
        for i in range(len(rows)):
            t = (rows[i][0], rows[i][1], rows[(i + k) % len(rows)][2])
            if t not in seen:
                seen.add(t)
                extra.append(t)
            if len(base) + len(extra) >= n + 2:
                break
        k += 1
    allrows = base + extra
    info = {"source": str(files[0].relative_to(ROOT)) if merged.exists() else "data/raw/manual/*.jsonl",
            "distinct_rows": len(rows), "used_real": min(len(rows), n), "used_mismatched_fill": max(0, n - len(rows))}
    return allrows[:n + 2], info


def load() -> float:
    return round(os.getloadavg()[0], 2)


def gemm_gflops(dtype, device: str = "cpu", seconds: float = 1.0) -> float:
    """Sustained GEMM rate on head-shaped operands (the shape of the scorer's lm_head tiles on this device): GEMMs
    back to back for `seconds` after a warm-up, averaged (the scorer runs sustained, so its peak is measured so)."""
    import torch

    from vad.quality.ifd.head import TILES

    m, n = TILES["cuda" if device.startswith("cuda") else "cpu"]
    k = 640
    a, b = torch.randn(m, k, device=device).to(dtype), torch.randn(n, k, device=device).to(dtype)
    torch.mm(a, b.t())
    sync(device)
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        torch.mm(a, b.t())
        reps += 1
        if reps % 8 == 0:
            sync(device)
    sync(device)
    return round(2 * m * k * n * reps / (time.perf_counter() - t) / 1e9, 1)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cost_model(model, refs: list, dtype_name: str, device: str, scorer_seconds: float) -> dict:
    import torch

    head = model.get_output_embeddings().weight
    head_flop = 2 * head.numel()
    body_params = sum(p.numel() for n, p in model.base_model.named_parameters() if "embed" not in n)
    body_flop = 2 * body_params
    all_tok = sum(r["n_tokens"] for r in refs if r)
    ans_tok = sum(2 * len(r["answer_ids"]) for r in refs if r)
    ref_gflop = all_tok * (body_flop + head_flop) / 1e9
    scorer_gflop = (all_tok * body_flop + ans_tok * head_flop) / 1e9
    fp32 = gemm_gflops(torch.float32, device)
    fast = gemm_gflops(getattr(torch, dtype_name), device) if dtype_name != "float32" else fp32
    reached = scorer_gflop / scorer_seconds if scorer_seconds else 0.0
    return {"body_gflop_per_token": round(body_flop / 1e9, 3), "head_gflop_per_position": round(head_flop / 1e9, 3),
            "answer_share_of_tokens": round(ans_tok / all_tok, 3), "reference_gflop": round(ref_gflop, 1),
            "scorer_gflop": round(scorer_gflop, 1), "gemm_gflops": {"float32": fp32, dtype_name: fast},
            "speedup_ceiling_at_gemm_peak": round((ref_gflop / fp32) / (scorer_gflop / fast), 2),
            "scorer_gflops_reached": round(reached, 1),
            "share_of_gemm_peak": round(reached / fast, 3) if fast else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--block", type=int, default=40)
    ap.add_argument("--no-fp32", action="store_true")
    ap.add_argument("--fp32-blocks", type=int, default=2, help="blocks also scored by a float32 scorer")
    ap.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: params.yaml ifd.device)")
    ap.add_argument("--dtype", default=None, help="default: params.yaml ifd.dtype")
    a = ap.parse_args()

    import torch

    from vad.quality.ifd.reference import reference_score
    from vad.quality.ifd.cache import IFDCache
    from vad.quality.ifd.templates import get_template
    from vad.compute.models import load_causal_lm
    from scipy.stats import spearmanr

    params = load_params(ROOT / "params.yaml").ifd
    params = params.replace(**{k: v for k, v in (("device", a.device), ("dtype", a.dtype)) if v})
    rows, data_info = load_rows(a.n)
    items, new2 = rows[:a.n], rows[a.n:a.n + 2]
    print(f"{len(items)} records ({data_info}); params: {params}", flush=True)

    t0 = time.perf_counter()
    scorer = ifd.IFDScorer.from_params(params, cache=False, progress=False)
    load_s = time.perf_counter() - t0
    device = scorer.compute.device
    ref_lm = load_causal_lm(params.model, "float32", device=device)
    fp32 = None if a.no_fp32 or scorer.compute.dtype == "float32" else \
        ifd.IFDScorer.from_params(params.replace(dtype="float32"), cache=False, progress=False)
    tpl = get_template(params.template)
    torch.set_num_threads(scorer.threads)

    # 1 + 2: interleaved blocks ----------------------------------------------------------------------
    acc = {"scorer": [0, 0.0], "reference": [0, 0.0], "scorer_fp32": [0, 0.0]}
    loads, got, refs = [], [], []
    for b in range(0, len(items), a.block):
        blk = items[b:b + a.block]
        loads.append(load())
        t = time.perf_counter()
        res = scorer.score(blk)
        sync(device)
        acc["scorer"][1] += time.perf_counter() - t
        acc["scorer"][0] += scorer.stats.tokens
        got += res
        if fp32 is not None and b // a.block < a.fp32_blocks:
            t = time.perf_counter()
            fp32.score(blk)
            sync(device)
            acc["scorer_fp32"][1] += time.perf_counter() - t
            acc["scorer_fp32"][0] += fp32.stats.tokens
        t = time.perf_counter()
        for it, r0 in zip(blk, res):
            if isinstance(r0, IFDScore):
                r = reference_score(ref_lm, tpl, *it, scorer.max_length)
                acc["reference"][0] += r["n_tokens"]
                refs.append(r)
            else:
                refs.append(None)
        acc["reference"][1] += time.perf_counter() - t
        tps = {k: round(v[0] / v[1], 1) for k, v in acc.items() if v[1]}
        print(f"  block {b // a.block + 1}: {len(refs)}/{len(items)} records, tokens/s so far {tps}, load {load()}",
              flush=True)
    loads.append(load())
    pairs = [(g.ifd, r["ifd"]) for g, r in zip(got, refs) if r is not None]
    d = [abs(x - y) for x, y in pairs]
    tps = {k: round(v[0] / v[1], 1) for k, v in acc.items() if v[1]}

    cost = cost_model(scorer.kernel.lm.model, refs, scorer.head_dtype, device, acc["scorer"][1])
    if fp32 is not None and acc["scorer_fp32"][1]:  # its blocks need the scorer's FLOPs per token
        per_token = cost["scorer_gflop"] / acc["scorer"][0]
        reached = per_token * acc["scorer_fp32"][0] / acc["scorer_fp32"][1]
        cost["scorer_fp32_gflops_reached"] = round(reached, 1)
        cost["share_of_gemm_peak_fp32"] = round(reached / cost["gemm_gflops"]["float32"], 3)

    # 3: cold full run, then +2 new records ------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        cache = IFDCache(Path(tmp) / "ifd.sqlite")
        sc = ifd.IFDScorer.from_params(params, cache=cache, progress=True)
        l0 = load()
        t = time.perf_counter()
        sc.score(items)
        full_s = time.perf_counter() - t
        full_stats = sc.stats.as_metrics()
        t = time.perf_counter()
        sc.score(items + new2)
        inc_s = time.perf_counter() - t
        inc_stats = sc.stats.as_metrics()
        t = time.perf_counter()
        sc.score(items + new2)
        warm_s = time.perf_counter() - t
        l1 = load()
        cache.close()

    out = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"compute": scorer.compute.describe(), "cpus": len(os.sched_getaffinity(0)),
                    "torch_threads": scorer.threads,
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "python": platform.python_version(),
                    "torch": torch.__version__, "load_avg_1m_during_blocks": loads,
                    "load_avg_1m_full_run": [l0, l1]},
        "data": {**data_info, "n": len(items)},
        "params": {k: getattr(params, k) for k in ifd.SCORE_PARAMS},
        "resolved": {"device": device, "dtype": scorer.compute.dtype, "batch_size": scorer.batch_size,
                     "max_batch_tokens": scorer.max_batch_tokens},
        "model_load_seconds_first": round(load_s, 2),
        "tokens_per_s": tps,
        "speedup_vs_reference": round(tps["scorer"] / tps["reference"], 2),
        "speedup_fp32_scorer_vs_reference": round(tps["scorer_fp32"] / tps["reference"], 2) if fp32 else None,
        "fp32_scorer_blocks": a.fp32_blocks if fp32 else 0,
        "cost_model": cost,
        "tokens": {k: v[0] for k, v in acc.items()},
        "seconds": {k: round(v[1], 2) for k, v in acc.items()},
        "ifd_vs_reference": {"records": len(pairs), "max_abs_delta": round(max(d), 6),
                             "mean_abs_delta": round(sum(d) / len(d), 6),
                             "spearman": round(float(spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic), 5)},
        "full_cold_cache": {"seconds": round(full_s, 2), **full_stats},
        "rescore_plus_2": {"seconds": round(inc_s, 3), "ratio_to_full": round(inc_s / full_s, 4), **inc_stats},
        "rescore_no_change": {"seconds": round(warm_s, 3)},
        "goals": {"speedup>=5": tps["scorer"] / tps["reference"] >= 5, "rescore<=2%": inc_s / full_s <= 0.02,
                  "gemm_peak_share>=0.85": (cost["share_of_gemm_peak"] or 0) >= 0.85},
    }
    dest = ROOT / f"benchmarks/results/ifd_throughput{'' if scorer.compute.kind == 'cpu' else '_' + scorer.compute.kind}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
