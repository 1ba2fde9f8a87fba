"""Stage ifd_score: build/merge/merged.jsonl → build/ifd/scored.jsonl (each record with meta["ifd"]).

Expensive, so every score is cached per record (build/cache/ifd.sqlite): a rerun scores only new or edited
records. Records that cannot be scored are ledgered with their reason (ifd_empty_answer, ifd_no_answer_tokens,
ifd_nonfinite), never given a 0."""
from vad.ifd import score_records
from vad.io import read_records
from vad.ledger import StageRun
from vad.params import load_params
from vad.stage import stage_main

IN = "build/merge/merged.jsonl"
OUT = "build/ifd/scored.jsonl"


def main() -> dict:
    params = load_params()["ifd"]
    run = StageRun("ifd_score")
    records = run.take(read_records(IN))
    scored, metrics = score_records(records, params, run)
    return run.finish({OUT: scored}, **metrics)


if __name__ == "__main__":
    stage_main("ifd_score", main)
