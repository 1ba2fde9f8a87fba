"""The one filter protocol (vad.core.filters): measure apart from deciding, declared reasons, drop or flag, one
loop for StageRun.apply and the generating stages' Funnel.filter."""
import pytest

from vad.core.filters import FLAGS, Drop, Filter, UndeclaredReason, apply
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.generate.funnel import Funnel


def rec(output: str) -> Record:
    return Record(instruction="请介绍一下诚信。", input="", output=output, source="evol",
                  categorization={"level": "person", "value": "诚信"})


class Short(Filter):
    name = "short"
    reasons = {"too_short_for_test": "fewer than 5 characters"}

    def measure(self, r):
        return {"chars": len(r.output)}

    def decide(self, r, stats):
        return Drop("too_short_for_test", f"{stats['chars']} chars") if stats["chars"] < 5 else None


class Liar(Filter):
    reasons = {"declared": "the one it declares"}

    def decide(self, r, stats):
        return Drop("not_declared")


class FlagAll(Filter):
    reasons = {"flagged_for_test": "every record"}
    action = "flag"

    def decide(self, r, stats):
        return Drop("flagged_for_test", "always")


def test_measurement_is_stored_whether_kept_or_dropped():
    a, b = rec("诚信是根本。"), rec("好")
    run = StageRun("merge")
    kept = run.apply(run.take([a, b]), [Short()])
    assert kept == [a] and a.meta["short"] == {"chars": 6}
    (e,) = run.entries
    assert e["reason"] == "too_short_for_test" and e["record"]["meta"]["short"] == {"chars": 1}


def test_an_undeclared_reason_is_a_programming_error():
    with pytest.raises(UndeclaredReason, match="not_declared"):
        Liar().check(rec("随便"))


def test_a_flag_only_filter_keeps_the_record_and_marks_it_and_the_next_filter_still_runs():
    a, b = rec("诚信是根本。"), rec("好")
    run = StageRun("merge")
    kept = run.apply(run.take([a, b]), [FlagAll(), Short()])
    assert kept == [a] and a.meta[FLAGS] == [{"reason": "flagged_for_test", "detail": "always", "by": "FlagAll"}]
    (e,) = run.entries
    assert e["reason"] == "too_short_for_test" and e["record"]["meta"][FLAGS][0]["reason"] == "flagged_for_test"


def test_stage_run_and_funnel_share_one_loop():
    texts = ["诚信是根本。", "好", "说到做到才是诚信。", "行"]
    run_a = StageRun("merge")
    kept_a = run_a.apply(run_a.take([rec(t) for t in texts]), [Short()])
    run_b = StageRun("evolve")
    fn = Funnel(None, run_b, progress=False)
    kept_b = fn.filter(run_b.take([rec(t) for t in texts]), "after_short", [Short()])
    assert [r.output for r in kept_a] == [r.output for r in kept_b] == ["诚信是根本。", "说到做到才是诚信。"]
    assert [e["reason"] for e in run_a.entries] == [e["reason"] for e in run_b.entries]
    assert fn.counts["after_short"] == 2


def test_apply_stops_at_the_first_dropping_filter():
    seen = []

    class Spy(Filter):
        reasons = {"never": "never"}

        def decide(self, r, stats):
            seen.append(r.output)

    kept = apply([rec("好"), rec("诚信是根本。")], [Short(), Spy()], lambda item, d: None)
    assert [r.output for r in kept] == ["诚信是根本。"] and seen == ["诚信是根本。"]


def test_the_reason_table_is_generated_from_the_declarations():
    from vad import reasons

    cat = reasons.catalogue()
    assert {"too_short", "lang_not_zh", "evol_no_gain", "near_duplicate", "llm_error", "review_rejected"} <= set(cat)
    assert cat["llm_error"]["declared_in"] == "vad.generate.funnel"
    text = reasons.render()
    assert all(f"| `{code}` |" in text for code in cat)
    assert (reasons.DOC.read_text(encoding="utf-8") if reasons.DOC.is_file() else "") == text, \
        "docs/reasons.md is stale: run `vad docs write`"
