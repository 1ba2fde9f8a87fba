"""One interface to LLMs for the generating stages (Evol-Instruct, translation, polishing).

    from vad.llm import load_template, make_client, GenerationTask, ParseError, run_tasks
    client = make_client(params.llm)               # params: vad.core.config.Params (or the stage's view)
    prompt = load_template("name").render(**vars)  # vad/generate/prompts/<name>.toml
    results = run_tasks(client, [GenerationTask(key, prompt, parse)], stage="evolve")

Every call is cached by content (SQLite, cache_dir()/llm.sqlite): a rerun makes no calls, a killed run
loses no completed call, and the cache stores raw text so changing a parser costs nothing. llm.max_calls and
llm.max_cost cap what one client (one stage run) spends: SpendCapReached, completed calls cached."""
from vad.llm.cache import Completion, RequestCache, cache_key
from vad.llm.client import CallError, LLMClient, LLMFatalError, Request, SpendCapReached, safe_url
from vad.llm.config import GEN_KEYS
from vad.llm.runner import run_tasks
from vad.llm.tasks import GenerationTask, ParseError, TaskResult
from vad.llm.templates import DEFAULT_STOP, Prompt, Template, TemplateError, load_template, template_file

__all__ = [
    "Prompt", "Template", "load_template", "template_file", "make_client", "client_class", "GenerationTask", "TaskResult",
    "ParseError", "run_tasks",
    "LLMClient", "LLMFatalError", "SpendCapReached", "TemplateError", "CallError", "Completion", "Request",
    "RequestCache", "cache_key", "safe_url", "GEN_KEYS", "DEFAULT_STOP",
]


def client_class(backend: str) -> type[LLMClient]:
    """The client class of a backend (`llm.backend`); importing it loads no model."""
    if backend == "openai":
        from vad.llm.openai_backend import OpenAIClient

        return OpenAIClient
    from vad.llm.local_backend import LocalClient

    return LocalClient


def make_client(cfg, cache_path=None) -> LLMClient:
    """The client for `cfg.backend` (cfg: the llm params). Cheap: the local model is loaded on first use."""
    return client_class(cfg.backend)(cfg, cache_path)
