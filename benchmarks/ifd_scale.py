"""The ifd_score stage at the paper's scale, on this machine: a fully cached 30k run, and a run killed mid-way.

    .venv/bin/python benchmarks/ifd_scale.py [--n 30000] [--kill-after 90]

1. cached: --n synthetic records (benchmarks/synthetic.py: clauses of the bundled data) in a scratch project's
   build/merge/merged.jsonl, every score already in the cache (filled directly, under the stage's own cache key);
   the stage is run as DVC runs it (`python stages/ifd_score.py`, its own process): seconds and peak RSS. Nothing
   may be tokenised or loaded.
2. killed: the stage on the same records with an empty cache, `kill -9` after --kill-after seconds; then what the
   cache kept (whole scores and single finished sequences) against the sequences the run had finished (it prints
   one line per finished batch, before the batch is committed). Also its peak RSS up to then.
Writes benchmarks/results/ifd_scale.json. The machine may be shared: load averages are recorded."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# The stage with a line per finished batch on stdout (after the forward pass, before its commit) and, at exit,
# the peak RSS: the child of case 2 (case 1 runs the stage script as it is and reads its peak RSS via wait4).
CHILD = r"""
import os, resource, sys
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
from vad.quality.ifd import kernel
real = kernel.Kernel._losses
def counted(self, batch):
    out = real(self, batch)
    print(f"batch {len(batch)}", flush=True)
    return out
kernel.Kernel._losses = counted
from vad.core.stage import run_script
run_script(os.path.join(sys.argv[1], "stages", "ifd_score.py"))
"""


def project(tmp: Path, n: int) -> Path:
    from synthetic import write_manual_corpus

    from vad.core.io import iter_jsonl, write_jsonl
    from vad.core.record import Record

    p = tmp / "proj"
    p.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, p / name)
    for d in ("expectations", "stages"):
        shutil.copytree(ROOT / d, p / d)
    write_manual_corpus(tmp / "manual", n, exact_share=0, near_share=0, seed=1)
    recs = [Record(instruction=o["instruction"], input=o["input"], output=o["output"], source="manual",
                   categorization=o["categorization"])
            for f in sorted((tmp / "manual").glob("*.jsonl")) for _n, _r, o in iter_jsonl(f)]
    (p / "build/merge").mkdir(parents=True)
    write_jsonl(p / "build/merge/merged.jsonl", recs)
    return p


def fill_cache(proj: Path, env: dict[str, str]) -> int:
    """Every record's score in the cache, under the key the stage will use (resolved here, as the stage does)."""
    os.environ.update(env)
    from vad.core.config import load_params
    from vad.core.io import read_records
    from vad.quality.ifd.cache import CachedScore, IFDCache, text_sha
    from vad.quality.ifd.scorer import IFDScorer

    sc = IFDScorer.from_params(load_params(proj / "params.yaml").ifd, cache=IFDCache(), progress=False)
    recs = read_records(proj / "build/merge/merged.jsonl")
    sc.cache.put_many(sc.ctx, {text_sha(r.instruction, r.input, r.output): CachedScore(2.0, 2.1, 10, False)
                               for r in recs})
    return len(sc.cache)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--kill-after", type=float, default=90.0)
    a = ap.parse_args()
    out: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": len(os.sched_getaffinity(0)), "n": a.n}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        proj = project(tmp, a.n)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VAD_CACHE_DIR": str(tmp / "cache")}
        # the project's prepared model (preparing it in the scratch project would be measured instead: ~40 s, 3 GB)
        env.setdefault("VAD_MODEL_DIR", str(ROOT / "build/cache/models"))
        # 1. fully cached ---------------------------------------------------------------------------------
        filled = fill_cache(proj, {k: env[k] for k in ("VAD_CACHE_DIR", "VAD_MODEL_DIR")})
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "stages/ifd_score.py"], cwd=proj, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _pid, status, usage = os.wait4(child.pid, 0)
        secs = time.perf_counter() - t0
        m = json.loads((proj / "build/metrics/ifd_score.json").read_text())
        out["cached"] = {"records": filled, "seconds": round(secs, 1), "peak_rss_mb": usage.ru_maxrss // 1024,
                         "exit": os.waitstatus_to_exitcode(status), "cache_hits": m["cache_hits"],
                         "scored": m["scored"], "forward_batches": m["forward_batches"],
                         "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        print(json.dumps(out["cached"]), flush=True)
        # 2. killed mid-way ------------------------------------------------------------------------------
        env["VAD_CACHE_DIR"] = str(tmp / "cache2")
        load0 = os.getloadavg()[0]
        log = tmp / "batches.txt"
        with log.open("w") as f:
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(proj)], env=env, stdout=f,
                                     stderr=subprocess.DEVNULL)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < a.kill_after and child.poll() is None:
                time.sleep(0.2)
            child.send_signal(signal.SIGKILL)
            _pid, _status, usage = os.wait4(child.pid, 0)
        finished = sum(int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("batch "))
        os.environ["VAD_CACHE_DIR"] = env["VAD_CACHE_DIR"]
        from vad.quality.ifd.cache import IFDCache

        c = IFDCache()
        whole, part = len(c), c.partial_count()
        out["killed"] = {"after_s": a.kill_after, "sequences_finished": finished, "whole_scores_kept": whole,
                         "single_sequences_kept": part, "sequences_kept": 2 * whole + part,
                         "kept_share": round((2 * whole + part) / finished, 4) if finished else None,
                         "peak_rss_mb": usage.ru_maxrss // 1024,
                         "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        print(json.dumps(out["killed"]), flush=True)
    dest = ROOT / "benchmarks/results/ifd_scale.json"
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
