"""Export the dataset: vad.json (exactly the five VAD attributes), parquet, lineage, the whole ledger,
a dataset card and a build report. Output is a pure function of the inputs: no timestamps, stable order."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.io import iter_jsonl, write_jsonl
from vad.core.record import Record
from vad.core.taxonomy import LEVEL_ZH, LEVELS

# What build/export/ holds (the stage's outputs).
FILES = ("vad.json", "vad.parquet", "records.jsonl", "lineage.jsonl", "ledger.jsonl", "README.md", "report.md")
# The raw folder each source comes from (its PROVENANCE.json gives origin, revision and licence for the card).
RAW_SOURCES = {"manual": paths.RAW_MANUAL, "evol": paths.RAW_CVALUES, "translated": paths.RAW_SAFERLHF}


def write_dataset_json(path: Path, records: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps([r.export_dict() for r in records], ensure_ascii=False, indent=2)
    path.write_text(text + "\n", encoding="utf-8")


def write_parquet(path: Path, records: list[Record]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cat = pa.struct([("level", pa.string()), ("value", pa.string())])
    schema = pa.schema([("instruction", pa.string()), ("input", pa.string()), ("output", pa.string()),
                        ("source", pa.string()), ("categorization", cat)])
    table = pa.Table.from_pylist([r.export_dict() for r in records], schema=schema)
    pq.write_table(table, path)


def lineage_rows(records: list[Record]) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(records):
        ifd = r.meta.get("ifd") or {}
        rows.append({
            "row": i, "id": r.id, "source": r.source, "origin": r.lineage.origin, "parents": r.lineage.parents,
            "ops": r.lineage.ops,
            "figures": {k: ifd.get(k) for k in ("ifd", "ifd_ppl", "loss_cond", "loss_direct", "n_answer_tokens")}
            | {"lang": r.meta.get("lang")},
        })
    return rows


def collect_ledger(root: Path, stages: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for stage in stages:
        p = root / paths.ledger(stage)
        if p.exists():
            rows += [obj for _n, _raw, obj in iter_jsonl(p)]
    return rows


def load_metrics(root: Path, stages: tuple[str, ...]) -> dict[str, dict]:
    """Metrics of the given stages, in their order (the export's own, once written, last)."""
    out = {}
    for stage in (*stages, "export"):
        p = root / paths.metrics(stage)
        if p.exists():
            out[stage] = json.loads(p.read_text(encoding="utf-8"))
    return out


def load_provenance(root: Path) -> dict[str, dict]:
    out = {}
    for source, folder in RAW_SOURCES.items():
        p = root / paths.raw_provenance(folder)
        if p.exists():
            out[source] = json.loads(p.read_text(encoding="utf-8"))
    return out


def counts(records: list[Record]) -> dict[str, Any]:
    return {
        "total": len(records),
        "source": dict(sorted(Counter(r.source for r in records).items())),
        "level": {lvl: sum(r.categorization["level"] == lvl for r in records) for lvl in LEVELS},
        "value": {f"{lvl}/{v}": sum(r.categorization == {"level": lvl, "value": v} for r in records)
                  for lvl, vals in LEVELS.items() for v in vals},
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dataset_card(records: list[Record], params: Any, provenance: dict, llm: dict | None) -> str:
    """params: the build's params (vad.core.config.Params or the export stage's view of it)."""
    c = counts(records)
    used = [s for s in ("manual", "evol", "translated") if c["source"].get(s)]
    nc = "translated" in used
    lic_rows = []
    for s in used:
        p = provenance.get(s, {})
        lic_rows.append([s, c["source"][s], p.get("origin", "?"), p.get("revision", "?"), p.get("licence", "?")])
    parts = [
        f"# {params.export.dataset_name} — Chinese Values Alignment Dataset (version {params.export.version})",
        "",
        "Instruction data for values alignment of Chinese LLMs. Each record in `vad.json` has exactly the five "
        "attributes `instruction`, `input`, `output`, `source` (manual | evol | translated) and `categorization` "
        "(`level` person / social / nation and one of that level's four core values).",
        "",
        "## Licence",
        "",
        ("**Non-commercial.** This build contains records translated from PKU-SafeRLHF, which is licensed "
         "CC BY-NC 4.0; those records, and this dataset as a whole, may be used for non-commercial purposes only, "
         "with attribution. " if nc else "No CC BY-NC material is included in this build. ")
        + "Licences of every contributing source:",
        "",
        _table(["source", "records", "origin", "revision", "licence"], lic_rows),
        "",
        "## Counts",
        "",
        _table(["source", "records"], [[k, v] for k, v in c["source"].items()] + [["**total**", c["total"]]]),
        "",
        _table(["level", "value", "records"],
               [[f"{lvl} {LEVEL_ZH[lvl]}", v, c["value"][f"{lvl}/{v}"]] for lvl, vals in LEVELS.items() for v in vals]),
        "",
        "## How it was built",
        "",
        "`dvc repro` of the vad pipeline: ingest → seeds / select_pairs → evolve / translate (LLM) → merge "
        "(language check, exact and MinHash near-duplicate removal) → ifd_score → ifd_select → review → export. "
        "Every dropped record is in `ledger.jsonl` with its stage and reason; `lineage.jsonl` has, row for row, "
        "the raw file and line, parents and operations of each exported record.",
        "",
    ]
    if llm:
        parts += ["LLM used for generation: `" + json.dumps(llm, ensure_ascii=False) + "`", ""]
    parts += ["## Parameters", "", "```json", json.dumps(params.model_dump(), ensure_ascii=False, indent=2), "```", ""]
    return "\n".join(parts)


def build_report(metrics: dict[str, dict], records: list[Record]) -> str:
    rows = []
    for stage, m in metrics.items():
        reasons = ", ".join(f"{k} {v}" for k, v in (m.get("dropped_by_reason") or {}).items()) or "—"
        rows.append([stage, m.get("in", ""), m.get("created", ""), m.get("out", ""), m.get("ledgered", ""),
                     m.get("consumed", ""), reasons, m.get("seconds", "")])
    c = counts(records)
    return "\n".join([
        "# VAD build report", "",
        "Per stage: records in (+ created) = out + ledgered (+ consumed as Evol-Instruct parents).", "",
        _table(["stage", "in", "created", "out", "ledgered", "consumed", "ledgered by reason", "seconds"], rows), "",
        f"Exported: {c['total']} records — " + ", ".join(f"{k} {v}" for k, v in c["source"].items()), "",
        "Look up any record: `vad trace ROW_OR_ID`; any dropped one: `vad why ID`.", ""])


def llm_used(metrics: dict[str, dict]) -> dict | None:
    """The LLM settings of the generating stages, for the card."""
    used = {s: m["llm_client"] for s, m in metrics.items() if m.get("llm_client")}
    return used or None


def export(records: list[Record], out_dir: Path, root: Path, params: Any, upstream: tuple[str, ...]) -> dict[str, Any]:
    """Write build/export/ (but report.md, written after the stage's own metrics). `upstream`: the stages before
    export, in pipeline order (their ledgers and metrics are read)."""
    write_dataset_json(out_dir / "vad.json", records)
    write_parquet(out_dir / "vad.parquet", records)
    write_jsonl(out_dir / "lineage.jsonl", lineage_rows(records))
    llm = llm_used(load_metrics(root, upstream))
    ledger = collect_ledger(root, upstream)
    write_jsonl(out_dir / "ledger.jsonl", ledger)
    (out_dir / "README.md").write_text(dataset_card(records, params, load_provenance(root), llm), encoding="utf-8")
    c = counts(records)
    flat = {"exported": c["total"], **{f"exported_source_{k}": v for k, v in c["source"].items()},
            **{f"exported_level_{k}": v for k, v in c["level"].items()}}
    return {"counts": c, **flat, "ledger_rows": len(ledger)}
