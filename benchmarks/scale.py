"""The pipeline at the paper's scale: N synthetic hand-written records built through the real DVC pipeline.

    python benchmarks/scale.py --n 30000 [--ifd-sample 200] [--real-sample 40] [--keep DIR]

What it does, in a temporary copy of the project (git ls-files + the bundled data):
1. data/raw/manual is replaced by N synthetic records (benchmarks/synthetic.py: distinct Chinese texts over the 12
   values, 3% exact and 3% near duplicates) with a fresh PROVENANCE.json; the LLM stages get no work
   (evol.seed_limit 0, translate.limit 0: they are measured by benchmarks/evolve_scale.py and
   llm_concurrency.py), so the build measures vad's own overhead.
2. IFD uses a tiny randomly initialised causal LM with the real Gemma tokenizer and vocabulary (its 262k-row head
   still costs ~34 MFLOP and 262k exps per answer token however small the body is), so ifd_score scores only
   --ifd-sample records: the score cache is seeded with synthetic scores for all the others (said in the output).
   Every other stage runs on all N.
3. Each stage runs as `dvc repro --single-item <stage>` in pipeline order; per stage: wall seconds (DVC included),
   the stage's own seconds (its metrics) and peak RSS (the largest process: dvc or the stage).
4. The default model is timed on --real-sample records (the scorer the stage uses, cache off) and extrapolated
   to the N records' token count.
5. DVC cache: its size after the build, after editing one character of one record (and the seconds of that
   rebuild), and the seconds and growth of one queued `dvc exp` (ifd.min).
Prints a table and writes benchmarks/results/scale.json."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from synthetic import write_manual_corpus  # noqa: E402

from vad.core.pipeline import DATASET  # noqa: E402

BIN = Path(sys.executable).parent


def sh(cmd: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, shell=True, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r


def run_py(code: str, proj: Path, env: dict) -> dict:
    """Run a snippet in the project (its own code and caches); it prints one JSON line last."""
    script = proj.parent / "snippet.py"
    script.write_text(code, encoding="utf-8")
    r = sh(f"{sys.executable} {script}", proj, env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_measured(cmd: str, cwd: Path, env: dict) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of the largest process of `cmd` (ru_maxrss of the reaped child tree)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, shell=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    out = p.stdout.read()
    _pid, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed:\n{out[-5000:]}")
    return dt, usage.ru_maxrss // 1024


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def make_project(tmp: Path, env: dict) -> Path:
    proj = tmp / "proj"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if (ROOT / rel).is_file():
            (proj / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, proj / rel)
    sh("git init -q -b main && git config user.name scale && git config user.email scale@example.org", proj, env)
    sh("dvc pull -q data.dvc", proj, env)
    return proj


def make_tiny_lm(dest: Path, proj: Path, env: dict) -> Path:
    """Gemma 3's architecture and tokenizer with a tiny random body (2 layers, hidden 64). Made in a subprocess:
    this process stays small, so the peak RSS measured for each stage is the stage's own (a forked child starts
    with its parent's resident pages)."""
    run_py(f"""
import json, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from vad.compute.models import resolve
real = resolve("gemma3-270m")
cfg = AutoConfig.from_pretrained(real)
cfg.update({{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 1,
            "num_key_value_heads": 1, "head_dim": 64, "layer_types": ["sliding_attention", "full_attention"]}})
torch.manual_seed(0)
AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained({str(dest)!r}, safe_serialization=True)
AutoTokenizer.from_pretrained(real).save_pretrained({str(dest)!r})
print(json.dumps({{"tiny_lm": {str(dest)!r}}}))
""", proj, env)
    return dest


