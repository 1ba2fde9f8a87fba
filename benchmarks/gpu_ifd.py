"""IFD on one GPU without the real weights: the Gemma 3 270M architecture with random weights, built from its
config (same shapes, same FLOPs), through the stage's scorer.

    python benchmarks/gpu_ifd.py --files build/gpu_ifd/model-files [--device cuda] [--n 30000] [--n-check 64]

(`bash benchmarks/gpu_ifd.sh` prepares the files here and runs this there.) Needs torch and transformers only —
no network, no vad dependencies beyond them — and `--files`: a folder with the model's config.json and tokenizer
files (~33 MB). Measures, writing JSON to --out (default benchmarks/results/gpu_ifd.json):

1. the batched scorer vs the literal bs=1 fp32 full-logits reference (vad/quality/ifd/reference.py) on the same
   device, on --n-check records: tokens/s of both, max |Δloss|, max |ΔIFD|, Spearman. Random weights make every
   IFD ≈ 1 (a near-uniform model), so the losses are the figures to read; the real-model check is
   tests/test_ifd_cuda.py.
2. --n synthetic records (Chinese text of realistic lengths: ~530 tokens per record over both sequences, like the
   bundled data) through the scorer with a fresh score cache, as the stage runs it: seconds, tokens/s, GEMM
   TFLOP/s reached vs this device's measured bf16 GEMM peak, peak GPU memory, peak RSS. Goal: 30k records under a
   minute on one H200.
3. the same --n records again, all cached: seconds and RSS (no tokenising, no model)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# common Chinese characters and punctuation: the synthetic texts tokenise like real ones (mostly 1 token per char)
CHARS = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而"
         "方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应"
         "开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命"
         "此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求"
         "老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理世车"
         "诚信友善平等公正法治爱国敬业和谐文明自由富强民主责任尊重帮助保护环境健康安全教育家庭朋友社会国家")
PUNCT = "，。？！、；："


def synthetic(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        k = rng.randint(lo, hi)
        return "".join(rng.choice(PUNCT) if rng.random() < 0.08 else rng.choice(CHARS) for _ in range(k))

    return [(text(8, 60), text(0, 40) if rng.random() < 0.1 else "", text(30, 420)) for _ in range(n)]


def rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def build_model(files: Path, out: Path, dtype: str) -> Path:
    """A model folder: random weights from the config (seeded), the tokenizer files copied."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(files)
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model.save_pretrained(out, safe_serialization=True)
    for f in files.iterdir():
        if f.name != "config.json" and f.is_file():
            shutil.copy(f, out / f.name)
    return out


def gemm_tflops(device: str, dtype, m: int = 8192, k: int = 640, n: int = 16384, reps: int = 10) -> float:
    import torch

    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(n, k, device=device).to(dtype)
    torch.mm(a, b.t())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b.t())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return round(2 * m * k * n * reps / (time.perf_counter() - t) / 1e12, 2)


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(x):
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        for pos, i in enumerate(order):
            r[i] = float(pos)
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return round(cov / (va * vb), 5) if va and vb else float("nan")


