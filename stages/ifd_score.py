"""Stage ifd_score: build/merge/merged.jsonl → build/ifd/scored.jsonl (each record with meta["ifd"]).

Expensive, so every score is cached per record (build/cache/ifd.sqlite): a rerun scores only new or edited
records, and an interrupted run keeps what it finished. Runs on the CPU, a GPU (`ifd.device`) or a Ray cluster
(`ifd.executor: ray`, address from RAY_ADDRESS). Records that cannot be scored are ledgered with their reason
(ifd_empty_answer, ifd_no_answer_tokens, ifd_nonfinite), never given a 0."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.quality.ifd.scorer import RUN_PARAMS, SCORE_PARAMS
from vad.quality.ifd_score import score_records

STAGE = Stage(
    "ifd_score", __doc__.split("\n")[0].split(": ", 1)[1],
    reads=(paths.MERGED,),
    writes=(paths.SCORED,),
    params=tuple(f"ifd.{k}" for k in SCORE_PARAMS + RUN_PARAMS),
)


def main(ctx):
    records = ctx.run.take(ctx.read(paths.MERGED))
    scored, metrics = score_records(records, ctx.params.ifd, ctx.run)
    return ctx.finish({paths.SCORED: scored}, **metrics)


if __name__ == "__main__":
    stage_main(STAGE, main)
