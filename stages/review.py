"""Stage review: build/ifd/selected.jsonl + data/review/decisions.jsonl → build/review/reviewed.jsonl."""
from pathlib import Path

from vad.ledger import StageRun
from vad.io import read_records
from vad.review import apply_review, read_decisions
from vad.stage import stage_main


def main() -> dict:
    run = StageRun("review")
    records = apply_review(read_records("build/ifd/selected.jsonl"),
                           read_decisions(Path("data/review/decisions.jsonl")), run)
    return run.finish({"build/review/reviewed.jsonl": records})


if __name__ == "__main__":
    stage_main("review", main)