def ifd_params(model: str, compute, max_batch_tokens):
    """The `ifd` params of a run, as attributes (the GPU machine has torch and transformers, not pydantic: no
    IFDParams there); the rest as params.yaml's defaults."""
    from types import SimpleNamespace

    return SimpleNamespace(model=model, template="alpaca_zh_v1", max_length=512, device=compute.device,
                           dtype=compute.dtype, batch_size="auto", max_batch_tokens=max_batch_tokens,
                           executor="local", ray_actors=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=Path, default=ROOT / "build/gpu_ifd/model-files")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--n-check", type=int, default=64)
    ap.add_argument("--max-batch-tokens", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_ifd.json")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vad-gpu-ifd-"))
    os.environ["VAD_MODEL_DIR"] = str(work / "models")  # the fingerprint memo
    os.environ["VAD_CACHE_DIR"] = str(work / "cache")
    import torch

    from vad.compute.device import resolve
    from vad.compute.models import load_causal_lm
    from vad.quality.ifd.cache import IFDCache
    from vad.quality.ifd.reference import reference_score
    from vad.quality.ifd.types import IFDScore
    from vad.quality.ifd.scorer import IFDScorer

    compute = resolve(a.device, a.dtype, "ifd")
    print(f"device: {compute}", flush=True)
    t = time.perf_counter()
    model_dir = build_model(a.files, work / "gemma3-270m-random", compute.dtype)
    build_s = time.perf_counter() - t
    records = synthetic(a.n + a.n_check)
    check, bulk = records[:a.n_check], records[a.n_check:]
    cuda = compute.kind == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # 1. scorer vs reference on the same device ------------------------------------------------------
    sc = IFDScorer(ifd_params(str(model_dir), compute, a.max_batch_tokens), cache=False, progress=False)
    sc.score(check[:2])  # warm-up (kernels, allocator)
    sync()
    t = time.perf_counter()
    got = sc.score(check)
    sync()
    sc_s, sc_tok = time.perf_counter() - t, sc.stats.tokens
    ref_lm = load_causal_lm(str(model_dir), "float32", device=compute.device)
    t = time.perf_counter()
    refs = [reference_score(ref_lm, sc.template, *r, sc.max_length) for r in check]
    sync()
    ref_s = time.perf_counter() - t
    ref_tok = sum(r["n_tokens"] for r in refs)
    pairs = [(g, r) for g, r in zip(got, refs) if isinstance(g, IFDScore)]
    dl = max(max(abs(g.loss_cond - r["loss_cond"]), abs(g.loss_direct - r["loss_direct"])) for g, r in pairs)
    di = max(abs(g.ifd - r["ifd"]) for g, r in pairs)
    del ref_lm
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    # 2. the bulk run, as the stage runs it (fresh cache) --------------------------------------------
    cache = IFDCache(work / "cache" / "ifd.sqlite")
    sc = IFDScorer(ifd_params(str(model_dir), compute, a.max_batch_tokens), cache=cache, progress=True)
    t = time.perf_counter()
    res = sc.score(bulk)
    sync()
    bulk_s = time.perf_counter() - t
    bulk_stats = sc.stats.as_metrics()
    peak_gpu = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    lm = sc.kernel.lm.model
    head_flop = 2 * lm.get_output_embeddings().weight.numel()
    body_flop = 2 * sum(p.numel() for n, p in lm.base_model.named_parameters() if "embed" not in n)
    answer_tokens = 2 * sum(r.n_answer_tokens for r in res if isinstance(r, IFDScore))
    flop = sc.stats.tokens * body_flop + answer_tokens * head_flop
    peak = gemm_tflops(compute.device, compute.torch_dtype) if cuda else None

    # 3. all cached -----------------------------------------------------------------------------------
    sc2 = IFDScorer(ifd_params(str(model_dir), compute, "auto"), cache=cache, progress=False)
    t = time.perf_counter()
    sc2.score(bulk)
    cached_s = time.perf_counter() - t

    out = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"device": compute.describe(), "torch": torch.__version__, "python": platform.python_version(),
                    "cpus": os.cpu_count(), "cuda": torch.version.cuda if cuda else None},
        "model": "gemma3-270m architecture, random weights (seeded) from its config.json",
        "build_model_seconds": round(build_s, 1),
        "scorer_vs_reference": {
            "records": len(pairs), "scorer_tokens_per_s": round(sc_tok / sc_s, 1),
            "reference_tokens_per_s": round(ref_tok / ref_s, 1), "speedup": round((sc_tok / sc_s) / (ref_tok / ref_s), 1),
            "max_abs_delta_loss": round(dl, 5), "max_abs_delta_ifd": round(di, 5),
            "spearman_ifd": spearman([g.ifd for g, _ in pairs], [r["ifd"] for _, r in pairs]),
            "spearman_loss_cond": spearman([g.loss_cond for g, _ in pairs], [r["loss_cond"] for _, r in pairs])},
        "bulk": {"records": len(bulk), "seconds": round(bulk_s, 2),
                 "records_per_s": round(len(bulk) / bulk_s, 1), **bulk_stats,
                 "model_tflop": round(flop / 1e12, 1),
                 "achieved_tflops": round(flop / 1e12 / bulk_stats["score_seconds"], 1) if bulk_stats["score_seconds"] else None,
                 "gemm_peak_tflops": peak,
                 "share_of_gemm_peak": round(flop / 1e12 / bulk_stats["score_seconds"] / peak, 3) if peak else None,
                 "peak_gpu_memory_gib": peak_gpu, "goal_under_60s": bulk_s < 60},
        "all_cached": {"seconds": round(cached_s, 2), "cache_hits": sc2.stats.cache_hits,
                       "model_loaded": sc2._lm is not None},
        "peak_rss_mb": rss_mb(),
    }
    text = json.dumps(out, ensure_ascii=False, indent=2)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text + "\n", encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
