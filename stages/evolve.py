"""Stage evolve: CValues seeds → Evol-Instruct evolutions with values-aware answers → build/evolve/evol.jsonl."""
from vad import evolve
from vad.io import read_records
from vad.ledger import StageRun
from vad.llm import LLMConfig, make_client
from vad.params import load_params
from vad.stage import stage_main
from vad.validate import validate_unless_empty

SEEDS = "build/seeds/seeds.jsonl"
OUT = "build/evolve/evol.jsonl"


def main() -> dict:
    params = load_params()
    client = make_client(LLMConfig.from_params(params["llm"]))
    try:
        run = StageRun("evolve")
        out = evolve.run(read_records(SEEDS), params["evol"], client, run)
        return run.finish({OUT: out}, llm=client.stats("evolve"), llm_client=client.describe(),
                          validation=validate_unless_empty(out, "evol", "build/evolve/gx_evol.json"))
    finally:
        client.close()


if __name__ == "__main__":
    stage_main("evolve", main)
