"""Stage translate: selected PKU-SafeRLHF pairs → translated, polished, verified Chinese → build/translate/translated.jsonl."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.generate import translate
from vad.llm import make_client, template_file
from vad.quality import validate

STAGE = Stage(
    "translate", __doc__.split(": ", 1)[1],
    reads=(paths.PAIRS,),
    writes=(paths.TRANSLATED,),
    params=("llm", "translate"),
    suites=("translated",),
    files=tuple(template_file(t) for t in translate.TEMPLATE_NAMES),
)


def main(ctx):
    client = make_client(ctx.params.llm)
    try:
        out = translate.run(ctx.read(paths.PAIRS), ctx.params.translate, client, ctx.run)
        validate.check(ctx, out, "translated", unless_empty=True)
        return ctx.finish({paths.TRANSLATED: out}, llm=client.stats("translate"), llm_client=client.describe(),
                          licence="CC BY-NC 4.0 (PKU-SafeRLHF; non-commercial, travels with derived data)")
    finally:
        client.close()


if __name__ == "__main__":
    stage_main(STAGE, main)
