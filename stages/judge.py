"""Stage judge: build/ifd/selected.jsonl → build/judge/judged.jsonl (every machine-made record categorized — meta.category_pred — and, with an endpoint, judged by the LLM — meta.judge; low confidence and failing verdicts flagged for review)."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.judge import judge
from vad.judge.categorizer import Categorizer
from vad.judge.llm_judge import TEMPLATE_FILE
from vad.review.log import read_log

STAGE = Stage(
    "judge", __doc__.split(": ", 1)[1],
    reads=(paths.SELECTED, paths.CATEGORIZER, paths.REVIEW_DECISIONS),
    writes=(paths.JUDGED,),
    params=("categorize.by", "categorize.min_confidence", "judge", "llm", "review.reasons"),
    files=(TEMPLATE_FILE,),
)


def main(ctx):
    p = ctx.params
    client = None
    if judge.judge_enabled(p.judge, p.llm):
        from vad.llm import make_client

        client = make_client(p.llm)
    try:
        model = Categorizer.load(ctx.root / paths.CATEGORIZER)
        out = judge.run(ctx.read(paths.SELECTED), model, read_log(paths.REVIEW_DECISIONS, dict(p.review.reasons)), p,
                        client, ctx.run)
        return ctx.finish({paths.JUDGED: out})
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    stage_main(STAGE, main)
