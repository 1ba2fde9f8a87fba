"""Stage evaluate (not part of the dataset build): two-choice values items → build/eval/results.jsonl (one row
per item and order) + build/metrics/evaluate.json (acc, acc*, consistency, first_position_rate, ...).

Params: `eval:` (items, backend, model, method, ...; every key optional, see vad/evaluate.py EvalConfig) and,
for the generate method, `llm:` (timeouts, retries, concurrency, api_key_env)."""
import logging

from vad.evaluate import METRICS_PATH, RESULTS_PATH, EvalConfig, format_summary, run
from vad.params import load_params
from vad.stage import stage_main


def main() -> dict:
    params = load_params()
    cfg = EvalConfig.from_params(params.get("eval"))
    metrics = run(cfg, params.get("llm"), RESULTS_PATH, METRICS_PATH)
    logging.getLogger("evaluate").info("\n%s", format_summary(metrics))
    return metrics


if __name__ == "__main__":
    stage_main("evaluate", main)
