"""How the review app copes with a 29k-sample-scale queue: a synthetic 30,000-record build/judge/judged.jsonl
(manual / evol / translated, ~1 kB of Chinese text each), a merge ledger with 3,000 duplicates, 664 seeds and a
decision log of 5,000 lines, served by a real `vad review serve` process.

Measures (median of --repeat runs, wall clock): server start (process start → index built → /healthz answers),
first page (/ → the first pending record), next record, a filter change (queue page, and the first record of the
filtered queue), a decision (POST) and the page after it; the server's resident memory; the record page's size
(the queue is never sent to the browser).

    .venv/bin/python benchmarks/review_app.py [--records 30000] [--repeat 5]
Writes benchmarks/results/review_app.json."""
from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers: tests/support/

from tests.support.review_server import Server  # noqa: E402

from vad.core.record import Lineage, Record, dumps, sha256_text  # noqa: E402
from vad.core.taxonomy import LEVELS  # noqa: E402
from vad.review import log  # noqa: E402

PHRASES = ("诚实守信是做人的根本", "遇到困难要主动沟通", "遵守法律法规", "尊重他人的选择", "保护环境人人有责",
           "在工作中认真负责", "关心身边需要帮助的人", "理性看待网络上的信息", "依法维护自己的合法权益",
           "家庭和睦需要相互体谅", "公共场合要讲文明", "珍惜粮食、反对浪费")


def text(rng: random.Random, n: int) -> str:
    return "，".join(rng.choice(PHRASES) for _ in range(n)) + "。"


def build(root: Path, n: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, root / name)
    (root / "review").mkdir()
    shutil.copy(ROOT / "review/guidelines.md", root / "review/guidelines.md")
    pairs = [(lvl, v) for lvl, vals in LEVELS.items() for v in vals]
    seeds = [Record(instruction=f"种子{k}：" + text(rng, 3), input="", output="", source="evol",
                    categorization=dict(zip(("level", "value"), rng.choice(pairs))),
                    lineage=Lineage(origin={"file": "data/raw/cvalues/p.jsonl", "line": k + 1, "sha256": "0" * 64}))
             for k in range(664)]
    recs = []
    for i in range(n):
        src = rng.choices(("manual", "evol", "translated"), (6, 3, 1))[0]
        lvl, val = rng.choice(pairs)
        meta = {"ifd": {"ifd": round(rng.uniform(0.94, 0.999), 6)}}
        parents = []
        if src == "evol":
            s = rng.choice(seeds)
            parents = [s.id]
            meta["evol"] = {"op": rng.choice(("constraints", "deepening", "breadth")), "round": rng.randint(1, 4)}
        if src == "translated":
            meta["original"] = {"instruction": "How should I deal with this honestly? " * 3,
                                "output": "Be honest and talk to them. " * 20, "rejected": "Lie."}
        recs.append(Record(instruction=f"第{i}个问题：" + text(rng, 4) + "我该怎么做？", input="",
                           output=text(rng, 40), source=src, categorization={"level": lvl, "value": val},
                           lineage=Lineage(origin={"file": f"data/raw/{src}/f.jsonl", "line": i + 1,
                                                   "sha256": sha256_text(str(i))}, parents=parents,
                                           ops=[{"stage": "merge", "op": "merge"}]),
                           meta=meta))
    for rel, rows in (("build/judge/judged.jsonl", recs), ("build/seeds/seeds.jsonl", seeds)):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(dumps(r.to_dict()) + "\n" for r in rows), encoding="utf-8")
    dups = []
    for k in range(3000):
        kept = rng.choice(recs)
        d = Record.from_dict({**kept.to_dict(), "id": "", "output": kept.output + f"（{k}）"})
        dups.append({"stage": "merge", "id": d.id, "reason": "near_duplicate", "detail": "Jaccard 0.9",
                     "dup_of": kept.id, "jaccard": 0.9, "record": d.to_dict()})
    p = root / "build/ledger/merge.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(dumps(e) + "\n" for e in dups), encoding="utf-8")
    decisions = [log.new_decision(recs[i], rng.choice(("wang", "li")), "accept") for i in rng.sample(range(n), 5000)]
    log.append(root / "review/decisions.jsonl", decisions)
    size = (root / "build/judge/judged.jsonl").stat().st_size
    return {"records": n, "selected_mb": round(size / 2**20, 1), "decision_lines": len(decisions),
            "merge_ledger_duplicates": len(dups), "seeds": len(seeds)}


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def data_next(html: str) -> str:
    return html.split('data-next="', 1)[1].split('"', 1)[0].replace("&amp;", "&")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=30000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/review_app.json"))
    args = ap.parse_args()
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = build(root, args.records)
        rss, page_bytes = [], 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            srv = Server(root, "wang").wait(timeout=600)
            runs.setdefault("server_start_s", []).append(time.perf_counter() - t0)
            proc = psutil.Process(srv.proc.pid)
            with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}, timeout=120, follow_redirects=True) as c:
                dt, r = timed(lambda: c.get("/"))
                runs.setdefault("first_page_s", []).append(dt)
                page_bytes = len(r.content)
                dt, r = timed(lambda: c.get(data_next(r.text)))
                runs.setdefault("next_record_s", []).append(dt)
                flt = "/queue?state=pending&source=evol&level=social&ifd_min=0.95&ifd_max=0.99"
                dt, q = timed(lambda: c.get(flt))
                runs.setdefault("filter_change_queue_page_s", []).append(dt)
                first = q.text.split('id="start" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
                dt, r = timed(lambda: c.get(first))
                runs.setdefault("filter_change_first_record_s", []).append(dt)
                html = r.text
                rid = html.split('data-id="', 1)[1].split('"', 1)[0]
                sha = html.split('data-sha="', 1)[1].split('"', 1)[0]
                qs = html.split('data-query="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
                dt, d = timed(lambda: c.post("/api/decide", json={"id": rid, "sha256": sha, "query": qs,
                                                                  "decision": "accept"}))
                assert d.status_code == 200, d.text
                runs.setdefault("decision_post_s", []).append(dt)
                dt, _ = timed(lambda: c.get(d.json()["next"]))
                runs.setdefault("page_after_decision_s", []).append(dt)
            rss.append(proc.memory_info().rss / 2**20)
            srv.stop()
    figures = {k: round(statistics.median(v), 4) for k, v in runs.items()}
    out = {
        "benchmark": "review_app", "corpus": corpus, "repeat": args.repeat, "median": figures,
        "all_runs": {k: [round(x, 4) for x in v] for k, v in runs.items()},
        "server_rss_mb": round(statistics.median(rss), 1), "record_page_kb": round(page_bytes / 1024, 1),
        "machine": {"python": platform.python_version(), "cpus": psutil.cpu_count(),
                    "load_avg_1m": round(psutil.getloadavg()[0], 2)},
        "note": "wall clock on a shared 2-core machine (other jobs running): compare runs on a quiet machine",
    }
    print(json.dumps(out, ensure_ascii=False, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
