"""The review stage: decisions from the log applied whatever the line order, the review.require policies, stale
decisions never applied, edits checked again, conflicts held for the adjudicator, Cohen's kappa and the sample's
reject-rate interval against hand-computed numbers, bad log lines named by file and line.

The small review project the review tests share (`make_project`, `records`, `decide`, `run`) is in
tests/support/review.py; the `review_project` fixture is in tests/conftest.py."""
from __future__ import annotations

import random

import pytest

from support.review import STEREOTYPE, decide, make_project, manual, records, run, set_review, write_jsonl
from vad.core.errors import InputError
from vad.core.record import Record, sha256_text
from vad.review import log
from vad.review.agreement import cohen_kappa, wilson
from vad.review.state import Assignment


# --- policy ----------------------------------------------------------------------------------------------------
def test_default_policy_holds_back_generated_sources(review_project):
    recs, _ = records()
    m, out, ledger = run(review_project)
    assert set(out) == {r.id for r in recs if r.source == "manual"}
    held = {e["id"]: e for e in ledger}
    assert set(held) == {r.id for r in recs if r.source in ("evol", "translated")}
    assert {e["reason"] for e in ledger} == {"review_pending"}
    assert "machine-generated" in held[recs[5].id]["detail"] and held[recs[5].id]["record"]["instruction"] == STEREOTYPE
    # the interface the build report reads
    for key in ("decided", "pending", "accepted", "rejected", "edited", "stale", "conflicts", "kappa_overall",
                "kappa_by_level", "policy"):
        assert key in m, key
    assert (m["policy"], m["pending"], m["decided"], m["unreviewed_passed"]) == ("generated", 3, 0, 5)


def test_accepted_generated_record_is_exported(review_project):
    recs, _ = records()
    decide(review_project, recs[6], "wang", "accept")
    m, out, ledger = run(review_project)
    assert recs[6].id in out and out[recs[6].id]["lineage"]["ops"][-1]["op"] == "accept"
    assert out[recs[6].id]["lineage"]["ops"][-1]["reviewer"] == "wang"
    assert (m["accepted"], m["pending"]) == (1, 2)


def test_require_all_ledgers_every_unreviewed_record(review_project):
    recs, _ = records()
    set_review(review_project, require="all")
    decide(review_project, recs[0], "wang", "accept")
    decide(review_project, recs[1], "wang", "reject", reason="off_topic", note="答非所问")
    m, out, ledger = run(review_project)
    assert set(out) == {recs[0].id}
    reasons = {e["id"]: e["reason"] for e in ledger}
    assert reasons.pop(recs[1].id) == "review_rejected"
    assert set(reasons) == {r.id for r in recs[2:]} and set(reasons.values()) == {"review_pending"}
    assert m["pending"] == len(recs) - 2 and m["in"] == m["out"] + m["ledgered"]


def test_require_none_passes_unreviewed(review_project):
    set_review(review_project, require="none")
    recs, _ = records()
    _m, out, ledger = run(review_project)
    assert set(out) == {r.id for r in recs} and ledger == []


def test_sample_policy_reject_rate_with_wilson_interval(tmp_path, monkeypatch):
    recs = [manual(n, f"第{n}个问题：在公共场合遇到有人插队，应该怎样文明地劝阻？",
                   f"第{n}个回答：可以先礼貌地提醒对方排队的顺序，语气平和，必要时请工作人员帮忙维持秩序。",
                   "nation", "文明") for n in range(1, 41)]
    root = make_project(tmp_path, recs, review={"require": "sample", "sample_share": 0.25, "seed": 3})
    monkeypatch.chdir(root)
    a = Assignment(sample_share=0.25, seed=3)
    sample = [r for r in recs if a.in_sample(r.id)]
    assert len(sample) >= 5
    for r, kind in zip(sample[:4], ("reject", "accept", "accept", "accept")):
        decide(root, r, "wang", kind, **({"reason": "low_quality"} if kind == "reject" else {}))
    m, out, ledger = run(root)
    assert m["sample_size"] == len(sample) and m["sample_reviewed"] == 4 and m["sample_rejected"] == 1
    assert m["sample_reject_rate"] == 0.25
    # Wilson 95% for 1/4, by hand: centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    assert (m["sample_reject_ci_low"], m["sample_reject_ci_high"]) == (0.0456, 0.6994)
    pending = {e["id"] for e in ledger if e["reason"] == "review_pending"}
    assert pending == {r.id for r in sample[4:]}
    assert len(out) == len(recs) - 1 - len(pending)