def set_params(proj: Path, **changes) -> None:
    import yaml

    p = proj / "params.yaml"
    params = yaml.safe_load(p.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        sec, key = dotted.split(".", 1)
        params[sec][key] = value
    p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def seed_ifd_cache(proj: Path, env: dict, sample: int, seed: int = 0) -> dict:
    """Synthetic cached scores for all merged records but a random `sample`, under the stage's own cache key."""
    code = f"""
import json, random, sys
from pathlib import Path
from vad.core.config import load_params
from vad.core.io import read_records
from vad.quality.ifd.cache import CachedScore, IFDCache, text_sha
from vad.quality.ifd.scorer import IFDScorer
recs = read_records("build/merge/merged.jsonl")
rng = random.Random({seed})
keep = set(rng.sample(range(len(recs)), min({sample}, len(recs))))
scorer = IFDScorer.from_params(load_params().ifd, progress=False)
scores = {{}}
for i, r in enumerate(recs):
    if i in keep:
        continue
    lc = 1.5 + rng.random()  # IFDs spread like the default model's on the manual data (p10 0.935, p90 0.98)
    scores[text_sha(r.instruction, r.input, r.output)] = CachedScore(lc, lc / rng.uniform(0.92, 0.995), 100, False)
scorer.cache.put_many(scorer.ctx, scores)
print(json.dumps({{"merged": len(recs), "seeded": len(scores), "to_score": len(recs) - len(scores)}}))
"""
    return run_py(code, proj, env)


def time_real_model(proj: Path, env: dict, n: int) -> dict:
    """tok/s of the default model with the stage's scorer (no cache) on n merged records, and the corpus's tokens."""
    code = f"""
import json, random, time
from vad.core.config import load_params
from vad.core.io import read_records
from vad.quality.ifd.scorer import IFDScorer
from vad.quality.ifd.encode import encode_many
recs = read_records("build/merge/merged.jsonl")
params = load_params().ifd.replace(model="gemma3-270m")
sc = IFDScorer.from_params(params, cache=False, progress=False)
items = [(r.instruction, r.input, r.output) for r in recs]
enc = [e for e in encode_many(sc.kernel.tokenizer, sc.template, items, sc.max_length) if hasattr(e, "cond_ids")]
total = sum(len(e.cond_ids) + len(e.direct_ids) for e in enc)
sample = random.Random(0).sample(items, {n})
t = time.perf_counter(); sc.score(sample); dt = time.perf_counter() - t
tps = sc.stats.tokens / dt
print(json.dumps({{"sample_records": {n}, "tokens_per_s": round(tps, 1), "corpus_tokens": total,
                  "dtype": sc.describe()["dtype"], "extrapolated_seconds": round(total / tps)}}))
"""
    return run_py(code, proj, env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--ifd-sample", type=int, default=200, help="records ifd_score really scores (tiny model)")
    ap.add_argument("--real-sample", type=int, default=40, help="records timed with the default model (0: skip)")
    ap.add_argument("--keep", default=None, help="build in this folder and keep it (default: a temporary one)")
    a = ap.parse_args()

    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="vad-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "VAD_CACHE_DIR": str(tmp / "cache"), "PYTHONPATH": str(tmp / "proj")}
    env.setdefault("VAD_MODEL_DIR", str(ROOT / "build/cache/models"))
    proj = make_project(tmp, env)
    env["PYTHONPATH"] = str(proj)
    manual = proj / "data/raw/manual"
    t = time.perf_counter()
    corpus = write_manual_corpus(tmp / "synthetic", a.n, manual_dir=manual)  # clauses of the bundled data
    gen_s = time.perf_counter() - t
    for f in manual.glob("*.jsonl"):
        f.unlink()
    for f in (tmp / "synthetic").glob("*.jsonl"):
        shutil.move(f, manual / f.name)
    sh(f"{sys.executable} -m vad.cli provenance {manual} --update", proj, env)
    tiny = make_tiny_lm(tmp / "tiny-lm", proj, env)
    set_params(proj, **{"evol.seed_limit": 0, "translate.limit": 0, "ifd.model": str(tiny)})
    sh("git add -A && git commit -qm scale", proj, env)

    rows, seeded = [], None
    for stage in DATASET:
        if stage == "ifd_score":
            seeded = seed_ifd_cache(proj, env, a.ifd_sample)
        dt, rss = run_measured(f"dvc repro --single-item {stage}", proj, env)
        m = json.loads((proj / f"build/metrics/{stage}.json").read_text(encoding="utf-8"))
        rows.append({"stage": stage, "wall_s": round(dt, 1), "stage_s": m.get("seconds"), "peak_rss_mb": rss,
                     "in": m.get("in"), "out": m.get("out"), "ledgered": m.get("ledgered")})
        print(f"{stage:<14} {dt:7.1f} s  (stage {m.get('seconds')} s)  {rss:6d} MB  in {m.get('in')} "
              f"out {m.get('out')} ledgered {m.get('ledgered')}", flush=True)
    sizes = {p.relative_to(proj).as_posix(): p.stat().st_size for p in (proj / "build").rglob("*")
             if p.is_file() and "cache" not in p.parts}
    cache0 = du(proj / ".dvc/cache")

    # one character of one record changes
    f = sorted(manual.glob("*.jsonl"))[0]
    lines = f.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[0])
    obj["output"] = obj["output"][:-1] + ("！" if obj["output"][-1] != "！" else "。")
    lines[0] = json.dumps(obj, ensure_ascii=False)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sh(f"{sys.executable} -m vad.cli provenance {manual} --update", proj, env)
    edit_s, edit_rss = run_measured("dvc repro", proj, env)
    cache1 = du(proj / ".dvc/cache")
    sh("git add -A && git commit -qm edit", proj, env)
    exp_s, _ = run_measured("dvc exp run --queue -S ifd.min=0.95 && dvc exp run --run-all", proj, env)
    cache2 = du(proj / ".dvc/cache")

    real = time_real_model(proj, env, a.real_sample) if a.real_sample else None
    other = [r for r in rows if r["stage"] not in ("ifd_score", "evolve", "translate")]
    result = {
        "n": a.n, "corpus": corpus, "generate_seconds": round(gen_s, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "native_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text()
                    or "amx_bf16" in Path("/proc/cpuinfo").read_text(),
                    "load_1min_at_end": round(os.getloadavg()[0], 2)},
        "stages": rows,
        "other_stages_wall_s": round(sum(r["wall_s"] for r in other), 1),
        "ifd_score_cache": {**(seeded or {}), "note": "all but the sample came from a seeded score cache"},
        "outputs_bytes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:12]),
        "dvc_cache_mb": {"after_build": round(cache0 / 2**20, 1), "after_one_char_edit": round(cache1 / 2**20, 1),
                         "after_one_queued_exp": round(cache2 / 2**20, 1)},
        "one_char_edit_rebuild_s": round(edit_s, 1), "one_char_edit_peak_rss_mb": edit_rss,
        "queued_exp_s": round(exp_s, 1),
        "default_model_ifd": real,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}, ensure_ascii=False, indent=1))
    out = ROOT / "benchmarks/results/scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
