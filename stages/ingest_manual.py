"""Stage ingest_manual: data/raw/manual/*.jsonl → build/ingest/manual.jsonl (hand-written, source `manual`)."""
from pathlib import Path

from vad.ingest import ingest_manual
from vad.ledger import StageRun
from vad.params import load_params
from vad.stage import stage_main


def main() -> dict:
    params = load_params()["ingest"]
    run = StageRun("ingest_manual")
    files = sorted(Path("data/raw/manual").glob("*.jsonl"))
    records = ingest_manual(files, Path("."), params, run)
    return run.finish({"build/ingest/manual.jsonl": records}, files=len(files))


if __name__ == "__main__":
    stage_main("ingest_manual", main)
