"""Stage export: build/review/reviewed.jsonl → build/export/ (vad.json + parquet, DPO pairs, LLaMA-Factory dataset_info.json, hub-ready card, lean ledger index, lineage, report.html/md, funnel plot data; records.jsonl keeps the full records with meta)."""
from pathlib import Path

from vad.core import paths
from vad.core.pipeline import DATASET, RECORD_STAGES
from vad.core.stage import Stage, stage_main
from vad.publish import export, layout, report
from vad.quality import validate

OUT = Path(paths.EXPORT_DIR)
UPSTREAM = DATASET[:DATASET.index("export")]
RAW = (paths.RAW_MANUAL, paths.RAW_CVALUES, paths.RAW_SAFERLHF)
FUNNEL = f"{OUT}/{layout.FUNNEL}"

STAGE = Stage(
    "export", __doc__.split(": ", 1)[1],
    # The evaluation's metrics are deliberately not read: that pipeline is separate (vad.publish.report).
    reads=(paths.REVIEWED, *(paths.ledger(s) for s in UPSTREAM if s in RECORD_STAGES),
           *(paths.metrics(s) for s in UPSTREAM),
           paths.IFD_HIST, *(paths.raw_provenance(r) for r in RAW)),
    writes=tuple(f"{OUT}/{name}" for name in layout.FILES),
    # the dataset card lists every param the build used
    params=("ingest", "seeds", "select", "llm", "evol", "translate", "merge", "content", "ifd", "categorize", "judge",
            "review", "export"),
    suites=("final",),
    plots=((FUNNEL, {"x": "out", "y": "step", "template": "bar_horizontal", "title": "records out per stage"}),),
)


def main(ctx):
    records = ctx.run.take(ctx.read(paths.REVIEWED))
    validate.check(ctx, records, "final")
    figures = export.export(records, OUT, Path("."), ctx.params, UPSTREAM)
    metrics = ctx.finish({f"{OUT}/{layout.RECORDS}": records}, **figures)
    report.write_build_reports(Path("."), OUT)  # from the metrics files, this stage's own included
    return metrics


if __name__ == "__main__":
    stage_main(STAGE, main)
