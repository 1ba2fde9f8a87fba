"""`vad trace` and `vad why`: answer "where did this sample come from?" and "why was that one dropped?"
from the stage corpora and ledgers alone (build/<stage>/*.jsonl, build/ledger/<stage>.jsonl, and the consumed ids
in build/metrics/<stage>.json): nothing the export stage writes is needed.

Ids are unique per record occurrence (vad/core/ledger.py), so an id names one record and at most one ledger
entry; a later occurrence of the same content says which record it shares it with (`meta.same_content_as`)."""
from __future__ import annotations

import json
from pathlib import Path

from vad.core import paths
from vad.core.io import iter_jsonl
from vad.core.pipeline import DATASET
from vad.core.record import SAME_CONTENT, sha256_text

# The corpora a record can be found in, in pipeline order (a record keeps its id until its text changes).
CORPORA = (paths.MANUAL, paths.SEEDS, paths.PAIRS, paths.EVOL, paths.TRANSLATED, paths.MERGED, paths.SCORED,
           paths.SELECTED, paths.JUDGED, paths.REVIEWED)
# vad.json holds the export stage's input (stages/export.py), in order, less what the export stage ledgers.
EXPORT_STAGE = "export"
EXPORT_INPUT = paths.REVIEWED
VAD_JSON = f"{paths.EXPORT_DIR}/vad.json"


def _rows(path: Path) -> list[dict]:
    return [obj for _n, _raw, obj in iter_jsonl(path)] if path.exists() else []


