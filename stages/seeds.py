"""Stage seeds: CValues responsibility prompts → build/seeds/seeds.jsonl (Evol-Instruct seeds)."""
from pathlib import Path

from vad.ledger import StageRun
from vad.params import load_params
from vad.seeds import make_seeds
from vad.sources import verify_provenance
from vad.stage import stage_main
from vad.validate import validate

RAW = "data/raw/cvalues/cvalues_responsibility_prompts.jsonl"


def main() -> dict:
    params = load_params()["seeds"]
    prov = verify_provenance(Path("data/raw/cvalues"))
    run = StageRun("seeds")
    seeds = make_seeds(Path(RAW), RAW, params["domain_map"], run)
    return run.finish({"build/seeds/seeds.jsonl": seeds}, licence=prov["licence"],
                      validation=validate(seeds, "seeds", "build/seeds/gx_seeds.json"))


if __name__ == "__main__":
    stage_main("seeds", main)
