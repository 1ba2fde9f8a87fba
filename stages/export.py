"""Stage export: build/review/reviewed.jsonl → build/export/ (vad.json, vad.parquet, lineage, ledger, card, report; records.jsonl keeps the full records with meta)."""
from pathlib import Path

from vad.core import paths
from vad.core.pipeline import DATASET
from vad.core.stage import Stage, stage_main
from vad.publish import export

OUT = Path(paths.EXPORT_DIR)
UPSTREAM = DATASET[:DATASET.index("export")]
RAW = (paths.RAW_MANUAL, paths.RAW_CVALUES, paths.RAW_SAFERLHF)

STAGE = Stage(
    "export", __doc__.split(": ", 1)[1],
    reads=(paths.REVIEWED, *(paths.ledger(s) for s in UPSTREAM), *(paths.metrics(s) for s in UPSTREAM),
           *(paths.raw_provenance(r) for r in RAW)),
    writes=tuple(f"{OUT}/{name}" for name in export.FILES),
    # the dataset card lists every param the build used
    params=("ingest", "seeds", "select", "llm", "evol", "translate", "merge", "ifd", "export"),
    suites=("final",),
)


def main(ctx):
    records = ctx.run.take(ctx.read(paths.REVIEWED))
    ctx.validate(records, "final")
    figures = export.export(records, OUT, Path("."), ctx.params, UPSTREAM)
    metrics = ctx.finish({f"{OUT}/records.jsonl": records}, **figures)
    (OUT / "report.md").write_text(export.build_report(export.load_metrics(Path("."), UPSTREAM), records),
                                   encoding="utf-8")
    return metrics


if __name__ == "__main__":
    stage_main(STAGE, main)
