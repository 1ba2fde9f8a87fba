"""Stage ifd_select: build/ifd/scored.jsonl → build/ifd/selected.jsonl (min ≤ IFD < max, optional top share),
plus build/ifd/ifd_hist.csv (per-source IFD histogram for `dvc plots`)."""
from vad.ifd_select import histogram_rows, select, write_histogram
from vad.io import read_records
from vad.ledger import StageRun
from vad.params import load_params
from vad.stage import stage_main

IN = "build/ifd/scored.jsonl"
OUT = "build/ifd/selected.jsonl"
HIST = "build/ifd/ifd_hist.csv"


def main() -> dict:
    params = load_params()["ifd"]
    run = StageRun("ifd_select")
    records = run.take(read_records(IN))
    write_histogram(HIST, histogram_rows(records))
    kept, metrics = select(records, params, run)
    return run.finish({OUT: kept}, **metrics)


if __name__ == "__main__":
    stage_main("ifd_select", main)
