"""IFD selection: keep records in the band min ≤ IFD < max, then optionally the highest-IFD share of those.

Scoring (vad/quality/ifd_score.py with vad/quality/ifd/, expensive, cached) is split from selecting (here, cheap), as data-juicer splits
compute_stats from process: changing `ifd.min`, `ifd.max` or `ifd.top_fraction` reruns only this.

* IFD < min → `ifd_below_min`: the answer is predictable without the instruction (too easy).
* IFD ≥ max (default 1.0) → `ifd_at_or_above_max`: the instruction does not help predict the answer
  (misaligned pair, Cherry/Superfiltering drop these).
* top_fraction f < 1: of the records in the band, the ⌊f·n + 1e-9⌋ with the highest IFD are kept (ties broken by
  record id, so the choice is deterministic); the rest → `ifd_not_in_top_fraction`.

Every drop carries the score (`ifd` in the ledger entry, and in the detail text). Kept records get the op
{"stage": "ifd_select", "op": "ifd_select", "ifd": ...} appended to their lineage."""
from __future__ import annotations

import csv
import math
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from vad.core.errors import InputError
from vad.core.record import Record

STAGE = "ifd_select"
BELOW_MIN = "ifd_below_min"
AT_OR_ABOVE_MAX = "ifd_at_or_above_max"
NOT_IN_TOP = "ifd_not_in_top_fraction"
LEDGER_REASONS = {
    BELOW_MIN: "IFD below `ifd.min`",
    AT_OR_ABOVE_MAX: "IFD at or above `ifd.max` (the instruction does not help the answer: misaligned)",
    NOT_IN_TOP: "in the band, but not in the top `ifd.top_fraction` of it",
}
SELECT_PARAMS = ("min", "max", "top_fraction")  # the `ifd` params of the selection (ifd_score reads the others)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
BIN_WIDTH = 0.05


def ifd_of(rec: Record) -> float:
    try:
        v = rec.meta["ifd"]["ifd"]
    except (KeyError, TypeError):
        raise InputError(f"record {rec.id}", "has no meta.ifd.ifd score: run the ifd_score stage first") from None
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(f"record {rec.id}", f"meta.ifd.ifd is not a finite number: {v!r}")
    return float(v)


def quantiles(values: list[float], qs: tuple[float, ...] = QUANTILES) -> dict[str, float]:
    """Linear-interpolation quantiles (numpy's default method), rounded to 6 decimals; {} when empty."""
    v = sorted(values)
    out: dict[str, float] = {}
    if not v:
        return out
    for q in qs:
        pos = q * (len(v) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(v) - 1)
        out[f"p{round(q * 100)}"] = round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 6)
    return out


def _slug(s: str) -> str:
    """A metric-key-safe form of a source/level/value name (Chinese characters are kept)."""
    return re.sub(r"[^\w]+", "_", str(s)).strip("_") or "none"


def select(records: list[Record], params: "IFDParams", run) -> tuple[list[Record], dict[str, Any]]:
    """Apply the band and the top share; drops go to `run` (a StageRun). Returns (kept, metrics)."""
    lo, hi, frac = params.min, params.max, params.top_fraction
    scores = {r.id: ifd_of(r) for r in records}

    band = []
    for rec in records:
        v = scores[rec.id]
        if v < lo:
            run.drop(rec, BELOW_MIN, f"ifd={v:.6f} < min {lo}", ifd=v)
        elif v >= hi:
            run.drop(rec, AT_OR_ABOVE_MAX, f"ifd={v:.6f} >= max {hi} (instruction does not help: misaligned)",
                     ifd=v)
        else:
            band.append(rec)

    n_keep = math.floor(frac * len(band) + 1e-9)
    ranked = sorted(band, key=lambda r: (-scores[r.id], r.id))
    keep_ids = {r.id for r in ranked[:n_keep]}
    cutoff = scores[ranked[n_keep - 1].id] if 0 < n_keep < len(band) else None
    kept = []
    for rec in band:  # input order is kept in the output
        v = scores[rec.id]
        if rec.id in keep_ids:
            rec.add_op(STAGE, "ifd_select", ifd=v)
            kept.append(rec)
        else:
            run.drop(rec, NOT_IN_TOP, f"ifd={v:.6f} below the top {frac:g} of the band "
                                      f"(cut-off {cutoff if cutoff is not None else 'n/a'})", ifd=v, top_fraction=frac)
    return kept, selection_metrics(records, kept, scores, lo, hi, frac, n_band=len(band))


def selection_metrics(records: list[Record], kept: list[Record], scores: dict[str, float], lo: float, hi: float,
                      frac: float, n_band: int) -> dict[str, Any]:
    """Flat keys (so `dvc exp show` shows them): kept_/dropped_ per source, level, value; IFD quantiles per
    source (of every scored record entering the stage) and overall."""
    kept_ids = {r.id for r in kept}
    m: dict[str, Any] = {"ifd_min": lo, "ifd_max": hi, "ifd_top_fraction": frac, "in_band": n_band,
                         "kept": len(kept), "dropped": len(records) - len(kept)}
    counts: Counter[str] = Counter()
    keys = set()
    for rec in records:
        cat = rec.categorization or {}
        for dim, val in (("source", rec.source), ("level", cat.get("level", "")), ("value", cat.get("value", ""))):
            for kd in ("kept", "dropped"):
                keys.add(f"{kd}_{dim}_{_slug(val)}")
            counts[f"{'kept' if rec.id in kept_ids else 'dropped'}_{dim}_{_slug(val)}"] += 1
    for k in sorted(keys):
        m[k] = counts[k]
    by_source: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        by_source[_slug(rec.source)].append(scores[rec.id])
    for q, v in quantiles(list(scores.values())).items():
        m[f"ifd_{q}_all"] = v
    for src in sorted(by_source):
        for q, v in quantiles(by_source[src]).items():
            m[f"ifd_{q}_source_{src}"] = v
    return m


def histogram_rows(records: list[Record], width: float = BIN_WIDTH) -> list[dict[str, Any]]:
    """Per-source histogram of IFD with fixed-width bins from 0 to just past the largest score; every bin is
    listed (zeros too) so plots of different runs line up."""
    by_source: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        by_source[rec.source].append(ifd_of(rec))
    if not by_source:
        return []
    top = max(max(v) for v in by_source.values())
    n_bins = max(1, math.floor(max(top, 0.0) / width + 1e-9) + 1)
    rows = []
    for src in sorted(by_source):
        c = Counter(min(n_bins - 1, max(0, math.floor(v / width + 1e-9))) for v in by_source[src])
        for b in range(n_bins):
            rows.append({"source": src, "bin_lo": round(b * width, 6), "bin_hi": round((b + 1) * width, 6),
                         "count": c.get(b, 0)})
    return rows


def write_histogram(path: str | Path, rows: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["source", "bin_lo", "bin_hi", "count"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
