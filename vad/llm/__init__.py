"""One interface to LLMs for the generating stages (Evol-Instruct, translation, polishing).

    from vad.llm import LLMConfig, load_template, make_client, GenerationTask, ParseError, run_tasks
    cfg = LLMConfig.from_params(params["llm"])
    client = make_client(cfg)                      # "local" (offline default) | "openai" (any compatible API)
    prompt = load_template("name").render(**vars)  # vad/prompts/<name>.toml
    results = run_tasks(client, [GenerationTask(key, prompt, parse)], stage="evolve")

Every call is cached by content (SQLite, cache_dir()/llm.sqlite): a rerun makes no calls, a killed run
loses no completed call, and the cache stores raw text so changing a parser costs nothing."""
from vad.llm.cache import Completion, RequestCache, cache_key
from vad.llm.client import CallError, LLMClient, LLMFatalError, Request, make_client, safe_url
from vad.llm.config import GEN_KEYS, LLMConfig, LLMConfigError
from vad.llm.runner import run_tasks
from vad.llm.tasks import GenerationTask, ParseError, TaskResult
from vad.llm.templates import DEFAULT_STOP, Prompt, Template, TemplateError, load_template

__all__ = [
    "LLMConfig", "Prompt", "Template", "load_template", "make_client", "GenerationTask", "TaskResult",
    "ParseError", "run_tasks",
    "LLMClient", "LLMConfigError", "LLMFatalError", "TemplateError", "CallError", "Completion", "Request",
    "RequestCache", "cache_key", "safe_url", "GEN_KEYS", "DEFAULT_STOP",
]
