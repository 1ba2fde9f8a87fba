"""What the review app shows: the records the review stage receives, indexed once, and each record's context.

At 30k records the app must not hold every record as a dict, nor send them to the browser: `Corpus` keeps, per
record, its byte offset in build/judge/judged.jsonl and the few fields queues filter and sort on (source, level,
value, IFD, content sha256, the categorizer's confidence, the number of objections), and reads the full record
from disk when a page shows it. `Context` finds what a reviewer
needs beside the record: the drops of its duplicates (merge ledger `dup_of`), the parent prompt of an evolution
(seeds / evolve corpora), the English original of a translation (in the record's meta), and what the judge stage
made of a machine-made record (meta.category_pred / category_table / category_by, meta.judge, meta.flags)."""
from __future__ import annotations

import bisect
import json
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.errors import InputError
from vad.core.record import Record
from vad.review.log import content_sha256, origin_key

_ID_AT_START = re.compile(rb'^\{\s*"id"\s*:\s*"([^"]+)"')
CACHE_RECORDS = 512
BAD_VERDICTS = ("fail", "error")
# the flag a judge stage adds for a bad verdict: a verdict with one of these is not counted a second time
_VERDICT_FLAGS = {"fail": "judge_failed", "error": "judge_error"}


def confidence_of(meta: dict[str, Any]) -> float | None:
    """The categorizer's confidence in its prediction (meta.category_pred.confidence), None without one."""
    pred = meta.get("category_pred")
    c = pred.get("confidence") if isinstance(pred, dict) else None
    return float(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else None


def flags_of(meta: dict[str, Any]) -> list[dict[str, str]]:
    """The judge stage's objections (meta.flags), as {reason, detail, by}."""
    raw = meta.get("flags")
    out = []
    for f in raw if isinstance(raw, list) else []:
        if isinstance(f, dict) and f.get("reason"):
            out.append({"reason": str(f["reason"]), "detail": str(f.get("detail") or ""), "by": str(f.get("by") or "")})
        elif isinstance(f, str) and f:
            out.append({"reason": f, "detail": "", "by": ""})
    return out


def verdict_of(meta: dict[str, Any]) -> str:
    j = meta.get("judge")
    return str(j.get("verdict") or "") if isinstance(j, dict) else ""


def objections(meta: dict[str, Any]) -> int:
    """How many objections the judge stage raised: its flags, plus a failed / errored verdict no flag names."""
    flags = flags_of(meta)
    verdict = verdict_of(meta)
    n = len(flags)
    if verdict in BAD_VERDICTS and not any(f["reason"] == _VERDICT_FLAGS[verdict] for f in flags):
        n += 1
    return n


class Corpus:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} not found: build the review stage's input first "
                                    "(`dvc repro judge`)")
        self.ids: list[str] = []
        self.offsets: list[int] = []
        self.source: list[str] = []
        self.level: list[str] = []
        self.value: list[str] = []
        self.ifd: list[float | None] = []
        self.confidence: list[float | None] = []  # meta.category_pred.confidence
        self.objections: list[int] = []  # meta.flags, and a failed judge verdict
        self.sha: list[str] = []
        self.origin: list[str] = []
        self.pos: dict[str, int] = {}
        self.by_origin: dict[str, list[str]] = {}  # origin key → ids (vad/review/state.py group)
        self.parent_ids: set[str] = set()  # of the evolutions (their parent prompts are shown)
        self._cache: OrderedDict[int, Record] = OrderedDict()
        off = 0
        with self.path.open("rb") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rec = Record.from_dict(json.loads(line))
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise InputError(f"{self.path}:{n}", f"not a vad record ({e})") from None
                    i = len(self.ids)
                    self.ids.append(rec.id)
                    self.offsets.append(off)
                    self.source.append(rec.source)
                    self.level.append(rec.categorization.get("level", ""))
                    self.value.append(rec.categorization.get("value", ""))
                    self.ifd.append((rec.meta.get("ifd") or {}).get("ifd"))
                    self.confidence.append(confidence_of(rec.meta))
                    self.objections.append(objections(rec.meta))
                    self.sha.append(content_sha256(rec))
                    self.origin.append(origin_key(rec))
                    self.pos.setdefault(rec.id, i)
                    self.by_origin.setdefault(self.origin[i], []).append(rec.id)
                    if rec.source == "evol":
                        self.parent_ids.update(rec.lineage.parents)
                off += len(line)
        self.sorted_ifd = sorted(x for x in self.ifd if x is not None)

    def __len__(self) -> int:
        return len(self.ids)

    def record(self, i: int) -> Record:
        rec = self._cache.get(i)
        if rec is None:
            with self.path.open("rb") as f:
                f.seek(self.offsets[i])
                rec = Record.from_dict(json.loads(f.readline()))
            self._cache[i] = rec
            if len(self._cache) > CACHE_RECORDS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(i)
        return Record.from_dict(rec.to_dict())  # a copy: callers may not change the cached one

    def percentile(self, ifd: float | None) -> int | None:
        if ifd is None or not self.sorted_ifd:
            return None
        return round(100 * bisect.bisect_left(self.sorted_ifd, ifd) / len(self.sorted_ifd))


