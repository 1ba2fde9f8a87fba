"""Evolve at full scale against a local fake OpenAI-compatible endpoint: all 664 CValues seeds (evol.seed_limit
664), a fixed latency per request (default 200 ms) and llm.concurrency 16. Prints calls/s, the funnel, the
estimate (`vad llm estimate`) next to what was spent, and a rerun's cache hits (goal: all, zero calls).

The stages run as in the pipeline (stages/seeds.py, stages/evolve.py, in process) in a copy of the project with
the bundled CValues prompts; the fake model (tests/support/fake_model.py: plausible Chinese rewrites, judge
verdicts and answers) answers over real HTTP (tests/support/fake_openai.py).

    .venv/bin/python benchmarks/evolve_scale.py [--latency 0.2] [--concurrency 16] [--seeds 664] [--rounds 2]
Writes benchmarks/results/evolve_scale.json."""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers: tests/support/

from tests.support.fake_model import fake_model  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.llm_stages import set_llm_params  # noqa: E402

from vad import cli  # noqa: E402
from vad.core import paths  # noqa: E402
from vad.core.stage import run_script  # noqa: E402


def project_copy(dest: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for d in ("expectations", "stages", paths.RAW_CVALUES):
        shutil.copytree(ROOT / d, dest / d)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per request at the fake endpoint")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=664, help="evol.seed_limit")
    ap.add_argument("--rounds", type=int, default=2, help="evol.rounds")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/evolve_scale.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        proj = Path(tmp) / "project"
        proj.mkdir()
        project_copy(proj)
        os.environ["VAD_CACHE_DIR"] = str(Path(tmp) / "cache")
        os.chdir(proj)
        run_script(proj / "stages/seeds.py")
        with FakeOpenAI(fake_model, latency_s=args.latency) as srv:
            set_llm_params(proj, srv, evol={"seed_limit": args.seeds, "rounds": args.rounds},
                           llm={"concurrency": args.concurrency, "timeout_s": 30, "max_retries": 2})
            buf = io.StringIO()
            with redirect_stdout(buf):
                assert cli.main(["llm", "estimate", "evolve", "--json"]) == 0
            est = json.loads(buf.getvalue())["total"]
            t0 = time.perf_counter()
            m = run_script(proj / "stages/evolve.py")
            wall = time.perf_counter() - t0
            requests = srv.count
            t0 = time.perf_counter()
            m2 = run_script(proj / "stages/evolve.py")
            wall2 = time.perf_counter() - t0
            rerun_requests = srv.count - requests
        os.chdir(ROOT)
    llm, llm2 = m["llm"], m2["llm"]
    result = {
        "benchmark": "evolve_scale",
        "latency_s": args.latency, "concurrency": args.concurrency, "seed_limit": args.seeds, "rounds": args.rounds,
        "seeds_used": m["seeds_used"],
        "first_run": {"wall_s": round(wall, 2), "llm_s": llm["seconds"], "http_requests": requests,
                      "calls": llm["calls"], "cache_hits": llm["cache_hits"], "reasks": llm["reasks"],
                      "calls_per_s": round(llm["calls"] / llm["seconds"], 2) if llm["seconds"] else None,
                      "ideal_calls_per_s": round(args.concurrency / args.latency, 2) if args.latency else None,
                      "out": m["out"], "ledgered": m["ledgered"], "consumed": m["consumed"]},
        "rerun": {"wall_s": round(wall2, 2), "http_requests": rerun_requests, "calls": llm2["calls"],
                  "cache_hits": llm2["cache_hits"], "all_from_cache": rerun_requests == 0 and llm2["calls"] == 0
                  and llm2["cache_hits"] == llm["calls"] + llm["cache_hits"]},
        "estimate": {"calls": est["calls"], "calls_max": est["calls_max"], "made": llm["calls"]},
        "funnel": m["funnel"],
        "eliminated_by_rule": m["eliminated_by_rule"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "shared 2-core machine, other jobs running: figures are disturbed"},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    f = result["first_run"]
    print(f"evolve: {m['seeds_used']} seeds x {args.rounds} rounds, fake endpoint {args.latency * 1000:.0f} ms/request, "
          f"concurrency {args.concurrency}")
    print(f"first run: {f['calls']} calls in {f['llm_s']:.1f} s of LLM steps ({f['wall_s']:.1f} s wall): "
          f"{f['calls_per_s']} calls/s (ideal {f['ideal_calls_per_s']}); {f['reasks']} re-asks; "
          f"{f['out']} evolutions out, {f['ledgered']} ledgered, {f['consumed']} seeds consumed")
    print(f"estimate beforehand: {est['calls']} first asks (≤ {est['calls_max']} with re-asks); made {llm['calls']}")
    r = result["rerun"]
    print(f"rerun: {r['http_requests']} requests, {r['calls']} calls, {r['cache_hits']} cache hits "
          f"({r['wall_s']:.1f} s wall) — all from cache: {r['all_from_cache']}")
    print("funnel: " + ", ".join(f"{k} {v}" for k, v in m["funnel"].items()))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
