"""evolve and translate against the fake OpenAI-compatible server (tests/support/fake_openai.py) with ~30% faults:
both stages complete, every record is output or ledgered (the books balance), and a second run makes zero
requests and writes the same files.

The fake model, the tiny seed/pair inputs and the stage helpers live in tests/support/ (fake_model.py,
llm_stages.py); `stage_env` is a fixture in tests/conftest.py."""
from __future__ import annotations

from collections import Counter

from support.fake_model import REASK_PREFIX, fake_model
from support.fake_openai import FakeOpenAI
from support.llm_stages import check_books, make_pairs, make_seeds, run_stage, set_llm_params
from vad.generate.evolve import OPS


# --- the fault tests -------------------------------------------------------------------------------------------
def test_evolve_with_faults_balances_and_rerun_is_free(stage_env):
    seeds = make_seeds()
    with FakeOpenAI(fake_model, fault_rate=0.3, seed=11, slow_s=1.5, retry_after_s=0.05) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 2})
        run_stage(stage_env, "evolve")
        faults = srv.fault_counts()
        assert sum(faults.values()) >= 5 and len(faults) >= 4, faults  # the faults really happened
        out, ledger, m = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
        assert out, "some evolutions survive the faults"
        reasons = Counter(e["reason"] for e in ledger)
        assert reasons["evol_over_limit"] == 1 and "llm_error" not in reasons, reasons
        # every seed that was evolved leaves exactly once: consumed (has a descendant) or evol_exhausted
        emitted_seeds = {r["meta"]["seed_id"] for r in out}
        exhausted = {e["id"] for e in ledger if e["reason"] == "evol_exhausted"}
        assert emitted_seeds | exhausted == {s.id for s in seeds[:6]} and not emitted_seeds & exhausted
        assert m["consumed"] == len(emitted_seeds)
        assert m["llm"]["retries"] > 0 and m["llm"]["calls"] > 0
        first = (stage_env / "build/evolve/evol.jsonl").read_bytes(), (stage_env / "build/ledger/evolve.jsonl").read_bytes()

        n = srv.count
        m2 = run_stage(stage_env, "evolve")
        assert srv.count == n, "the second run must be served from the cache"
        assert m2["llm"]["calls"] == 0 and m2["llm"]["cache_hits"] > 0
        assert ((stage_env / "build/evolve/evol.jsonl").read_bytes(),
                (stage_env / "build/ledger/evolve.jsonl").read_bytes()) == first


def test_translate_with_faults_balances_and_rerun_is_free(stage_env):
    pairs = make_pairs()
    with FakeOpenAI(fake_model, fault_rate=0.3, seed=5, slow_s=1.5, retry_after_s=0.05) as srv:
        set_llm_params(stage_env, srv, translate={"limit": 5})
        run_stage(stage_env, "translate")
        assert sum(srv.fault_counts().values()) >= 3, srv.fault_counts()
        out, ledger, m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
        assert m["created"] == 0 and m["consumed"] == 0
        assert out and "llm_error" not in {e["reason"] for e in ledger}
        # each English pair is either translated (its id in parents) or ledgered under its own id
        done = {r["lineage"]["parents"][-1] for r in out}
        dropped = {e["id"] for e in ledger}  # drops are ledgered under the English pair's id
        assert done | dropped == {p.id for p in pairs} and not done & dropped
        first = (stage_env / "build/translate/translated.jsonl").read_bytes()

        n = srv.count
        m2 = run_stage(stage_env, "translate")
        assert srv.count == n and m2["llm"]["calls"] == 0
        assert (stage_env / "build/translate/translated.jsonl").read_bytes() == first