def _scan_ids(path: Path, wanted: set[str]) -> dict[str, dict]:
    """Records of a corpus whose id is wanted (lines start with the id: only those are parsed)."""
    out: dict[str, dict] = {}
    if not wanted or not path.exists():
        return out
    with path.open("rb") as f:
        for line in f:
            m = _ID_AT_START.match(line)
            if m and m.group(1).decode() in wanted and m.group(1).decode() not in out:
                out[m.group(1).decode()] = json.loads(line)
    return out


class Context:
    """Duplicates' drops and evolution parents for the records of `corpus` (read once, at start)."""

    PARENT_CORPORA = (paths.SEEDS, paths.EVOL)

    def __init__(self, corpus: Corpus, root: Path):
        self.dups: dict[str, list[dict[str, Any]]] = {}
        ledger = root / paths.ledger("merge")
        if ledger.exists():
            with ledger.open("rb") as f:
                for line in f:
                    if b'"dup_of"' not in line:  # cheap pre-filter: most ledger lines are not duplicates
                        continue
                    e = json.loads(line)
                    if e.get("dup_of") in corpus.pos:
                        self.dups.setdefault(e["dup_of"], []).append(_dup_row(e))
        self.parents: dict[str, dict] = {}
        for rel in self.PARENT_CORPORA:
            self.parents.update(_scan_ids(root / rel, corpus.parent_ids - set(self.parents)))

    def of(self, rec: Record) -> dict[str, Any]:
        parents = [self.parents.get(pid) or {"id": pid, "missing": True} for pid in rec.lineage.parents]
        evol = rec.meta.get("evol") or {}
        original = rec.meta.get("original") or {}
        return {
            "origin": rec.lineage.origin,
            "ops": rec.lineage.ops,
            "parents": parents if rec.source == "evol" else [],
            "evol": evol,
            "original": original if rec.source == "translated" else {},
            "rejected_zh": rec.meta.get("rejected_zh", ""),
            "dups": self.dups.get(rec.id, []),
            **judged(rec),
        }


def judged(rec: Record) -> dict[str, Any]:
    """What the judge stage made of the record, for the record page: the categorizer's prediction beside the
    table default and which of them (or a reviewer) set the categorization; the LLM judge's verdict; the flags.
    Empty values for a hand-written record (the judge stage leaves those alone)."""
    m = rec.meta
    pred = m.get("category_pred") if isinstance(m.get("category_pred"), dict) else {}
    table = m.get("category_table") if isinstance(m.get("category_table"), dict) else {}
    j = m.get("judge") if isinstance(m.get("judge"), dict) else {}
    judge = {}
    if j:
        scores = j.get("scores") if isinstance(j.get("scores"), dict) else {}
        judge = {"verdict": verdict_of(m), "scores": scores,
                 "failed": [str(x) for x in j.get("failed") or [] if x],
                 "problems": [str(x) for x in j.get("problems") or [] if x],
                 "reason": str(j.get("reason") or ""), "by": str(j.get("by") or "")}
    return {
        "pred": {"level": str(pred.get("level") or ""), "value": str(pred.get("value") or ""),
                 "confidence": confidence_of(m), "by": str(pred.get("by") or "")} if pred else {},
        "table": {"level": str(table.get("level") or ""), "value": str(table.get("value") or "")} if table else {},
        "category_by": str(m.get("category_by") or ""),
        "judge": judge,
        "flags": flags_of(m),
    }


def _dup_row(e: dict[str, Any]) -> dict[str, Any]:
    r = e.get("record") or {}
    return {"id": e.get("id"), "reason": e.get("reason"), "detail": e.get("detail", ""), "jaccard": e.get("jaccard"),
            "source": r.get("source", ""), "instruction": r.get("instruction", ""), "output": r.get("output", ""),
            "origin": (r.get("lineage") or {}).get("origin", {})}
