"""Stage categorize_train: hand-written records + the categories reviewers settled on machine-made ones → build/categorizer/model.pkl (the offline categorizer; cross-validated accuracy beside its baselines in the metrics)."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.judge.train import train

STAGE = Stage(
    "categorize_train", __doc__.split(": ", 1)[1],
    # selected.jsonl is upstream of the judge, so the reviewers' categories feed back without a cycle
    reads=(paths.MANUAL, paths.SELECTED, paths.REVIEW_DECISIONS),
    writes=(paths.CATEGORIZER,),
    params=("categorize.folds", "categorize.seed", "review.reasons"),
)


def main(ctx):
    return train(ctx.read(paths.MANUAL), ctx.read(paths.SELECTED), paths.REVIEW_DECISIONS, ctx.params,
                 paths.CATEGORIZER, paths.metrics(STAGE.name))


if __name__ == "__main__":
    stage_main(STAGE, main)
