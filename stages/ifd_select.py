"""Stage ifd_select: build/ifd/scored.jsonl → build/ifd/selected.jsonl (min ≤ IFD < max, optional top share), plus the per-source IFD histogram for `dvc plots`."""
from vad.core import paths
from vad.core.stage import Stage, stage_main
from vad.quality.ifd_select import SELECT_PARAMS, histogram_rows, select, write_histogram

STAGE = Stage(
    "ifd_select", __doc__.split(": ", 1)[1],
    reads=(paths.SCORED,),
    writes=(paths.SELECTED, paths.IFD_HIST),
    params=tuple(f"ifd.{k}" for k in SELECT_PARAMS),
    plots=((paths.IFD_HIST, {"x": "bin_lo", "y": "count"}),),
)


def main(ctx):
    records = ctx.run.take(ctx.read(paths.SCORED))
    write_histogram(paths.IFD_HIST, histogram_rows(records))
    kept, metrics = select(records, ctx.params.ifd, ctx.run)
    return ctx.finish({paths.SELECTED: kept}, **metrics)


if __name__ == "__main__":
    stage_main(STAGE, main)
