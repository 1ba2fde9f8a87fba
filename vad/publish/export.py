"""Export the dataset the way its consumers load it: vad.json (exactly the five VAD attributes) and parquet, the
preference pairs (vad_dpo.json/.parquet), lineage, a lean index of every drop, the dataset card with its hub
header and LLaMA-Factory's dataset_info.json (vad.publish.card). The build report comes after the stage's own
metrics (vad.publish.report). Output is a pure function of the inputs: no timestamps, stable order.

File names and columns: vad.publish.layout."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.errors import InputError
from vad.core.io import iter_jsonl, write_json, write_jsonl
from vad.core.record import Record
from vad.core.taxonomy import LEVELS, PAIRS
from vad.publish import card, layout
from vad.publish.report import load_metrics

# The raw folder each source comes from (its PROVENANCE.json gives origin, revision and licence for the card).
RAW_SOURCES = {"manual": paths.RAW_MANUAL, "evol": paths.RAW_CVALUES, "translated": paths.RAW_SAFERLHF}


def write_json_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """A JSON array (UTF-8, indented): what LLaMA-Factory's and most training scripts' JSON loaders read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_dataset_json(path: Path, records: list[Record]) -> None:
    write_json_rows(path, [r.export_dict() for r in records])


def write_parquet(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    """Rows with the given columns: text columns, and `categorization` as a {level, value} struct."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cat = pa.struct([("level", pa.string()), ("value", pa.string())])
    schema = pa.schema([(f, cat if f == "categorization" else pa.string()) for f in fields])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def preference_pairs(records: list[Record]) -> list[dict[str, Any]]:
    """One pair per exported record that has a rejected answer (`meta[layout.REJECTED_META]`): the record's output
    is the chosen answer. Same order as vad.json."""
    pairs = []
    for r in records:
        rejected = r.meta.get(layout.REJECTED_META)
        if rejected is None:
            continue
        if not isinstance(rejected, str):
            raise InputError(f"record {r.id}", f"meta.{layout.REJECTED_META} must be text, got "
                                               f"{type(rejected).__name__}")
        if not rejected.strip():
            continue
        row = r.export_dict()
        row |= {"chosen": row["output"], "rejected": rejected}
        pairs.append({f: row[f] for f in layout.DPO_FIELDS})
    return pairs


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


def ledger_index(root: Path, stages: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Every stage ledger's entries, in pipeline order, without the record bodies (layout.LEDGER_INDEX: stage, id,
    reason, detail, dup_of or null, source, raw origin). `vad why ID` prints the whole entry from the stage ledger."""
    for stage in stages:
        p = root / paths.ledger(stage)
        if not p.exists():
            continue
        for _n, _raw, e in iter_jsonl(p):
            rec = e.get("record") or {}
            yield {"stage": e.get("stage", stage), "id": e["id"], "reason": e["reason"],
                   "detail": e.get("detail", ""), "dup_of": e.get("dup_of"), "source": rec.get("source"),
                   "origin": (rec.get("lineage") or {}).get("origin") or {}}


def load_provenance(root: Path) -> dict[str, dict]:
    out = {}
    for source, folder in RAW_SOURCES.items():
        p = root / paths.raw_provenance(folder)
        if p.exists():
            out[source] = json.loads(p.read_text(encoding="utf-8"))
    return out


def counts(records: list[Record]) -> dict[str, Any]:
    by_source: dict[str, Counter[str]] = {}
    for r in records:
        by_source.setdefault(r.source, Counter())[f"{r.categorization['level']}/{r.categorization['value']}"] += 1
    return {
        "total": len(records),
        "source": dict(sorted(Counter(r.source for r in records).items())),
        "level": {lvl: sum(r.categorization["level"] == lvl for r in records) for lvl in LEVELS},
        "value": {p: sum(c[p] for c in by_source.values()) for p in PAIRS},
        # the category mix of the build report (12 values × source)
        "value_by_source": {s: {p: by_source[s][p] for p in PAIRS} for s in sorted(by_source)},
    }


def export(records: list[Record], out_dir: Path, root: Path, params: Any, upstream: tuple[str, ...]) -> dict[str, Any]:
    """Write build/export/ (but the build report, written after the stage's own metrics). `upstream`: the stages
    before export, in pipeline order (their ledgers and metrics are read). Returns the stage's figures."""
    pairs = preference_pairs(records)
    write_dataset_json(out_dir / layout.SFT_JSON, records)
    write_parquet(out_dir / layout.SFT_PARQUET, [r.export_dict() for r in records], layout.SFT_FIELDS)
    write_json_rows(out_dir / layout.DPO_JSON, pairs)
    write_parquet(out_dir / layout.DPO_PARQUET, pairs, layout.DPO_FIELDS)
    write_jsonl(out_dir / layout.LINEAGE, lineage_rows(records))
    n_ledger = write_jsonl(out_dir / layout.LEDGER, ledger_index(root, upstream))

    c = counts(records)
    pair_sources = dict(sorted(Counter(p["source"] for p in pairs).items()))
    provenance = load_provenance(root)
    licence, licence_source = card.build_licence(list(c["source"]), provenance)
    name = params.export.dataset_name
    build = card.BuildFacts(name=name, version=params.export.version, counts=c, pairs=len(pairs),
                            pair_sources=pair_sources, licence=licence,
                            licence_source=licence_source)
    (out_dir / layout.CARD).write_text(
        card.dataset_card(build, params.model_dump(), provenance, card.llm_used(load_metrics(root, upstream))),
        encoding="utf-8")
    write_json(out_dir / layout.LLAMAFACTORY, card.llamafactory_info(name, build))
    flat = {"exported": c["total"], **{f"exported_source_{k}": v for k, v in c["source"].items()},
            **{f"exported_level_{k}": v for k, v in c["level"].items()}}
    return {"name": name, "version": params.export.version, "licence": licence, "counts": c, **flat,
            "dpo_pairs": len(pairs), **{f"dpo_pairs_source_{k}": v for k, v in pair_sources.items()},
            "ledger_rows": n_ledger}