class Tracer:
    def __init__(self, root: Path = Path(".")):
        self.root = root
        if not (root / EXPORT_INPUT).exists():
            raise FileNotFoundError(f"{root / EXPORT_INPUT} not found: build the dataset first (`dvc repro`)")
        order = {s: i for i, s in enumerate(DATASET)}
        ledgers = sorted((root / paths.LEDGER_DIR).glob("*.jsonl"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
        self.ledger = [e for p in ledgers for e in _rows(p)]
        self.drops: dict[str, list[dict]] = {}
        for e in self.ledger:
            self.drops.setdefault(e["id"], []).append(e)
        dropped_at_export = {e["id"] for e in self.ledger if e["stage"] == EXPORT_STAGE}
        self.rows = [r for r in _rows(root / EXPORT_INPUT) if r["id"] not in dropped_at_export]
        self.row_of = {r["id"]: i for i, r in enumerate(self.rows)}
        self.consumed_by: dict[str, str] = {}
        for p in sorted((root / paths.METRICS_DIR).glob("*.json")):
            for rid in json.loads(p.read_text(encoding="utf-8")).get("consumed_ids") or []:
                self.consumed_by[rid] = p.stem
        self._records: dict[str, dict] | None = None
        self._children: dict[str, list[str]] | None = None

    def records(self) -> dict[str, dict]:
        """Every record any stage saw, by id, in its latest state: exported, else as ledgered, else the last
        corpus holding it."""
        if self._records is None:
            recs: dict[str, dict] = {}
            for rel in CORPORA:
                for obj in _rows(self.root / rel):
                    recs[obj["id"]] = obj
            for e in self.ledger:
                recs[e["id"]] = e["record"]
            recs.update((r["id"], r) for r in self.rows)
            self._records = recs
        return self._records

    def children(self, rid: str) -> list[str]:
        """Ids of the records made from `rid` (its translation, edit or evolutions)."""
        if self._children is None:
            self._children = {}
            for cid, rec in self.records().items():
                for pid in (rec.get("lineage") or {}).get("parents") or []:
                    self._children.setdefault(pid, []).append(cid)
        return self._children.get(rid, [])

    def resolve(self, key: str) -> str:
        known = self.records().keys() | self.drops.keys() | self.consumed_by.keys()
        if key in known:
            return key
        if key.isdigit() and int(key) < len(self.rows):
            return self.rows[int(key)]["id"]
        hits = sorted(i for i in known if i.startswith(key))
        if len(hits) == 1:
            return hits[0]
        raise KeyError(f"{key!r} matches {len(hits)} ids" + (f": {', '.join(hits[:5])}" if hits else
                       " (neither an exported row number nor a known record id)"))

    def status(self, rid: str) -> str:
        if rid in self.row_of:
            return f"exported as row {self.row_of[rid]} of {VAD_JSON}"
        if rid in self.drops:
            return "dropped at " + "; ".join(f"{e['stage']} ({e['reason']})" for e in self.drops[rid])
        if rid in self.consumed_by:
            return f"consumed by {self.consumed_by[rid]} (it left through the records made from it)"
        kids = self.children(rid)
        if kids:
            return f"its text changed: it became {', '.join(kids)}"
        return "not exported and not in the ledger"

    def raw_check(self, origin: dict) -> str:
        path = self.root / origin.get("file", "")
        line = origin.get("line")
        if not path.is_file() or not line:
            return "raw file not available"
        with path.open(encoding="utf-8") as f:
            for n, text in enumerate(f, start=1):
                if n == line:
                    ok = sha256_text(text.rstrip("\n").rstrip("\r")) == origin.get("sha256")
                    return "sha256 matches the raw line" if ok else "sha256 DIFFERS: the raw file changed since the build"
        return f"raw file has fewer than {line} lines"

    def _same_content(self, rec: dict | None) -> str | None:
        cid = ((rec or {}).get("meta") or {}).get(SAME_CONTENT)
        return f"a later occurrence of the same content as {cid}, which was {self.status(cid)}" if cid else None

    def trace(self, key: str) -> str:
        rid = self.resolve(key)
        rec = self.records().get(rid)
        lin = (rec or {}).get("lineage") or {}
        origin = lin.get("origin") or {}
        out = [f"record {rid}: {self.status(rid)}"]
        if rec:
            out.append(f"  text     {rec['instruction'][:60]!r}  [{rec['source']}, "
                       f"{rec['categorization'].get('level')}/{rec['categorization'].get('value')}]")
        same = self._same_content(rec)
        if same:
            out.append(f"  same     {same}")
        out.append(f"  raw      {origin.get('file')}:{origin.get('line')}  ({self.raw_check(origin)})")
        for i, op in enumerate(lin.get("ops") or [], start=1):
            extra = {k: v for k, v in op.items() if k not in ("stage", "op")}
            out.append(f"  step {i:<2}  {op.get('stage')}/{op.get('op')}"
                       + (f"  {json.dumps(extra, ensure_ascii=False)}" if extra else ""))
        for pid in lin.get("parents") or []:
            p = self.records().get(pid)
            desc = f"{p['source']} {p['instruction'][:40]!r}" if p else "(not in the build outputs)"
            out.append(f"  parent   {pid}  {desc}  — {self.status(pid)}")
        if rid in self.row_of:
            ifd = (rec.get("meta") or {}).get("ifd") or {}
            figs = {k: ifd[k] for k in ("ifd", "ifd_ppl", "loss_cond", "loss_direct", "n_answer_tokens")
                    if ifd.get(k) is not None}
            if figs:
                out.append(f"  figures  {json.dumps(figs, ensure_ascii=False)}")
        return "\n".join(out)

    def why(self, key: str) -> str:
        rid = self.resolve(key)
        out = []
        if rid in self.row_of:
            out.append(f"{rid} was exported (row {self.row_of[rid]} of {VAD_JSON}).")
        for e in self.drops.get(rid, []):
            o = e["record"]["lineage"].get("origin", {})
            out.append(f"{rid} was dropped by stage {e['stage']!r}, reason {e['reason']!r}: {e['detail']}")
            out.append(f"  raw: {o.get('file')}:{o.get('line')}")
            if e.get("dup_of"):
                d = self.records().get(e["dup_of"], {})
                do = (d.get("lineage") or {}).get("origin", {})
                out.append(f"  it duplicates {e['dup_of']} ({do.get('file')}:{do.get('line')}), which was "
                           f"{self.status(e['dup_of'])}")
            same = self._same_content(e["record"])
            if same and (e["record"]["meta"][SAME_CONTENT] != e.get("dup_of")):
                out.append(f"  it is {same}")
            extra = {k: v for k, v in e.items() if k not in ("stage", "id", "reason", "detail", "record", "dup_of")}
            if extra:
                out.append(f"  {json.dumps(extra, ensure_ascii=False)}")
        if not out:
            out.append(f"{rid}: {self.status(rid)}")
        return "\n".join(out)
