"""The local backend with the real packaged model (Gemma 3 270M base, prepared once, shared by all tests).

Each test gives its client a fresh request cache through make_client(cfg, cache_path=...)."""
from __future__ import annotations

import re
import sqlite3

import pytest

from vad.core.config import LLMParams
from vad.llm import GenerationTask, ParseError, load_template, make_client, run_tasks
from vad.compute.models import load_causal_lm

pytestmark = pytest.mark.slow

HAN = re.compile(r"[\u4e00-\u9fff]")
QUESTIONS = ["太阳从哪边升起？", "水在多少度时沸腾？", "什么是诚信？", "为什么要保护环境？"]
MAX_NEW = 16


@pytest.fixture(scope="module")
def lm():
    # memoised per (model, device, dtype): resolved as the clients below resolve llm.device/llm.dtype (auto), so
    # every client shares this copy
    return load_causal_lm("gemma3-270m", LLMParams().dtype, device=LLMParams().device)


def tasks_for(questions=QUESTIONS, parse=None, **gen):
    tmpl = load_template("_selftest")
    kw = {"parse": parse} if parse else {}
    return [GenerationTask(key=f"q{i}", prompt=tmpl.render(instruction=q, input=""), gen=dict(gen), **kw)
            for i, q in enumerate(questions)]


def local_cfg(**kw):
    return LLMParams(**{"backend": "local", "model": "gemma3-270m", "max_new_tokens": MAX_NEW, "batch_size": 4,
                        "temperature": 0.7, "seed": 1234, **kw})


@pytest.fixture(scope="module")
def first(lm, tmp_path_factory):
    """One sampled run of four Chinese few-shot prompts into a fresh cache."""
    db = tmp_path_factory.mktemp("llm_local") / "llm.sqlite"
    client = make_client(local_cfg(), cache_path=db)
    res = run_tasks(client, tasks_for(), stage="gen", progress=False)
    return client, res, db


@pytest.fixture
def count_generate(lm, monkeypatch):
    calls = []
    real = lm.model.generate

    def counting(*a, **kw):
        calls.append(kw["input_ids"].shape[0])
        return real(*a, **kw)

    monkeypatch.setattr(lm.model, "generate", counting)
    return calls


def test_chinese_answers_cut_at_the_stop_string(first, lm):
    client, res, db = first
    assert client.generate_calls == 1  # one batch of four, left-padded
    assert all(r.ok and not r.cached and r.attempts == 1 for r in res)
    for r in res:
        assert HAN.search(r.text), r.text  # a Chinese answer to a Chinese few-shot prompt
        assert "###" not in r.text and "\n\n\n" not in r.text and r.text == r.text.strip()
    st = client.stats("gen")
    assert st["calls"] == 4 and st["prompt_tokens"] > 4 * 40 and 0 < st["completion_tokens"] <= 4 * MAX_NEW
    rows = sqlite3.connect(db).execute("SELECT finish_reason, completion_tokens FROM completions").fetchall()
    assert len(rows) == 4
    assert any(fr == "stop" and n < MAX_NEW for fr, n in rows), rows  # the few-shot format makes it stop early
    d = client.describe()
    assert d["backend"] == "local" and d["model_fingerprint"] == lm.fingerprint and d["templates"] == {"_selftest": "1"}
    # what auto resolved to is reported; on the CPU the request keys are what they were before devices existed
    assert d["device"] == lm.compute.kind and d["dtype"] == lm.compute.dtype and d["compute"]["why"]
    if lm.compute.kind == "cpu":
        assert client.model_id() == f"local:{lm.fingerprint}"


def test_rerun_is_all_cache_hits_with_zero_generate_calls(first, count_generate):
    _, res, db = first
    client = make_client(local_cfg(), cache_path=db)  # a new client, as in a new process
    res2 = run_tasks(client, tasks_for(), stage="gen", progress=False)
    assert count_generate == [] and client.generate_calls == 0
    assert [r.text for r in res2] == [r.text for r in res] and all(r.ok and r.cached for r in res2)
    assert client.stats("gen")["calls"] == 0 and client.stats("gen")["cache_hits"] == 4


def test_model_folder_reproduces_the_seeded_samples_and_shares_the_cache(first, lm, tmp_path, count_generate):
    _, res, db = first
    # Any local HF folder works; here the prepared Gemma folder, loaded as a second copy from its path.
    by_path = make_client(local_cfg(model=str(lm.path)), cache_path=tmp_path / "llm.sqlite")
    fresh = run_tasks(by_path, tasks_for(), stage="gen", progress=False)
    assert count_generate == []  # the other copy generated, not the memoised alias
    assert by_path.stats("gen")["calls"] == 4 and by_path.generate_calls == 1
    # sampling is seeded per request (seed, cache key): a fresh cache reproduces the same text
    assert [r.text for r in fresh] == [r.text for r in res]
    # same weights → same fingerprint → same keys: a moved or renamed folder re-pays nothing
    again = make_client(local_cfg(model=str(lm.path)), cache_path=db)
    run_tasks(again, tasks_for(), stage="gen", progress=False)
    assert again.stats("gen")["cache_hits"] == 4 and again.generate_calls == 0


def test_reask_samples_again_but_greedy_does_not(lm, tmp_path, count_generate):
    def never(text):
        raise ParseError("需要 JSON")

    qs = QUESTIONS[:2]
    client = make_client(local_cfg(max_new_tokens=4, max_reasks=1), cache_path=tmp_path / "llm.sqlite")
    res = run_tasks(client, tasks_for(qs, parse=never), stage="s", progress=False)
    assert all(r.reason == "parse_error" and r.attempts == 2 and r.detail == "需要 JSON" for r in res)
    assert client.stats("s")["reasks"] == 2 and count_generate == [2, 2]  # second ask: new key, new sample
    res = run_tasks(client, tasks_for(qs, parse=never, temperature=0), stage="g", progress=False)
    assert all(r.reason == "parse_error" and r.attempts == 1 for r in res)  # greedy would repeat itself
    assert count_generate == [2, 2, 2]
