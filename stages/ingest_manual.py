"""Stage ingest_manual: data/raw/manual/*.jsonl → build/ingest/manual.jsonl (hand-written, source `manual`)."""
from pathlib import Path

from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.quality import validate
from vad.sources import ingest_manual
from vad.sources.provenance import verify_provenance

STAGE = Stage(
    "ingest_manual", __doc__.split(": ", 1)[1],
    reads=(paths.RAW_MANUAL,),
    writes=(paths.MANUAL,),
    params=("ingest",),
    suites=("raw_manual",),
)


def main(ctx):
    prov = verify_provenance(Path(paths.RAW_MANUAL))  # a new or edited file must come with its provenance
    files = sorted(Path(paths.RAW_MANUAL).glob("*.jsonl"))
    records = ingest_manual.ingest_manual(files, Path("."), ctx.params.ingest, ctx.run,
                                          validate=lambda recs: validate.check(ctx, recs, "raw_manual"))
    return ctx.finish({paths.MANUAL: records}, files=len(files), licence=prov["licence"])


if __name__ == "__main__":
    stage_main(STAGE, main)
