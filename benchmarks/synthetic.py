"""A synthetic hand-written corpus of any size, for scale benchmarks (never for training).

Records are distinct Chinese texts spread evenly over the 12 values: clauses of the bundled manual data in random
orders, at its lengths (so language ID, MinHash and tokenisation cost what they cost on real text), plus a
known share of exact duplicates (same text, other whitespace) and near duplicates (a few characters changed:
Jaccard of character 3-grams well above merge.near_dup_threshold).

    from synthetic import write_manual_corpus
    counts = write_manual_corpus(folder, n=30000, exact_share=0.03, near_share=0.03, seed=0)"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vad.core.taxonomy import LEVELS  # noqa: E402

PUNCT = "，。；？"


def _clauses(manual_dir: Path) -> tuple[list[str], list[str]]:
    """Clauses (split at Chinese punctuation) of the bundled instructions and outputs, and the Han characters."""
    clauses, chars = set(), set()
    for f in sorted(manual_dir.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            for text in (obj["instruction"], obj["output"]):
                chars.update(c for c in text if "\u4e00" <= c <= "\u9fff")
                clauses.update(c.strip() for c in re.split(r"[，。；？！、：\n]", text) if len(c.strip()) >= 4)
    return sorted(clauses), sorted(chars)


def _text(rng: random.Random, clauses: list[str], n_chars: int, end: str) -> str:
    """Real clauses in a random order, joined with Chinese punctuation, about n_chars long."""
    out: list[str] = []
    while sum(map(len, out)) < n_chars:
        out.append(rng.choice(clauses))
    return "".join(c + rng.choice(PUNCT[:2]) for c in out[:-1]) + out[-1] + end


def _near(rng: random.Random, text: str, chars: list[str]) -> str:
    t = list(text)
    for i in rng.sample(range(len(t) - 1), max(1, len(t) // 40)):  # 2.5% of characters replaced
        t[i] = rng.choice(chars)
    return "".join(t)


def write_manual_corpus(folder: Path, n: int, exact_share: float = 0.03, near_share: float = 0.03,
                        seed: int = 0, manual_dir: Path = ROOT / "data/raw/manual") -> dict[str, int]:
    """Write n records as data/raw/manual-style files (one per value) into `folder`; returns the counts."""
    rng = random.Random(seed)
    clauses, chars = _clauses(manual_dir)
    pairs = [(lvl, v) for lvl, vals in LEVELS.items() for v in vals]
    n_exact, n_near = round(n * exact_share), round(n * near_share)
    n_distinct = n - n_exact - n_near
    rows: list[dict] = []
    for i in range(n_distinct):
        lvl, v = pairs[i % len(pairs)]
        rows.append({"instruction": _text(rng, clauses, rng.randint(15, 60), "？"), "input": "",
                     "output": _text(rng, clauses, rng.randint(80, 400), "。"),
                     "categorization": {"level": lvl, "value": v}})
    base = list(rows)
    for _ in range(n_exact):
        src = rng.choice(base)
        rows.append({**src, "output": " " + src["output"] + "\n"})  # same after whitespace normalisation
    for _ in range(n_near):
        src = rng.choice(base)
        rows.append({**src, "output": _near(rng, src["output"], chars)})
    rng.shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_pair.setdefault((r["categorization"]["level"], r["categorization"]["value"]), []).append(r)
    for (lvl, v), rs in by_pair.items():
        name = f"{lvl}_{pairs.index((lvl, v)):02d}.jsonl"
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs), encoding="utf-8")
    return {"records": n, "distinct": n_distinct, "exact_duplicates": n_exact, "near_duplicates": n_near,
            "files": len(by_pair)}
