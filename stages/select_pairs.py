"""Stage select_pairs: PKU-SafeRLHF rows → build/select/pairs.jsonl (explicit "high quality" rules)."""
from pathlib import Path

from vad.ledger import StageRun
from vad.params import load_params
from vad.saferlhf import select_pairs
from vad.sources import verify_provenance
from vad.stage import stage_main
from vad.validate import validate

RAW_DIR = "data/raw/saferlhf"


def main() -> dict:
    params = load_params()["select"]
    prov = verify_provenance(Path("data/raw/saferlhf"))
    run = StageRun("select_pairs")
    pairs = []
    for path in sorted(Path(RAW_DIR).glob("*.jsonl")):
        pairs += select_pairs(path, path.as_posix(), params, run)
    return run.finish({"build/select/pairs.jsonl": pairs}, licence=prov["licence"],
                      validation=validate(pairs, "pairs", "build/select/gx_pairs.json"))


if __name__ == "__main__":
    stage_main("select_pairs", main)
