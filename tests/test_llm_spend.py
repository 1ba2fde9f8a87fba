"""The spend guard (llm.max_calls, llm.max_cost) against the fake OpenAI server: the cap stops the run with one
line, every completed call stays cached, a rerun with a higher cap makes exactly the calls not yet made (counted
by the server), and cached answers never count against the cap. Also the evolve stage stopped by the cap as a
real process (exit status 1, one line, no traceback)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from support.fake_model import fake_model
from support.fake_openai import FakeOpenAI
from support.llm_stages import run_stage, set_llm_params
from vad.core.config import LLMParams, ParamsError
from vad.llm import GenerationTask, SpendCapReached, load_template, make_client, run_tasks

TAIL = "; completed calls are cached — raise the cap and rerun to continue"


def cfg_for(srv: FakeOpenAI, **kw) -> LLMParams:
    base = dict(backend="openai", base_url=srv.base_url, model="fake-model", concurrency=8, timeout_s=5.0,
                max_retries=0, max_reasks=0)
    return LLMParams(**{**base, **kw})


def tasks(n: int) -> list[GenerationTask]:
    tmpl = load_template("_selftest")  # one-digit numbers: every prompt (and echo answer) has the same length
    return [GenerationTask(key=f"q{i}", prompt=tmpl.render(instruction=f"第{i}个问题：什么是诚信？", input=""))
            for i in range(n)]


def test_max_calls_stops_and_a_rerun_makes_only_the_missing_calls(tmp_path):
    with FakeOpenAI() as srv:
        full = run_tasks(make_client(cfg_for(srv), tmp_path / "full.sqlite"), tasks(10), stage="s", progress=False)
        assert srv.count == 10

        capped = tmp_path / "capped.sqlite"
        with pytest.raises(SpendCapReached) as e:
            run_tasks(make_client(cfg_for(srv, max_calls=4), capped), tasks(10), stage="s", progress=False)
        assert str(e.value) == "llm.max_calls=4 reached after 4 calls" + TAIL
        assert srv.count == 10 + 4  # the cap holds with 8 threads

        # cached answers are free: with the cap unchanged, the 4 cached tasks are answered and 4 new calls made
        with pytest.raises(SpendCapReached):
            run_tasks(make_client(cfg_for(srv, max_calls=4), capped), tasks(10), stage="s", progress=False)
        assert srv.count == 10 + 8
        # a higher cap: exactly the missing 2 calls; the answers are those of the run without a cap
        res = run_tasks(make_client(cfg_for(srv, max_calls=5), capped), tasks(10), stage="s", progress=False)
        assert srv.count == 10 + 10
        assert [(r.key, r.ok, r.value) for r in res] == [(r.key, r.ok, r.value) for r in full]
        # everything cached: even a cap of one call passes, and makes none
        res = run_tasks(make_client(cfg_for(srv, max_calls=1), capped), tasks(10), stage="s", progress=False)
        assert srv.count == 20 and all(r.cached for r in res)


def test_max_cost_stops_before_the_call_that_would_start_over_the_cap(tmp_path):
    prices = dict(price_per_1k_input=1.0, price_per_1k_output=1.0, concurrency=1)
    with FakeOpenAI() as srv:
        client = make_client(cfg_for(srv, **prices), tmp_path / "full.sqlite")
        run_tasks(client, tasks(6), stage="s", progress=False)
        per_call = client.stats("s")["est_cost"] / 6  # equal lengths: every call costs the same
        n = srv.count
        # calls start while the cost so far is below the cap: after 0, 1 and 2 calls, not after 3
        with pytest.raises(SpendCapReached, match=r"^llm\.max_cost=.* reached after 3 calls \(estimated cost "):
            run_tasks(make_client(cfg_for(srv, max_cost=round(2.5 * per_call, 6), **prices), tmp_path / "c.sqlite"),
                      tasks(6), stage="s", progress=False)
        assert srv.count == n + 3


def test_max_cost_needs_a_price():
    with pytest.raises(ParamsError, match=r"llm\.max_cost: .*price_per_1k"):
        LLMParams.from_params({"max_cost": 5})
    assert LLMParams.from_params({"max_cost": 5, "price_per_1k_output": 0.01}).max_cost == 5


def test_the_cap_stops_the_evolve_stage_with_one_line_and_a_rerun_completes_it(stage_env, tmp_path, monkeypatch):
    outputs = ("build/evolve/evol.jsonl", "build/ledger/evolve.jsonl")
    with FakeOpenAI(fake_model) as srv:
        # the run without a cap, on its own cache: how many calls the stage needs, and what it writes
        monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "cache-full"))
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 2}, llm={"max_calls": 0})
        run_stage(stage_env, "evolve")
        needed = srv.count
        want = [(stage_env / p).read_bytes() for p in outputs]
        assert needed > 10

        # capped, as `dvc repro` runs it: a process of its own
        capped = tmp_path / "cache-capped"
        set_llm_params(stage_env, srv, llm={"max_calls": 10})
        env = {**os.environ, "VAD_CACHE_DIR": str(capped), "PYTHONPATH": str(ROOT)}
        p = subprocess.run([sys.executable, "stages/evolve.py"], cwd=stage_env, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 1, p.stderr[-2000:]
        assert "Traceback" not in p.stderr
        assert p.stderr.strip().splitlines()[-1] == "stage evolve failed: llm.max_calls=10 reached after 10 calls" + TAIL
        assert srv.count == needed + 10

        # the cap raised: only the calls not yet made, and the same files as the run without a cap
        monkeypatch.setenv("VAD_CACHE_DIR", str(capped))
        set_llm_params(stage_env, srv, llm={"max_calls": 1000})
        m = run_stage(stage_env, "evolve")
        assert srv.count == needed + needed
        assert m["llm"]["calls"] == needed - 10 and m["llm"]["cache_hits"] >= 10
        assert [(stage_env / p).read_bytes() for p in outputs] == want


@pytest.mark.slow
def test_max_calls_with_the_local_model(tmp_path):
    """The local backend asks the guard per prompt, inside its batches: the cap holds exactly there too."""
    cfg = dict(backend="local", model="gemma3-270m", max_new_tokens=4, batch_size=4, temperature=0.0)
    cache = tmp_path / "local.sqlite"
    with pytest.raises(SpendCapReached, match=r"^llm\.max_calls=2 reached after 2 calls;"):
        run_tasks(make_client(LLMParams(**cfg, max_calls=2), cache), tasks(5), stage="s", progress=False)
    client = make_client(LLMParams(**cfg, max_calls=3), cache)
    res = run_tasks(client, tasks(5), stage="s", progress=False)
    assert client.stats("s")["calls"] == 3 and client.stats("s")["cache_hits"] == 2 and all(r.ok for r in res)
