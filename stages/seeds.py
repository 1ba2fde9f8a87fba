"""Stage seeds: CValues responsibility prompts → build/seeds/seeds.jsonl (Evol-Instruct seeds)."""
from pathlib import Path

from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.quality import validate
from vad.sources.provenance import verify_provenance
from vad.sources.seeds import make_seeds

RAW = f"{paths.RAW_CVALUES}/cvalues_responsibility_prompts.jsonl"

STAGE = Stage(
    "seeds", __doc__.split(": ", 1)[1],
    reads=(paths.RAW_CVALUES,),
    writes=(paths.SEEDS,),
    params=("seeds",),
    suites=("seeds",),
)


def main(ctx):
    prov = verify_provenance(Path(paths.RAW_CVALUES))
    seeds = make_seeds(Path(RAW), RAW, ctx.params.seeds.domain_map, ctx.run)
    validate.check(ctx, seeds, "seeds")
    return ctx.finish({paths.SEEDS: seeds}, licence=prov["licence"])


if __name__ == "__main__":
    stage_main(STAGE, main)
