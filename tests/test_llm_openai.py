"""The openai backend against a real local HTTP server (tests/support/fake_openai.py): faults, retries, re-asks,
the request cache (zero calls on rerun, survives a kill), and the API key never leaving the client."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from support.fake_openai import FAULTS, FakeOpenAI, messages_hash
from vad.core.config import LLMParams, ParamsError
from vad.llm import GenerationTask, LLMFatalError, ParseError, load_template, make_client, run_tasks
from vad.llm.client import REASK_TEXT

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "VAD_TEST_LLM_KEY"
SECRET = "sk-test-SECRET-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def llm_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(KEY_ENV, SECRET)
    return tmp_path / "cache"


def cfg_for(srv: FakeOpenAI, **kw) -> LLMParams:
    base = dict(backend="openai", base_url=srv.base_url, model="fake-model", api_key_env=KEY_ENV, concurrency=8,
                timeout_s=1.0, max_retries=4, max_reasks=1, retry_base_s=0.01, retry_max_s=1.0,
                price_per_1k_input=0.5, price_per_1k_output=2.0)
    return LLMParams(**{**base, **kw})


def parse_answer(text: str) -> str:
    if not text.startswith("答："):
        raise ParseError("回答必须以“答：”开头")
    return text[2:]


def make_tasks(n: int, parse=parse_answer, tag: str = "", **gen) -> list[GenerationTask]:
    tmpl = load_template("_selftest")
    return [GenerationTask(key=f"rec{i}:r1", prompt=tmpl.render(instruction=f"{tag}第{i}个问题：什么是诚信？", input=""),
                           parse=parse, gen=dict(gen)) for i in range(n)]


def test_faults_every_task_ends_ok_or_with_reason_and_rerun_is_free(llm_env):
    with FakeOpenAI(fault_rate=0.3, seed=3, slow_s=1.6, retry_after_s=0.05) as srv:
        client = make_client(cfg_for(srv))
        tasks = make_tasks(60)
        res = run_tasks(client, tasks, stage="evolve", desc="faults", progress=False)
        assert [r.key for r in res] == [t.key for t in tasks]
        for r in res:
            assert r.ok or r.reason in ("llm_error", "parse_error"), r
            if r.ok:
                assert r.reason is None and r.value == r.text[2:] and r.attempts >= 1 and not r.cached
            else:
                assert r.detail
        failed = [i for i, r in enumerate(res) if r.reason == "llm_error"]
        assert len(failed) <= 3  # 5 tries per call: a task rarely runs out of them
        assert all(res[i].attempts == 1 for i in failed)  # (with this seed) so their first ask is re-sent below
        # the schedule is a function of (seed, messages): every fault kind was really served
        assert set(srv.fault_counts()) == set(FAULTS), srv.fault_counts()
        st = client.stats("evolve")
        assert st["retries"] > 0 and st["reasks"] > 0 and st["cache_hits"] == 0
        assert st["calls"] == len(tasks) + st["reasks"]  # one call per ask; retries are not calls
        assert st["failures"] == len(failed)
        assert st["prompt_tokens"] > 0 and st["completion_tokens"] > 0
        assert st["est_cost"] == pytest.approx(st["prompt_tokens"] / 1000 * 0.5 + st["completion_tokens"] / 1000 * 2.0,
                                               abs=1e-5)
        n = srv.count

        # second run, new client (a new process in real life): every completed call comes from the cache;
        # only the asks that failed for good (never cached) are sent again
        srv.fault_rate = 0.0
        client2 = make_client(cfg_for(srv))
        res2 = run_tasks(client2, tasks, stage="evolve", progress=False)
        failed_hashes = {messages_hash(tasks[i].prompt.messages) for i in failed}
        assert sorted(e["hash"] for e in srv.log[n:]) == sorted(failed_hashes)
        for i, (a, b) in enumerate(zip(res, res2)):
            if i in failed:
                assert b.ok and not b.cached
            else:
                assert (b.ok, b.value, b.reason, b.attempts, b.cached) == (a.ok, a.value, a.reason, a.attempts, True)
        st2 = client2.stats("evolve")
        assert st2["calls"] == len(failed) and st2["cache_hits"] == len(tasks) - len(failed) + st["reasks"]
        n = srv.count
        res3 = run_tasks(make_client(cfg_for(srv)), tasks, stage="evolve", progress=False)
        assert srv.count == n and all(r.cached for r in res3)


def test_cache_key_does_not_depend_on_api_key(llm_env, monkeypatch):
    with FakeOpenAI() as srv:
        tasks = make_tasks(5)
        client_a = make_client(cfg_for(srv))
        keys_a = [client_a.build_request(t.prompt, t.gen).key for t in tasks]
        run_tasks(client_a, tasks, stage="s", progress=False)
        assert srv.count == 5
        monkeypatch.setenv(KEY_ENV, "sk-a-completely-different-key")
        client_b = make_client(cfg_for(srv))
        assert [client_b.build_request(t.prompt, t.gen).key for t in tasks] == keys_a
        res = run_tasks(client_b, tasks, stage="s", progress=False)
        assert srv.count == 5 and all(r.ok and r.cached for r in res)
        # but the model and the generation params are part of the key
        client_c = make_client(cfg_for(srv, temperature=0.2))
        assert client_c.build_request(tasks[0].prompt, {}).key != keys_a[0]
        client_d = make_client(cfg_for(srv, model="another-model"))
        assert client_d.build_request(tasks[0].prompt, {}).key != keys_a[0]
        assert client_a.build_request(tasks[0].prompt, {"seed": 7}).key != keys_a[0]


def test_api_key_is_never_stored_logged_or_described(llm_env, caplog):
    caplog.set_level("DEBUG")
    with FakeOpenAI(fault_rate=0.3, seed=5, slow_s=1.6) as srv:
        cfg = cfg_for(srv)
        client = make_client(cfg)
        run_tasks(client, make_tasks(20), stage="s", progress=False)
        assert all(e["has_auth"] for e in srv.log)  # the key was sent...
        for shown in (repr(cfg), str(cfg), repr(client), json.dumps(client.describe()), json.dumps(client.stats()),
                      caplog.text):
            assert SECRET not in shown  # ...and is nowhere else
        assert client.describe()["base_url"] == srv.base_url
    files = [p for p in llm_env.rglob("*") if p.is_file()]
    assert any(p.name == "llm.sqlite" for p in files)
    for p in files:
        assert SECRET.encode() not in p.read_bytes(), p


def test_missing_key_names_the_variable_and_local_urls_get_a_dummy(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    cfg = LLMParams(backend="openai", base_url="https://api.example.com/v1", model="m", api_key_env=KEY_ENV)
    with pytest.raises(ParamsError, match=KEY_ENV):
        make_client(cfg)
    make_client(cfg.replace(base_url="http://127.0.0.1:9/v1"))  # a local server needs no key


def test_call_failing_after_retries_is_llm_error_and_not_cached(llm_env):
    with FakeOpenAI(fault_rate=1.0, faults=("500", "503")) as srv:
        client = make_client(cfg_for(srv, max_retries=2))
        tasks = make_tasks(4)
        res = run_tasks(client, tasks, stage="s", progress=False)
        assert all(not r.ok and r.reason == "llm_error" and "HTTP 50" in r.detail for r in res)
        assert srv.count == 4 * 3
        st = client.stats("s")
        assert st["failures"] == 4 and st["retries"] == 4 * 2 and st["calls"] == 4
        srv.fault_rate = 0.0  # the endpoint recovers: failures were not cached, so they are asked again
        res = run_tasks(client, tasks, stage="s2", progress=False)
        assert all(r.ok for r in res) and srv.count == 4 * 3 + 4


def test_timeouts_and_broken_bodies_are_retried(llm_env):
    kinds = iter(["timeout", "truncated", "nonjson", None])
    with FakeOpenAI(fault_fn=lambda i, m: next(kinds, None), slow_s=1.0) as srv:
        client = make_client(cfg_for(srv, timeout_s=0.4, concurrency=1))
        (r,) = run_tasks(client, make_tasks(1), stage="s", progress=False)
        assert r.ok and srv.count == 4 and client.stats("s")["retries"] == 3


def test_connection_errors_are_retried_then_reported(llm_env):
    with FakeOpenAI() as srv:
        url = srv.base_url
    # the server is gone: nothing listens on that port any more
    client = make_client(LLMParams(backend="openai", base_url=url, model="m", api_key_env=KEY_ENV, max_retries=2,
                                   retry_base_s=0.01, timeout_s=2))
    (r,) = run_tasks(client, make_tasks(1), stage="s", progress=False)
    assert r.reason == "llm_error" and "connection error" in r.detail
    assert client.stats("s")["retries"] == 2 and client.stats("s")["failures"] == 1


def test_requests_run_concurrently(llm_env):
    with FakeOpenAI(latency_s=0.5) as srv:
        client = make_client(cfg_for(srv, concurrency=8))
        res = run_tasks(client, make_tasks(16), stage="s", progress=False)
        assert all(r.ok for r in res)
        # from the server's log, not a stopwatch: the server holds each request 0.5 s, so requests starting within
        # 0.5 s of each other were in flight together — eight at once (the limit), however slow this machine is
        starts = sorted(e["t_start"] for e in srv.log)
        peak = max(sum(1 for t in starts if t0 <= t < t0 + 0.5) for t0 in starts)
        assert peak == 8


def test_retry_after_is_honoured(llm_env):
    with FakeOpenAI(fault_fn=lambda i, m: "429" if i == 0 else None, retry_after_s=0.5) as srv:
        client = make_client(cfg_for(srv, retry_base_s=0.001))
        t0 = time.monotonic()
        (r,) = run_tasks(client, make_tasks(1), stage="s", progress=False)
        assert r.ok and srv.count == 2
        assert time.monotonic() - t0 >= 0.5
        assert srv.log[1]["t_start"] - srv.log[0]["t_done"] >= 0.45


def test_reask_adds_a_turn_with_the_reason(llm_env):
    marker = REASK_TEXT.split("（")[0]

    def answer(messages):
        return "答：好的。" if marker in messages[-1]["content"] else "抱歉，我不知道。"

    with FakeOpenAI(answer_fn=answer) as srv:
        client = make_client(cfg_for(srv))
        res = run_tasks(client, make_tasks(3), stage="s", progress=False)
        assert all(r.ok and r.value == "好的。" and r.attempts == 2 for r in res)
        assert srv.count == 6 and client.stats("s")["reasks"] == 3
        reask = [e["body"]["messages"] for e in srv.log if len(e["body"]["messages"]) > 6]
        assert len(reask) == 3
        assert reask[0][-2] == {"role": "assistant", "content": "抱歉，我不知道。"}
        assert "必须以“答：”开头" in reask[0][-1]["content"]

        client0 = make_client(cfg_for(srv, max_reasks=0))
        res = run_tasks(client0, make_tasks(2, tag="另"), stage="s", progress=False)
        assert all(r.reason == "parse_error" and r.attempts == 1 and r.text == "抱歉，我不知道。" for r in res)


def test_unusable_answer_after_reasks_is_parse_error(llm_env):
    with FakeOpenAI(fault_rate=1.0, faults=("garbage",)) as srv:
        client = make_client(cfg_for(srv, max_reasks=2))
        res = run_tasks(client, make_tasks(3), stage="s", progress=False)
        assert all(not r.ok and r.reason == "parse_error" and r.attempts == 3 and r.text == "我不知道"
                   and "答：" in r.detail for r in res)
        assert srv.count == 9


def test_parser_change_and_parser_bug_cost_no_calls(llm_env):
    with FakeOpenAI() as srv:
        client = make_client(cfg_for(srv))
        tasks = make_tasks(4)
        run_tasks(client, tasks, stage="s", progress=False)
        n = srv.count
        stricter = make_tasks(4, parse=lambda t: len(parse_answer(t)))
        res = run_tasks(client, stricter, stage="s", progress=False)
        assert srv.count == n and all(r.ok and isinstance(r.value, int) for r in res)

        def buggy(text):
            return text["no"]  # TypeError: a bug, not a model failure

        res = run_tasks(client, make_tasks(4, parse=buggy), stage="s", progress=False)
        assert srv.count == n  # no re-ask for a crashing parser
        assert all(r.reason == "parse_error" and "TypeError" in r.detail for r in res)


def test_generation_params_reach_the_server(llm_env):
    tmpl = load_template("_selftest")
    with FakeOpenAI() as srv:
        client = make_client(cfg_for(srv, temperature=0.3, top_p=0.8, max_new_tokens=40, seed=11))
        p = tmpl.render(instruction="什么是友善？", input="")
        res = run_tasks(client, [GenerationTask("a", p), GenerationTask("b", p, gen={"temperature": 1.0, "seed": 5}),
                                 GenerationTask("c", p)], stage="s", progress=False)
        assert all(r.ok for r in res)
        assert srv.count == 2  # a and c are the same request: one call
        bodies = sorted((e["body"] for e in srv.log), key=lambda b: b["temperature"])
        assert {k: bodies[0][k] for k in ("model", "temperature", "top_p", "max_tokens", "seed")} == \
            {"model": "fake-model", "temperature": 0.3, "top_p": 0.8, "max_tokens": 40, "seed": 11}
        assert bodies[1]["temperature"] == 1.0 and bodies[1]["seed"] == 5
        assert "stop" not in bodies[0]  # the template declares no stop: chat answers are not cut at "###"
        assert bodies[0]["messages"] == [dict(m) for m in p.messages]
        assert srv.log[0]["hash"] == messages_hash(p.messages)


def test_rejected_key_aborts_the_run(llm_env):
    with FakeOpenAI(fault_rate=1.0, faults=("401",)) as srv:
        client = make_client(cfg_for(srv))
        with pytest.raises(LLMFatalError, match="401"):
            run_tasks(client, make_tasks(20), stage="s", progress=False)
        assert srv.count < 20  # stopped early, no retries of a 401


def test_bad_request_is_not_retried(llm_env):
    with FakeOpenAI(fault_fn=lambda i, m: "400") as srv:
        client = make_client(cfg_for(srv))
        (r,) = run_tasks(client, make_tasks(1), stage="s", progress=False)
        assert r.reason == "llm_error" and "400" in r.detail and srv.count == 1


KILL_SCRIPT = textwrap.dedent("""
    import json, sys
    from vad.core.config import LLMParams
    from vad.llm import GenerationTask, load_template, make_client, run_tasks
    cfg = LLMParams(backend="openai", base_url=sys.argv[1], model="fake-model", api_key_env=sys.argv[2],
                    concurrency=2, timeout_s=10, retry_base_s=0.01)
    tmpl = load_template("_selftest")
    tasks = [GenerationTask(key=f"k{i}", prompt=tmpl.render(instruction=f"第{i}个问题：什么是诚信？", input=""))
             for i in range(int(sys.argv[3]))]
    client = make_client(cfg)
    res = run_tasks(client, tasks, stage="kill", progress=False)
    print(json.dumps({"ok": sum(r.ok for r in res), **client.stats("kill")}))
