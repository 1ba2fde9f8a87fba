"""Stage export: build/review/reviewed.jsonl → build/export/ (vad.json, vad.parquet, lineage, ledger, card, report;
records.jsonl keeps the full records with meta, e.g. the rejected responses for a preference export)."""
import json
from pathlib import Path

from vad.export import build_report, export, load_metrics
from vad.io import read_records
from vad.ledger import StageRun
from vad.params import load_params
from vad.stage import stage_main
from vad.validate import validate

OUT = Path("build/export")


def main() -> dict:
    params = load_params()
    run = StageRun("export")
    records = run.take(read_records("build/review/reviewed.jsonl"))
    run.metrics["validation"] = validate(records, "final", "build/export/gx_final.json")
    llm_used = {}
    for stage in ("evolve", "translate"):
        p = Path(f"build/metrics/{stage}.json")
        if p.exists():
            llm_used[stage] = json.loads(p.read_text()).get("llm")
    figures = export(records, OUT, Path("."), params, llm_used or None)
    metrics = run.finish({"build/export/records.jsonl": records}, **figures)
    (OUT / "report.md").write_text(build_report(load_metrics(Path("build/metrics")), records), encoding="utf-8")
    return metrics


if __name__ == "__main__":
    stage_main("export", main)