# --- the log: order, undo, stale ---------------------------------------------------------------------------------
def test_latest_decision_wins_whatever_the_line_order(review_project):
    recs, _ = records()
    decide(review_project, recs[5], "wang", "accept")
    decide(review_project, recs[5], "wang", "reject", reason="stereotype")
    decide(review_project, recs[6], "wang", "reject", reason="off_topic")
    decide(review_project, recs[6], "wang", "accept")
    p = review_project / "review/decisions.jsonl"
    lines = p.read_text(encoding="utf-8").splitlines()
    for seed in range(3):  # as a git union merge may leave them, and with a line repeated
        random.Random(seed).shuffle(lines)
        p.write_text("\n".join(lines + lines[:1]) + "\n", encoding="utf-8")
        m, out, ledger = run(review_project)
        assert recs[6].id in out and recs[5].id not in out
        assert {e["id"]: e["reason"] for e in ledger}[recs[5].id] == "review_rejected"
        assert m["decision_lines"] == 4


def test_undo_withdraws_the_decision_and_the_one_before_counts_again(review_project):
    recs, _ = records()
    decide(review_project, recs[5], "wang", "accept")
    rej = decide(review_project, recs[5], "wang", "reject", reason="stereotype")
    decide(review_project, recs[5], "wang", "undo", undoes=rej.uid)
    first = decide(review_project, recs[6], "wang", "accept")
    decide(review_project, recs[6], "wang", "undo", undoes=first.uid)
    m, out, ledger = run(review_project)
    assert recs[5].id in out  # back to the accept
    assert {e["id"]: e["reason"] for e in ledger}[recs[6].id] == "review_pending"  # back to nothing
    assert m["accepted"] == 1


def test_stale_decision_after_upstream_edit_is_flagged_not_applied(tmp_path, monkeypatch):
    recs, _ = records()
    root = make_project(tmp_path, recs, review={"require": "all"})
    monkeypatch.chdir(root)
    decide(root, recs[0], "wang", "reject", reason="factual")   # will change category upstream (same id)
    decide(root, recs[1], "wang", "accept")                     # will change text upstream (new id)
    decide(root, recs[2], "wang", "accept")                     # unchanged
    changed = [Record.from_dict(r.to_dict()) for r in recs]
    changed[0].categorization = {"level": "social", "value": "公正"}
    changed[1].output += "同时，自己也不要在公共区域堆放物品。"
    changed[1] = Record.from_dict({**changed[1].to_dict(), "id": ""})  # new text, new id, same raw line
    assert changed[1].id != recs[1].id and changed[0].id == recs[0].id
    write_jsonl(root / "build/judge/judged.jsonl", changed)
    m, out, ledger = run(root)
    held = {e["id"]: e for e in ledger}
    assert recs[0].id in held and held[recs[0].id]["reason"] == "review_pending"  # the reject is not applied
    assert held[recs[0].id]["state"] == "stale" and "changed upstream" in held[recs[0].id]["detail"]
    assert held[changed[1].id]["state"] == "stale"                                  # the accept is not applied
    assert recs[2].id in out and m["stale"] == 2 and m["decided"] == 1 and m["decisions_unmatched"] == 0


