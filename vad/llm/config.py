"""Generation parameters (the part of `llm:`, vad.core.config.LLMParams, a task may override per call) and the
cost of a call at `llm.price_per_1k_*`."""
from __future__ import annotations

from typing import Any

from vad.core.config import LLMParams

GEN_KEYS = ("temperature", "top_p", "max_new_tokens", "seed", "repetition_penalty")


def effective_gen(cfg: LLMParams, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """cfg generation params with a task's overrides applied, normalised so equal values hash equally."""
    g = {k: getattr(cfg, k) for k in GEN_KEYS}
    for k, v in (overrides or {}).items():
        if k not in GEN_KEYS:
            raise ValueError(f"unknown generation param {k!r}; allowed: {GEN_KEYS}")
        g[k] = v
    return {
        "temperature": float(g["temperature"]),
        "top_p": float(g["top_p"]),
        "max_new_tokens": int(g["max_new_tokens"]),
        "seed": int(g["seed"]),
        "repetition_penalty": float(g["repetition_penalty"]),
    }


def call_cost(cfg: LLMParams, prompt_tokens: float, completion_tokens: float) -> float:
    """Estimated cost of tokens at llm.price_per_1k_input / price_per_1k_output (the provider's currency)."""
    return prompt_tokens / 1000 * cfg.price_per_1k_input + completion_tokens / 1000 * cfg.price_per_1k_output
