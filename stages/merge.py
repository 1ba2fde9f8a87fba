"""Stage merge: manual + translated + evol → build/merge/merged.jsonl (category, length, content and language checks, exact + near dedup)."""
from vad.core import paths, taxonomy
from vad.core.stage import Stage, stage_main
from vad.quality import validate
from vad.quality.merge import merge

# Order is priority: on a duplicate the earlier corpus keeps its record (hand-written text wins).
INPUTS = (paths.MANUAL, paths.TRANSLATED, paths.EVOL)

STAGE = Stage(
    "merge", __doc__.split(": ", 1)[1],
    reads=INPUTS,
    writes=(paths.MERGED,),
    params=("merge", "content", "ingest.min_chars", "ingest.max_chars"),
    suites=("merged",),
)


def main(ctx):
    merged = merge([ctx.read(p) for p in INPUTS], ctx.params.merge, ctx.params.ingest, ctx.params.content, ctx.run)
    validate.check(ctx, merged, "merged")
    counts = {f"merged_source_{s}": sum(r.source == s for r in merged) for s in taxonomy.SOURCES}
    return ctx.finish({paths.MERGED: merged}, **counts)


if __name__ == "__main__":
    stage_main(STAGE, main)