# --- edits --------------------------------------------------------------------------------------------------------
def test_edit_gets_a_new_id_and_never_keeps_the_old_ifd(review_project):
    recs, _ = records()
    new_output = recs[5].output.replace("女的细心所以女的分类，男的不分类也可以，垃圾就会分类好。",
                                        "垃圾分类是每个家庭成员的责任，和性别无关，男女都应该认真参与。")
    decide(review_project, recs[5], "wang", "edit", fields={"output": new_output}, note="纠正刻板印象")
    decide(review_project, recs[6], "wang", "edit", fields={"categorization": {"level": "social", "value": "平等"}})
    m, out, _ledger = run(review_project)
    edited = next(r for r in out.values() if r["output"] == new_output)
    assert edited["id"] != recs[5].id and recs[5].id in edited["lineage"]["parents"]
    assert "ifd" not in edited["meta"] and edited["meta"]["ifd_before_edit"]["ifd"] == 0.97
    assert edited["lineage"]["ops"][-1] == {"stage": "review", "op": "edit", "fields": ["output"], "reviewer": "wang",
                                            "role": "reviewer", "decision_uid": edited["lineage"]["ops"][-1]["decision_uid"],
                                            "guidelines": "1", "note": "纠正刻板印象"}
    recat = out[recs[6].id]  # same text: same id, and its IFD still holds
    assert recat["categorization"] == {"level": "social", "value": "平等"} and recat["meta"]["ifd"]["ifd"] == 0.97
    assert m["edited"] == 2 and m["edit_failed_checks"] == 0


def test_edited_records_go_through_the_cheap_checks_again(review_project):
    recs, _ = records()
    decide(review_project, recs[5], "wang", "edit",
           fields={"output": "Waste sorting is everyone's job, whatever their gender, and it matters a lot."})
    decide(review_project, recs[6], "wang", "edit", fields={"instruction": recs[0].instruction,
                                                             "output": recs[0].output})
    decide(review_project, recs[3], "wang", "edit", fields={"output": "好" * 5000})
    m, out, ledger = run(review_project)
    why = {e["record"]["output"][:5]: e for e in ledger if e["reason"] != "review_pending"}
    assert why["Waste"]["reason"] == "content_few_han" and recs[5].id in why["Waste"]["record"]["lineage"]["parents"]
    dup = why[recs[0].output[:5]]
    assert dup["reason"] == "exact_duplicate" and dup["dup_of"] == recs[0].id and "after a review edit" in dup["detail"]
    assert why["好" * 5]["reason"] == "too_long"
    assert recs[0].id in out and m["edit_failed_checks"] == 3


# --- several reviewers ------------------------------------------------------------------------------------------
def test_conflict_is_held_until_the_adjudicator_decides(review_project):
    set_review(review_project, reviewers=["wang", "li"], adjudicators=["zhao"], double_share=1.0)
    recs, _ = records()
    a = Assignment(("wang", "li"), ("zhao",), 1.0, 1.0, 7)
    first, second = a.reviewers_of(recs[5].id)
    decide(review_project, recs[5], first, "accept")
    m, out, ledger = run(review_project)
    assert {e["id"]: e["state"] for e in ledger}[recs[5].id] == "pending"  # one of two reviews: not decided
    decide(review_project, recs[5], second, "reject", reason="stereotype")
    m, out, ledger = run(review_project)
    e = {e["id"]: e for e in ledger}[recs[5].id]
    assert e["reason"] == "review_pending" and e["state"] == "conflict" and m["conflicts"] == 1
    decide(review_project, recs[5], "zhao", "reject", role="adjudicator", reason="stereotype")
    m, out, ledger = run(review_project)
    e = {e["id"]: e for e in ledger}[recs[5].id]
    assert e["reason"] == "review_rejected" and e["reviewer"] == "zhao" and m["conflicts"] == 0
    # an "adjudicator" line by someone who is not one is an ordinary review: one of the two it needs
    decide(review_project, recs[6], "wang", "accept", role="adjudicator")
    _m, out, ledger = run(review_project)
    assert {e["id"]: e.get("state") for e in ledger}[recs[6].id] == "pending"


