"""`vad trace` and `vad why`: answer "where did this sample come from?" and "why was that one dropped?"
from the build outputs alone (build/export/lineage.jsonl, build/ledger/*.jsonl and the stage corpora)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.io import iter_jsonl
from vad.core.record import sha256_text

# The corpora a record can be found in, upstream first (a record keeps its id until its text changes).
CORPORA = (paths.SEEDS, paths.PAIRS, paths.MANUAL, paths.EVOL, paths.TRANSLATED, paths.MERGED)


class Tracer:
    def __init__(self, root: Path = Path(".")):
        self.root = root
        self.rows = self._rows(root / paths.EXPORT_DIR / "lineage.jsonl")
        self.row_of = {r["id"]: r for r in self.rows}
        self.ledger = []
        for p in sorted((root / paths.LEDGER_DIR).glob("*.jsonl")):
            self.ledger += [obj for _n, _raw, obj in iter_jsonl(p)]
        self._records: dict[str, dict] | None = None

    @staticmethod
    def _rows(path: Path) -> list[dict]:
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: build the dataset first (`dvc repro`)")
        return [obj for _n, _raw, obj in iter_jsonl(path)]

    def records(self) -> dict[str, dict]:
        """Every record any stage saw, by id (intermediate corpora and ledgered records)."""
        if self._records is None:
            self._records = {}
            for rel in CORPORA:
                p = self.root / rel
                if p.exists():
                    for _n, _raw, obj in iter_jsonl(p):
                        self._records.setdefault(obj["id"], obj)
            for e in self.ledger:
                self._records.setdefault(e["id"], e["record"])
        return self._records

    def resolve(self, key: str) -> str:
        if key.isdigit() and int(key) < len(self.rows):
            return self.rows[int(key)]["id"]
        ids = {r["id"] for r in self.rows} | {e["id"] for e in self.ledger} | set(self.records())
        hits = sorted(i for i in ids if i.startswith(key))
        if len(hits) == 1:
            return hits[0]
        raise KeyError(f"{key!r} matches {len(hits)} ids" + (f": {', '.join(hits[:5])}" if hits else
                       " (neither an exported row number nor a known record id)"))

    def status(self, rid: str) -> str:
        if rid in self.row_of:
            return f"exported as row {self.row_of[rid]['row']} of build/export/vad.json"
        drops = [e for e in self.ledger if e["id"] == rid]
        if drops:
            return "dropped at " + "; ".join(f"{e['stage']} ({e['reason']})" for e in drops)
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

    def trace(self, key: str) -> str:
        rid = self.resolve(key)
        rec = self.records().get(rid)
        row = self.row_of.get(rid)
        lin = row or (rec or {}).get("lineage") or {}
        origin = lin.get("origin") or {}
        out = [f"record {rid}: {self.status(rid)}"]
        if rec:
            out.append(f"  text     {rec['instruction'][:60]!r}  [{rec['source']}, "
                       f"{rec['categorization'].get('level')}/{rec['categorization'].get('value')}]")
        out.append(f"  raw      {origin.get('file')}:{origin.get('line')}  ({self.raw_check(origin)})")
        for i, op in enumerate(lin.get("ops") or [], start=1):
            extra = {k: v for k, v in op.items() if k not in ("stage", "op")}
            out.append(f"  step {i:<2}  {op.get('stage')}/{op.get('op')}"
                       + (f"  {json.dumps(extra, ensure_ascii=False)}" if extra else ""))
        for pid in lin.get("parents") or []:
            p = self.records().get(pid)
            desc = f"{p['source']} {p['instruction'][:40]!r}" if p else "(not in the build outputs)"
            out.append(f"  parent   {pid}  {desc}  — {self.status(pid)}")
        if row:
            figs = {k: v for k, v in (row.get("figures") or {}).items() if v is not None and k != "lang"}
            if figs:
                out.append(f"  figures  {json.dumps(figs, ensure_ascii=False)}")
        return "\n".join(out)

    def why(self, key: str) -> str:
        rid = self.resolve(key)
        drops = [e for e in self.ledger if e["id"] == rid]
        out = []
        if rid in self.row_of:
            out.append(f"{rid} was exported (row {self.row_of[rid]['row']} of build/export/vad.json).")
        for e in drops:
            o = e["record"]["lineage"].get("origin", {})
            out.append(f"{rid} was dropped by stage {e['stage']!r}, reason {e['reason']!r}: {e['detail']}")
            out.append(f"  raw: {o.get('file')}:{o.get('line')}")
            if e.get("dup_of"):
                d = self.records().get(e["dup_of"], {})
                do = (d.get("lineage") or {}).get("origin", {})
                out.append(f"  it duplicates {e['dup_of']} ({do.get('file')}:{do.get('line')}), which was "
                           f"{self.status(e['dup_of'])}")
            extra = {k: v for k, v in e.items() if k not in ("stage", "id", "reason", "detail", "record", "dup_of")}
            if extra:
                out.append(f"  {json.dumps(extra, ensure_ascii=False)}")
        if not out:
            out.append(f"{rid}: {self.status(rid)}")
        return "\n".join(out)
