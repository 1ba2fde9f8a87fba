"""Stage translate: selected PKU-SafeRLHF pairs → translated, polished, verified Chinese → build/translate/translated.jsonl."""
from vad import translate
from vad.io import read_records
from vad.ledger import StageRun
from vad.llm import LLMConfig, make_client
from vad.params import load_params
from vad.stage import stage_main
from vad.validate import validate_unless_empty

PAIRS = "build/select/pairs.jsonl"
OUT = "build/translate/translated.jsonl"


def main() -> dict:
    params = load_params()
    client = make_client(LLMConfig.from_params(params["llm"]))
    try:
        run = StageRun("translate")
        out = translate.run(read_records(PAIRS), params["translate"], client, run)
        return run.finish({OUT: out}, llm=client.stats("translate"), llm_client=client.describe(),
                          licence="CC BY-NC 4.0 (PKU-SafeRLHF; non-commercial, travels with derived data)",
                          validation=validate_unless_empty(out, "translated", "build/translate/gx_translated.json"))
    finally:
        client.close()


if __name__ == "__main__":
    stage_main("translate", main)