""")


def committed_hashes(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {messages_hash(json.loads(r[0])["messages"]) for r in con.execute("SELECT request FROM completions")}
    finally:
        con.close()


def test_killed_run_loses_no_completed_call(llm_env, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    n = 40  # 40 × 0.25 s / 2 workers ≈ 5 s of work
    env = {**os.environ, "VAD_CACHE_DIR": str(llm_env)}
    with FakeOpenAI(latency_s=0.25) as srv:
        args = [sys.executable, str(script), srv.base_url, KEY_ENV, str(n)]
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(srv.delivered()) < 6:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)
        time.sleep(1.0)  # let the client commit those six (and finish a few more)
        proc.kill()
        t_kill = time.monotonic()
        proc.wait()
        n_before = srv.count
        assert n_before < n  # it really was killed mid-run
        done = committed_hashes(llm_env / "llm.sqlite")
        # every answer the server finished a second before the kill is in the cache: each call is committed
        # as it completes, not at the end of the run
        early = {e["hash"] for e in srv.delivered(before=t_kill - 1.0)}
        assert len(early) >= 6 and early <= done

        out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        resent = [e["hash"] for e in srv.log[n_before:]]
        assert not set(resent) & done  # no completed request is sent again
        assert len(resent) == n - len(done) == stats["calls"]
        assert stats["ok"] == n and stats["cache_hits"] == len(done)
        assert len(committed_hashes(llm_env / "llm.sqlite")) == n
    for p in llm_env.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes()
