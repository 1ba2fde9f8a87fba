"""Stage evaluate: CValues-style two-choice values items → build/eval/results.jsonl (one row per item and order) + metrics (acc, acc*, consistency, first_position_rate, ...)."""
import logging

from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.eval.metrics import format_summary
from vad.eval.runner import run_evaluation

STAGE = Stage(
    "evaluate", __doc__.split(": ", 1)[1],
    reads=(paths.RAW_EVAL,),
    writes=(paths.EVAL_RESULTS,),
    # the generate method goes through vad.llm, which takes transport settings from the llm section
    params=("eval", "llm"),
    pipeline="evaluation",
)


def main(ctx):
    metrics = run_evaluation(ctx.params.eval, ctx.params.llm, paths.EVAL_RESULTS, paths.metrics("evaluate"))
    logging.getLogger("evaluate").info("\n%s", format_summary(metrics))
    return metrics


if __name__ == "__main__":
    stage_main(STAGE, main)