def test_unparseable_first_answers_are_reasked_and_change_nothing(stage_env, tmp_path, monkeypatch):
    """Every first ask of a rewrite, judge, translation or polish is answered with garbage: the parsers reject it,
    the runner re-asks, and the outputs are byte-identical to a run without faults."""
    evol = {"seed_limit": 6, "rounds": 2, "breadth_share": 0.0}
    outputs = {}
    for mode in ("clean", "garbage"):
        monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / f"cache-{mode}"))

        def fault_fn(_i, messages):
            system = messages[0]["content"] if messages[0]["role"] == "system" else ""
            first_ask = not any(m["content"].startswith(REASK_PREFIX) for m in messages if m["role"] == "user")
            answer_step = "负责任、有温度的中文助手" in system  # "我不知道" is a parseable (empty) answer: rule 3
            return "garbage" if mode == "garbage" and first_ask and not answer_step else None

        with FakeOpenAI(fake_model, fault_fn=fault_fn) as srv:
            set_llm_params(stage_env, srv, evol=evol, translate={"limit": 5})
            me, mt = run_stage(stage_env, "evolve"), run_stage(stage_env, "translate")
        outputs[mode] = [(stage_env / p).read_bytes() for p in ("build/evolve/evol.jsonl", "build/translate/translated.jsonl",
                                                                "build/ledger/evolve.jsonl", "build/ledger/translate.jsonl")]
        if mode == "garbage":
            assert srv.fault_counts()["garbage"] == me["funnel"]["attempted"] + me["funnel"]["judged"] + 2 * 15
            assert me["llm"]["reasks"] == me["funnel"]["attempted"] + me["funnel"]["judged"]
            assert mt["llm"]["reasks"] == 2 * 15  # 5 pairs × 3 texts, translated and polished
    assert outputs["clean"] == outputs["garbage"]


def test_failed_calls_are_ledgered_with_their_step_and_part(stage_env):
    """A call that fails for good (HTTP 500 on every try) ledgers its record once, as llm_error, with the step
    (and field:chunk) in the detail: a rewrite (with an attempt record), a judge, a translation and a polish."""

    def fail(_i, messages):
        system, task = messages[0]["content"], messages[-1]["content"]
        return "500" if (("提示改写专家" in system and "同事" in task)
                         or ("判断两个提示是否相同" in system and "燃油车" in task)
                         or ("把英文翻译成简体中文" in system and "coworker" in task)
                         or ("润色下面的中文译文" in system and "911" in task)) else None

    with FakeOpenAI(fake_model, fault_fn=fail) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 1, "breadth_share": 0.0},
                       translate={"limit": 2}, llm={"max_retries": 1})
        run_stage(stage_env, "evolve")
        run_stage(stage_env, "translate")
    seeds, pairs = make_seeds(), make_pairs()
    _out, ledger, m = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
    errors = {e["record"]["meta"]["seed_id"]: e for e in ledger if e["reason"] == "llm_error"}
    rewrite, judge = errors[seeds[2].id], errors[seeds[0].id]  # 同事… and 燃油车…
    assert len(errors) == 2 and m["funnel"]["attempted"] == 6 and m["funnel"]["rewritten"] == 5
    assert rewrite["step"] == "rewrite" and rewrite["detail"].startswith("rewrite: HTTP 500")
    assert rewrite["round"] == 1 and rewrite["op"] in OPS and rewrite["record"]["instruction"] == seeds[2].instruction
    assert judge["step"] == "judge" and judge["detail"].startswith("judge: HTTP 500")
    assert m["per_op"][rewrite["op"]]["llm_error"] >= 1 and m["eliminated_by_rule"]["llm_error"] == 2
    _out, ledger, m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
    by_id = {e["id"]: e for e in ledger if e["reason"] == "llm_error"}
    assert by_id[pairs[1].id]["detail"].startswith("translate instruction:0: HTTP 500")  # the coworker prompt
    assert by_id[pairs[0].id]["detail"].startswith("polish output:0: HTTP 500")  # its draft holds 911
    assert (by_id[pairs[1].id]["step"], by_id[pairs[0].id]["step"]) == ("translate", "polish")
    assert m["funnel"]["chunks"] == 6 and m["funnel"]["translated"] == 1 and m["funnel"]["polished"] == 0