def test_kappa_matches_a_hand_computed_example(tmp_path, monkeypatch):
    # 10 twice-reviewed records: rater A / rater B labels (A = first assigned reviewer)
    labels = [("accept", "accept")] * 6 + [("accept", "reject")] * 2 + [("reject", "accept")] + [("reject", "reject")]
    # by hand: p_o = 7/10; A accepts 8/10, B 7/10, so p_e = .8·.7 + .2·.3 = .62; kappa = (.7 - .62)/(1 - .62) = .2105
    assert cohen_kappa(labels) == 0.2105
    recs = [manual(n, f"第{n}个问题：同事经常迟到，却让我帮他打卡，我应该怎么做？",
                   f"第{n}个回答：帮人代打卡违反公司制度，也是不诚信的行为。可以委婉拒绝，并提醒他按时上班。",
                   "person", "诚信") for n in range(1, 11)]
    root = make_project(tmp_path, recs, review={"reviewers": ["wang", "li", "zhang"], "double_share": 1.0})
    monkeypatch.chdir(root)
    a = Assignment(("wang", "li", "zhang"), (), 1.0, 1.0, 7)
    for r, (la, lb) in zip(recs, labels):
        ra, rb = a.reviewers_of(r.id)
        for who, lab in ((ra, la), (rb, lb)):
            decide(root, r, who, lab, **({"reason": "other", "note": "测试"} if lab == "reject" else {}))
    m, out, ledger = run(root)
    assert m["kappa_overall"] == 0.2105 and m["kappa_pairs"] == 10
    assert m["kappa_by_level"] == {"nation": None, "social": None, "person": 0.2105}
    assert m["conflicts"] == 3 and m["accepted"] == 6 and m["rejected"] == 1


def test_kappa_edge_cases():
    assert cohen_kappa([]) is None
    assert cohen_kappa([("accept", "accept")] * 5) is None        # chance agreement certain: undefined
    assert cohen_kappa([("accept", "reject"), ("reject", "accept")]) == -1.0
    # three labels, by hand: p_o = 5/7; A (accept, edit, reject) = (4, 1, 2)/7, B = (4, 2, 1)/7
    # → p_e = (16 + 2 + 2)/49 = 20/49; kappa = (35/49 - 20/49)/(29/49) = 15/29 = .5172
    pairs = [("accept", "accept")] * 3 + [("accept", "edit"), ("edit", "edit"), ("reject", "reject"),
                                          ("reject", "accept")]
    assert cohen_kappa(pairs) == 0.5172
    assert wilson(0, 0, 0.95) == (None, None)


def test_assignment_is_deterministic_and_shares_about_right():
    a = Assignment(("wang", "li", "zhang"), (), 0.2, 0.5, 11)
    ids = [sha256_text(str(i))[:16] for i in range(3000)]
    assert [a.reviewers_of(i) for i in ids] == [Assignment(("wang", "li", "zhang"), (), 0.2, 0.5, 11).reviewers_of(i)
                                                for i in ids]
    doubles = sum(len(a.reviewers_of(i)) == 2 for i in ids)
    assert 0.17 < doubles / len(ids) < 0.23
    per = {r: sum(r in a.reviewers_of(i) for i in ids) for r in a.reviewers}
    assert all(abs(n / sum(per.values()) - 1 / 3) < 0.03 for n in per.values())


