"""`vad llm estimate` against what evolve and translate then really send to the fake OpenAI server: the estimate
calls nothing, its exact figures (first asks of rewrites and translations, the prompts of round-1 rewrites and
of translations) equal the requests the server receives, and every real count stays within its upper bound."""
from __future__ import annotations

import json
from collections import defaultdict

import pytest

from support.fake_model import REASK_PREFIX, fake_model
from support.fake_openai import FakeOpenAI
from support.llm_stages import make_pairs, run_stage, set_llm_params, write_records
from vad import cli
from vad.generate.estimate import MESSAGE_TOKENS, approx_tokens
from vad.core.config import LLMParams
from vad.llm.config import call_cost

SEED = 1234  # llm.seed: evolve's round r asks with seed + r - 1
STEPS = {"提示改写专家": ("evolve", "rewrite"), "提示创作专家": ("evolve", "rewrite"),
         "判断两个提示是否相同": ("evolve", "judge"), "负责任、有温度的中文助手": ("evolve", "answer"),
         "把英文翻译成简体中文": ("translate", "translate"), "润色下面的中文译文": ("translate", "polish")}


def row_of(body: dict, rounds: int) -> tuple[str, str, str]:
    system = body["messages"][0]["content"]
    stage, step = next(v for k, v in STEPS.items() if k in system)
    if stage == "translate":
        return stage, step, ""
    r = body["seed"] - SEED + 1
    return stage, step, "1" if r == 1 else (f"2-{rounds}" if rounds > 2 else "2")


def garbage_first(_i, messages) -> str | None:
    """Unusable first answers for one seed and one pair: their calls are re-asked."""
    first = not any(m["role"] == "user" and m["content"].startswith(REASK_PREFIX) for m in messages)
    text = messages[-1]["content"]
    return "garbage" if first and ("燃油车" in text or "medical waste" in text) else None


# a pair whose answer is longer than the local backend's chunks (200 characters): the chunking must be the backend's
LONG = ("How should I respond to a friend who shares false health advice online?",
        "First, check the claim against a reliable source such as a public health agency. Then talk to your friend "
        "privately and kindly, because people rarely change their minds when they are corrected in public. Share "
        "the source you found and explain why the advice could hurt someone. If the post is dangerous, you can "
        "also report it to the platform.", "Just mock them in the comments.")


def requests(log: list[dict], rounds: int) -> dict[tuple, dict[str, int]]:
    """The requests the server got, summed per estimate row."""
    real: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in log:
        body = e["body"]
        r = real[row_of(body, rounds)]
        reask = any(m["role"] == "user" and m["content"].startswith(REASK_PREFIX) for m in body["messages"])
        tokens = sum(approx_tokens(m["content"]) + MESSAGE_TOKENS for m in body["messages"])
        r["calls_max"] += 1
        r["prompt_tokens_max"] += tokens
        r["output_tokens_max"] += body["max_tokens"]
        r["largest_prompt"] = max(r["largest_prompt"], tokens)
        if not reask:
            r["calls"] += 1
            r["prompt_tokens"] += tokens
    return real


