"""Stage evolve: CValues seeds → Evol-Instruct evolutions with values-aware answers → build/evolve/evol.jsonl."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.generate import evolve
from vad.llm import make_client, template_file
from vad.quality import validate

STAGE = Stage(
    "evolve", __doc__.split(": ", 1)[1],
    reads=(paths.SEEDS,),
    writes=(paths.EVOL,),
    params=("llm", "evol"),
    suites=("evol",),
    files=tuple(template_file(t) for t in evolve.TEMPLATE_NAMES),
)


def main(ctx):
    client = make_client(ctx.params.llm)
    try:
        out = evolve.run(ctx.read(paths.SEEDS), ctx.params.evol, client, ctx.run)
        validate.check(ctx, out, "evol", unless_empty=True)
        return ctx.finish({paths.EVOL: out}, llm=client.stats("evolve"), llm_client=client.describe())
    finally:
        client.close()


if __name__ == "__main__":
    stage_main(STAGE, main)
