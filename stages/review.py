"""Stage review: build/judge/judged.jsonl + the reviewers' decision log review/decisions.jsonl → build/review/reviewed.jsonl (decisions applied; what review.require holds back is ledgered review_pending; the machine's categories and flags measured against the decisions)."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.publish.review import read_decisions, review

STAGE = Stage(
    "review", __doc__.split(": ", 1)[1],
    reads=(paths.JUDGED, paths.REVIEW_DECISIONS),
    writes=(paths.REVIEWED,),
    # edited records go through merge's checks again, with merge's params
    params=("review", "content", "ingest.min_chars", "ingest.max_chars", "merge.lang", "merge.min_lang_score",
            "merge.near_dup_threshold", "merge.ngram", "merge.num_perm"),
)


def main(ctx):
    decisions = read_decisions(paths.REVIEW_DECISIONS, ctx.params.review)
    kept, metrics = review(ctx.read(paths.JUDGED), decisions, ctx.params, ctx.run)
    return ctx.finish({paths.REVIEWED: kept}, **metrics)


if __name__ == "__main__":
    stage_main(STAGE, main)