# --- bad log lines ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, problem", [
    ("{not json", "malformed JSON"),
    ('{"v": 1, "uid": "u1", "id": "x", "sha256": "%s", "reviewer": "wang", "ts": "2025-01-01T00:00:00Z", '
     '"decision": "reject", "reason": "ugly"}' % ("0" * 64), "reason 'ugly' is not one of params review.reasons"),
    ('{"v": 1, "uid": "u1", "id": "x", "sha256": "%s", "reviewer": "wang", "ts": "2025-01-01T00:00:00Z", '
     '"decision": "edit", "fields": {"categorization": {"level": "person", "value": "法治"}}}' % ("0" * 64),
     "is not one of level 'person'"),
    ('{"v": 1, "uid": "u1", "id": "x", "sha256": "abc", "reviewer": "wang", "ts": "2025-01-01T00:00:00Z", '
     '"decision": "accept"}', "'sha256' must be"),
    ('{"v": 1, "uid": "u1", "id": "x", "sha256": "%s", "reviewer": "wang", "ts": "2025-01-01T00:00:00Z", '
     '"decision": "accept", "sha": 1}' % ("0" * 64), "unknown key 'sha'"),
])
def test_bad_decision_lines_name_file_and_line(review_project, line, problem):
    recs, _ = records()
    decide(review_project, recs[0], "wang", "accept")
    with (review_project / "review/decisions.jsonl").open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    with pytest.raises(InputError) as e:
        run(review_project)
    assert str(e.value).startswith("review/decisions.jsonl:2: ") and problem in str(e.value), str(e.value)


def test_real_changes_ignore_whitespace():
    recs, _ = records()
    r = recs[0]
    assert log.real_changes(r, {"output": r.output + "  \n", "instruction": r.instruction.replace("，", ",")}) == {}
    assert log.real_changes(r, {"output": r.output + "谢谢。"}) == {"output": r.output + "谢谢。"}
    assert log.real_changes(r, {"categorization": dict(r.categorization)}) == {}


# --- the machine against the people --------------------------------------------------------------------------------
def test_machine_vs_people_from_a_decision_log_with_known_answers(tmp_path, monkeypatch):
    """Three machine-made records with predictions and verdicts, decided by a reviewer: the review stage's `machine`
    figures follow from the log (kept 1 of 2 categories, 1 move, the judge right once, wrong once)."""
    recs, _ = records()
    stereo, civic, tr = recs[5], recs[6], recs[7]
    pred = lambda lvl, val: {"level": lvl, "value": val, "confidence": 0.6, "by": "tfidf-char12-sgd"}  # noqa: E731
    verdict = lambda v: {"verdict": v, "scores": {}, "failed": [], "problems": [], "reason": "", "by": "m"}  # noqa: E731
    stereo.meta.update(category_pred=pred("social", "平等"), judge=verdict("fail"),
                       flags=[{"reason": "judge_failed", "detail": "", "by": "judge"}])
    civic.meta.update(category_pred=pred(civic.categorization["level"], civic.categorization["value"]),
                      judge=verdict("fail"), flags=[{"reason": "judge_failed", "detail": "", "by": "judge"}])
    tr.meta.update(category_pred=pred("person", "诚信"), judge=verdict("pass"))
    root = make_project(tmp_path, recs)
    monkeypatch.chdir(root)
    decide(root, stereo, "wang", "reject", reason="stereotype")          # flagged and rejected: a true positive
    decide(root, civic, "wang", "accept")                                 # flagged but kept: a false positive
    decide(root, tr, "wang", "edit", fields={"categorization": {"level": "social", "value": "法治"}})  # moved
    m, _out, _ledger = run(root)
    a = m["machine"]["all"]
    assert (a["decided"], a["rejected"], a["category_decided"], a["category_kept"]) == (3, 1, 2, 1)
    assert a["category_kept_rate"] == 0.5 and a["moved_to"] == {"social/法治": 1}
    assert a["moves"] == {"person/诚信 → social/法治": 1}
    assert a["judge_vs_rejected"] == {"n": 3, "flagged": 2, "rejected": 1, "true_positive": 1, "precision": 0.5,
                                      "recall": 1.0}
    by = m["machine"]["by_source"]
    assert by["evol"]["category_kept_rate"] == 1.0 and by["translated"]["category_kept_rate"] == 0.0
