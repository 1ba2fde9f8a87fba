"""Stage select_pairs: PKU-SafeRLHF rows → build/select/pairs.jsonl (explicit "high quality" rules)."""
from pathlib import Path

from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.quality import validate
from vad.sources.provenance import verify_provenance
from vad.sources.select_pairs import select_pairs

STAGE = Stage(
    "select_pairs", __doc__.split(": ", 1)[1],
    reads=(paths.RAW_SAFERLHF,),
    writes=(paths.PAIRS,),
    params=("select",),
    suites=("pairs",),
)


def main(ctx):
    prov = verify_provenance(Path(paths.RAW_SAFERLHF))
    pairs = []
    for path in sorted(Path(paths.RAW_SAFERLHF).glob("*.jsonl")):
        pairs += select_pairs(path, path.as_posix(), ctx.params.select, ctx.run)
    validate.check(ctx, pairs, "pairs")
    return ctx.finish({paths.PAIRS: pairs}, licence=prov["licence"])


if __name__ == "__main__":
    stage_main(STAGE, main)
