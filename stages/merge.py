"""Stage merge: manual + evol + translated → build/merge/merged.jsonl (language check, exact + near dedup)."""
from vad.io import read_records
from vad.ledger import StageRun
from vad.merge import merge
from vad.params import load_params
from vad.stage import stage_main
from vad.validate import validate

# Order is priority: on a duplicate the earlier corpus keeps its record.
INPUTS = ["build/ingest/manual.jsonl", "build/translate/translated.jsonl", "build/evolve/evol.jsonl"]


def main() -> dict:
    params = load_params()["merge"]
    run = StageRun("merge")
    merged = merge([read_records(p) for p in INPUTS], params, run)
    counts = {f"merged_source_{s}": sum(r.source == s for r in merged) for s in ("manual", "evol", "translated")}
    return run.finish({"build/merge/merged.jsonl": merged},
                      validation=validate(merged, "merged", "build/merge/gx_merged.json"), **counts)


if __name__ == "__main__":
    stage_main("merge", main)