def estimate(capsys, *args: str) -> dict:
    assert cli.main(["llm", "estimate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# without re-asks the bounds on text a model writes first (the evolved prompt, the draft) are what holds each prompt
@pytest.mark.parametrize("rounds, breadth, reasks", [(3, 0.3, 0), (1, 0.0, 2)])
def test_estimate_is_what_the_stages_then_send(stage_env, capsys, rounds, breadth, reasks):
    prices = {"price_per_1k_input": 0.5, "price_per_1k_output": 2.0}
    write_records(stage_env / "build/select/pairs.jsonl", make_pairs([LONG]) + make_pairs())
    with FakeOpenAI(fake_model, fault_fn=garbage_first) as srv:
        set_llm_params(stage_env, srv, llm={**prices, "max_reasks": reasks}, translate={"limit": 5},
                       evol={"seed_limit": 6, "rounds": rounds, "breadth_share": breadth})
        est = estimate(capsys)
        assert srv.count == 0, "the estimate must not call the model"
        run_stage(stage_env, "evolve")
        run_stage(stage_env, "translate")
        real = requests(list(srv.log), rounds)
    rows = {(x["stage"], x["step"], x["rounds"]): x for x in est["rows"]}
    assert set(real) <= set(rows), set(real) - set(rows)
    assert any(r["calls_max"] > r["calls"] for r in real.values()) == bool(reasks)  # the garbage was re-asked
    for key, x in rows.items():
        r = real.get(key, {})
        if x["exact"]:
            assert r.get("calls", 0) == x["calls"], key
        for k in ("calls", "calls_max", "prompt_tokens", "prompt_tokens_max", "output_tokens_max", "largest_prompt"):
            assert r.get(k, 0) <= x[k], (key, k, r.get(k), x[k])
        assert x["cost_max"] == pytest.approx(x["prompt_tokens_max"] / 1000 * 0.5 + x["output_tokens_max"] / 1000 * 2.0)
    # the rendered prompts are the ones sent: round-1 rewrites and translations to the token
    for key in (("evolve", "rewrite", "1"), ("translate", "translate", "")):
        assert real[key]["prompt_tokens"] == rows[key]["prompt_tokens"], key
    assert rows[("evolve", "rewrite", "1")]["calls"] == 6 and rows[("translate", "translate", "")]["calls"] == 15
    t = est["total"]
    assert t["calls_max"] == sum(x["calls_max"] for x in est["rows"])
    assert t["cost_max"] == pytest.approx(call_cost(LLMParams(**prices), t["prompt_tokens_max"], t["output_tokens_max"]))
    assert est["inputs"]["evolve"] == {"file": "build/seeds/seeds.jsonl", "seeds": 7, "seed_limit": 6, "pool": 6,
                                       "rounds": rounds}


def test_when_every_answer_is_unusable_the_exact_rows_reach_their_bounds(stage_env, capsys):
    """The worst case: every ask of every round-1 rewrite and every translation is answered with garbage, so all
    of them are re-asked llm.max_reasks times — the calls and output tokens of those rows equal their bounds."""
    with FakeOpenAI(fake_model, fault_fn=lambda _i, _m: "garbage") as srv:
        set_llm_params(stage_env, srv, translate={"limit": 5}, evol={"seed_limit": 6, "rounds": 1})
        est = estimate(capsys)
        run_stage(stage_env, "evolve")
        run_stage(stage_env, "translate")
        real = requests(list(srv.log), 1)
    rows = {(x["stage"], x["step"], x["rounds"]): x for x in est["rows"]}
    assert set(real) == {("evolve", "rewrite", "1"), ("translate", "translate", "")}  # nothing got further
    for key, r in real.items():
        x = rows[key]
        assert (r["calls"], r["calls_max"], r["output_tokens_max"]) == (x["calls"], x["calls_max"], x["output_tokens_max"])
        assert x["calls_max"] == 3 * x["calls"]  # llm.max_reasks = 2 in these tests
        assert r["prompt_tokens"] == x["prompt_tokens"]
        assert r["prompt_tokens_max"] <= x["prompt_tokens_max"] and r["largest_prompt"] <= x["largest_prompt"]


def test_estimate_table_one_stage_and_missing_input(stage_env, capsys):
    assert cli.main(["llm", "estimate"]) == 0
    out = capsys.readouterr().out
    assert "nothing is called" in out and "evolve     rewrite" in out and out.splitlines()[-2].startswith("total")
    est = estimate(capsys, "translate")
    assert {x["stage"] for x in est["rows"]} == {"translate"} and "evolve" not in est["inputs"]
    (stage_env / "build/seeds/seeds.jsonl").unlink()
    assert cli.main(["llm", "estimate", "evolve"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vad llm: build/seeds/seeds.jsonl: not found") \
        and "dvc repro seeds" in err
    assert cli.main(["llm", "estimate", "translate"]) == 0  # the other stage's input is there
