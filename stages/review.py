"""Stage review: build/ifd/selected.jsonl + the reviewers' decisions → build/review/reviewed.jsonl."""
from pathlib import Path

from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.publish.review import apply_review, read_decisions

STAGE = Stage(
    "review", __doc__.split(": ", 1)[1],
    reads=(paths.SELECTED, paths.REVIEW_DECISIONS),
    writes=(paths.REVIEWED,),
)


def main(ctx):
    records = apply_review(ctx.read(paths.SELECTED), read_decisions(Path(paths.REVIEW_DECISIONS)), ctx.run)
    return ctx.finish({paths.REVIEWED: records})


if __name__ == "__main__":
    stage_main(STAGE, main)
