"""How much the openai backend's thread pool buys against a slow endpoint, and what a warm cache costs.

Fake OpenAI-compatible server (tests/support/fake_openai.py) with a fixed latency per request; N distinct tasks with
concurrency 1 and 16, each with a fresh cache; then the 16 case again on its warm cache (goal: 0 calls).

    .venv/bin/python benchmarks/llm_concurrency.py [--n 64] [--latency 0.2]
Writes benchmarks/results/llm_concurrency.json."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers: tests/support/

from tests.support.fake_openai import FakeOpenAI  # noqa: E402

from vad.core.config import LLMParams
from vad.llm import GenerationTask, load_template, make_client, run_tasks  # noqa: E402


def run(srv: FakeOpenAI, cache: Path, concurrency: int, n: int) -> dict:
    os.environ["VAD_CACHE_DIR"] = str(cache)
    cfg = LLMParams(backend="openai", base_url=srv.base_url, model="fake-model", concurrency=concurrency,
                    timeout_s=30, max_retries=2)
    client = make_client(cfg)
    tmpl = load_template("_selftest")
    tasks = [GenerationTask(key=f"b{i}", prompt=tmpl.render(instruction=f"第{i}个问题：什么是诚信？", input=""))
             for i in range(n)]
    before = srv.count
    t0 = time.perf_counter()
    res = run_tasks(client, tasks, stage="bench", desc=f"concurrency {concurrency}", progress=False)
    dt = time.perf_counter() - t0
    st = client.stats("bench")
    client.close()
    assert all(r.ok for r in res), [r for r in res if not r.ok][:3]
    return {"concurrency": concurrency, "tasks": n, "seconds": round(dt, 3), "http_requests": srv.count - before,
            "calls": st["calls"], "cache_hits": st["cache_hits"], "calls_per_s": round(st["calls"] / dt, 2),
            "tasks_per_s": round(n / dt, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/llm_concurrency.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(latency_s=args.latency) as srv:
        c1 = run(srv, Path(tmp) / "c1", 1, args.n)
        c16 = run(srv, Path(tmp) / "c16", 16, args.n)
        warm = run(srv, Path(tmp) / "c16", 16, args.n)
    speedup = c16["calls_per_s"] / c1["calls_per_s"]
    result = {
        "benchmark": "llm_concurrency",
        "latency_s": args.latency,
        "n_tasks": args.n,
        "concurrency_1": c1,
        "concurrency_16": c16,
        "speedup_16_vs_1": round(speedup, 2),
        "warm_cache_16": warm,
        "warm_cache_calls": warm["http_requests"],
        "goals": {"speedup_ge_10": speedup >= 10, "warm_cache_zero_calls": warm["http_requests"] == 0},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"latency {args.latency * 1000:.0f} ms, {args.n} distinct tasks")
    print(f"concurrency  1: {c1['calls_per_s']:7.2f} calls/s ({c1['seconds']:.2f} s)")
    print(f"concurrency 16: {c16['calls_per_s']:7.2f} calls/s ({c16['seconds']:.2f} s)  speed-up {speedup:.1f}x")
    print(f"warm cache, concurrency 16: {warm['http_requests']} calls, {warm['cache_hits']} cache hits "
          f"({warm['seconds']:.3f} s)")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
