"""`LLMConfig`: the `llm:` section of params.yaml, typed and checked.

The config holds the NAME of the environment variable with the API key (`api_key_env`), never the key itself,
so `repr(cfg)`, logs, lineage and the dataset card can never leak it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

BACKENDS = ("local", "openai")

# Generation parameters a task may override (GenerationTask.gen); everything else is client-wide.
GEN_KEYS = ("temperature", "top_p", "max_new_tokens", "seed", "repetition_penalty")


class LLMConfigError(ValueError):
    """The llm configuration cannot work (unknown key, bad value, missing API key variable)."""


@dataclass(frozen=True)
class LLMConfig:
    backend: str = "local"            # local | openai
    model: str = "gemma3-270m"        # local: alias or local HF folder; openai: the served model name
    base_url: str = ""                # openai only; "" = the OpenAI default endpoint
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4              # openai: worker threads
    timeout_s: float = 60.0
    max_retries: int = 4              # transport retries per call (429, 5xx, timeouts, broken bodies)
    max_reasks: int = 1               # extra asks when the parser rejects the answer
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 1234
    batch_size: int = 8               # local: prompts generated together
    price_per_1k_input: float = 0.0
    price_per_1k_output: float = 0.0
    # Not in params.yaml (defaults are fine); may be added there if needed.
    repetition_penalty: float = 1.1   # local backend only
    dtype: str = "bfloat16"           # local backend only
    retry_base_s: float = 0.5         # first backoff delay; doubles per retry, with jitter
    retry_max_s: float = 30.0         # cap on one backoff delay (and on an honoured retry-after)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "LLMConfig":
        """Build from the dict under `llm:` in params.yaml. Unknown keys are an error (typos must not pass)."""
        params = dict(params or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise LLMConfigError(f"unknown llm param(s) {unknown}; known: {sorted(known)}")
        kw: dict[str, Any] = {}
        for name, value in params.items():
            default = known[name].default
            try:
                if isinstance(default, bool):
                    kw[name] = bool(value)
                elif isinstance(default, int):
                    if isinstance(value, float) and not value.is_integer():
                        raise ValueError("not an integer")
                    kw[name] = int(value)
                elif isinstance(default, float):
                    kw[name] = float(value)
                else:
                    kw[name] = "" if value is None else str(value)
            except (TypeError, ValueError):
                raise LLMConfigError(f"llm.{name}: cannot use {value!r} (expected {type(default).__name__})") from None
        return cls(**kw)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise LLMConfigError(f"llm.backend must be one of {BACKENDS}, got {self.backend!r}")
        if not self.model:
            raise LLMConfigError("llm.model is empty")
        for name in ("concurrency", "batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise LLMConfigError(f"llm.{name} must be >= 1")
        for name in ("max_retries", "max_reasks", "timeout_s", "retry_base_s", "retry_max_s",
                     "price_per_1k_input", "price_per_1k_output", "temperature"):
            if getattr(self, name) < 0:
                raise LLMConfigError(f"llm.{name} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise LLMConfigError("llm.top_p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise LLMConfigError("llm.repetition_penalty must be > 0")
        if self.timeout_s == 0:
            raise LLMConfigError("llm.timeout_s must be > 0")

    def replace(self, **changes: Any) -> "LLMConfig":
        return dataclasses.replace(self, **changes)

    def gen_defaults(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in GEN_KEYS}


def effective_gen(cfg: LLMConfig, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """cfg generation params with a task's overrides applied, normalised so equal values hash equally."""
    g = cfg.gen_defaults()
    for k, v in (overrides or {}).items():
        if k not in GEN_KEYS:
            raise LLMConfigError(f"unknown generation param {k!r}; allowed: {GEN_KEYS}")
        g[k] = v
    return {
        "temperature": float(g["temperature"]),
        "top_p": float(g["top_p"]),
        "max_new_tokens": int(g["max_new_tokens"]),
        "seed": int(g["seed"]),
        "repetition_penalty": float(g["repetition_penalty"]),
    }
