"""The review app over HTTP (FastAPI's in-process client): safe by default (loopback Host names only, a token
elsewhere, same-origin POSTs, a CSP, escaped record text), decisions appended as log lines, queues and filters,
per-reviewer queues and the adjudicator's conflict queue, stale decisions, LLM judge hints.

The project is the `review_project` fixture (tests/conftest.py, support.review.make_project): the app's corpus is
its judge-stage output, the same records as the review stage's input."""
from __future__ import annotations

import json
import re

import pytest
import yaml
from fastapi.testclient import TestClient

from support.fake_openai import FakeOpenAI
from support.review import decide, records, run, set_review, write_jsonl
from vad.core import paths
from vad.core.record import Record
from vad.review import log
from vad.review.app import create_app, templates

BASE = "http://127.0.0.1:8765"
ORIGIN = {"Origin": BASE}


def judge_meta(recs: list[Record], **by_index: dict) -> list[Record]:
    """The records with the judge stage's meta keys added to the ones named by index (`r5={...}`)."""
    out = []
    for k, r in enumerate(recs):
        r = Record.from_dict(r.to_dict())
        r.meta.update(by_index.get(f"r{k}", {}))
        out.append(r)
    return out


def pred(level: str, value: str, confidence: float, by: str = "tfidf-char12-sgd") -> dict:
    return {"level": level, "value": value, "confidence": confidence, "by": by}


def client(root, reviewer="wang", **kw) -> TestClient:
    return TestClient(create_app(root, reviewer=reviewer, **kw), base_url=BASE)


def lines(root) -> list[dict]:
    p = root / "review/decisions.jsonl"
    return [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]


def page_data(html: str) -> dict[str, str]:
    tag = re.search(r'<section id="record"([^>]*)>', html).group(1)
    return {k: v for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', tag)}


def post(c: TestClient, url: str, body: dict, **headers):
    return c.post(url, json=body, headers={**ORIGIN, **headers})


def body_for(c: TestClient, rid: str, query: str = "state=pending", **kw) -> dict:
    data = page_data(c.get(f"/r/{rid}?{query}").text)
    return {"id": data["id"], "sha256": data["sha"], "query": data["query"], **kw}


# --- safe by default ----------------------------------------------------------------------------------------------
def test_record_text_renders_escaped(review_project):
    recs, _ = records()
    c = client(review_project)
    html = c.get(f"/r/{recs[4].id}").text
    assert "<script>window.__xss" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;window.__xss = 2&#34;&gt;" in html
    assert templates().autoescape is True  # every template, whatever its file name


def test_security_headers(review_project):
    r = client(review_project).get("/", follow_redirects=True)
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert re.findall(r"<script[^>]*>", r.text) == ['<script src="/static/review.js">']  # no inline script


def test_foreign_host_names_are_refused_without_a_token(review_project):
    c = client(review_project)
    assert c.get("/queue", headers={"Host": "evil.example:8765"}).status_code == 400  # DNS rebinding
    assert c.get("/queue", headers={"Host": "localhost:8765"}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": BASE, "Sec-Fetch-Site": "cross-site"}])
def test_state_changes_need_the_same_origin(review_project, headers):
    recs, _ = records()
    c = client(review_project)
    body = body_for(c, recs[0].id, decision="accept")
    r = c.post("/api/decide", json=body, headers=headers)
    assert r.status_code == 403 and lines(review_project) == []
    assert post(c, "/api/decide", body).status_code == 200 and len(lines(review_project)) == 1


def test_a_token_is_required_when_one_is_set(review_project):
    recs, _ = records()
    c = client(review_project, token="s3cret-token")
    assert c.get("/queue", follow_redirects=False).headers["location"] == "/login"
    assert post(c, "/api/decide", {"id": recs[0].id}).status_code == 401
    r = c.get("/queue?token=wrong", follow_redirects=False)
    assert r.headers["location"] == "/login"
    r = c.get("/queue?token=s3cret-token", follow_redirects=False)
    assert r.status_code == 303 and "vad_token" in r.headers["set-cookie"]
    c.cookies.set("vad_token", "s3cret-token")
    assert c.get("/queue", headers={"Host": "review.lab.example"}).status_code == 200  # any host, with the token
    body = body_for(c, recs[0].id, decision="accept")
    assert post(c, "/api/decide", body).status_code == 200


def test_language_toggle_and_no_open_redirect(review_project):
    c = client(review_project)
    r = c.get("/lang?to=en&back=//evil.example/x", follow_redirects=False)
    assert r.headers["location"] == "/"
    assert "Accept" in c.get("/", follow_redirects=True).text
    c.get("/lang?to=zh&back=/queue")
    assert "通过" in c.get("/", follow_redirects=True).text


# --- decisions ------------------------------------------------------------------------------------------------------
def test_accept_appends_one_audit_line_and_moves_on(review_project):
    recs, _ = records()
    c = client(review_project)
    first = c.get("/", follow_redirects=False).headers["location"]
    assert first == f"/r/{recs[0].id}?state=pending"
    r = post(c, "/api/decide", body_for(c, recs[0].id, decision="accept"))
    assert r.json()["next"] == f"/r/{recs[1].id}?state=pending"
    (d,) = lines(review_project)
    assert {k: d[k] for k in ("id", "reviewer", "decision", "guidelines", "role")} == {
        "id": recs[0].id, "reviewer": "wang", "decision": "accept", "guidelines": "1", "role": "reviewer"}
    assert d["sha256"] == log.content_sha256(recs[0]) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", d["ts"])
    assert recs[0].id not in c.get("/queue").text and recs[0].id in c.get("/queue?state=decided").text


def test_reject_needs_a_reason_from_params(review_project):
    recs, _ = records()
    c = client(review_project)
    assert post(c, "/api/decide", body_for(c, recs[5].id, decision="reject")).status_code == 400
    assert post(c, "/api/decide", body_for(c, recs[5].id, decision="reject", reason="ugly")).status_code == 400
    r = post(c, "/api/decide", body_for(c, recs[5].id, decision="reject", reason="stereotype", note="性别偏见"))
    assert r.status_code == 200 and lines(review_project)[0]["note"] == "性别偏见"


def test_edit_diff_and_only_real_changes(review_project):
    recs, _ = records()
    c = client(review_project)
    r0 = recs[0]
    same = {"instruction": r0.instruction + "  ", "input": "", "output": r0.output + "\r\n", "categorization": "person/诚信"}
    assert post(c, "/api/diff", body_for(c, r0.id, fields=same)).json()["none"] is True
    assert post(c, "/api/decide", body_for(c, r0.id, decision="edit", fields=same)).status_code == 400
    assert lines(review_project) == []
    new = {**same, "output": r0.output.replace("心平气和", "心平气和、开门见山"), "categorization": "social/法治"}
    diff = post(c, "/api/diff", body_for(c, r0.id, fields=new)).json()["changed"]
    assert set(diff) == {"output", "categorization"}
    assert ["+", "、开门见山"] in diff["output"] and "".join(t for op, t in diff["output"] if op != "+") == r0.output
    assert post(c, "/api/decide", body_for(c, r0.id, decision="edit", fields=new)).status_code == 200
    (d,) = lines(review_project)
    assert d["fields"] == {"output": new["output"], "categorization": {"level": "social", "value": "法治"}}


def test_undo_is_a_new_line_that_withdraws_mine(review_project):
    recs, _ = records()
    c = client(review_project)
    assert post(c, "/api/undo", body_for(c, recs[0].id)).status_code == 400  # nothing to undo
    post(c, "/api/decide", body_for(c, recs[0].id, decision="accept"))
    r = post(c, "/api/undo", body_for(c, recs[0].id, query="state=decided"))
    accept, undo = lines(review_project)
    assert undo["decision"] == "undo" and undo["undoes"] == accept["uid"] and r.json()["next"].startswith(f"/r/{recs[0].id}")
    assert recs[0].id in c.get("/queue?state=pending").text
    li = client(review_project, reviewer="li")
    assert post(li, "/api/undo", body_for(li, recs[0].id)).status_code == 400  # not someone else's


def test_changed_upstream_content_is_refused(review_project):
    recs, _ = records()
    c = client(review_project)
    body = body_for(c, recs[0].id, decision="accept")
    assert post(c, "/api/decide", {**body, "sha256": "0" * 64}).status_code == 409


def test_skip_moves_the_record_to_the_end_of_my_queue(review_project):
    recs, _ = records()
    c = client(review_project)
    r = post(c, "/api/decide", body_for(c, recs[0].id, decision="skip"))
    assert r.json()["next"].startswith(f"/r/{recs[1].id}")
    assert c.get("/", follow_redirects=False).headers["location"].startswith(f"/r/{recs[1].id}")
    m, out, _ = run(review_project)  # a skip decides nothing
    assert recs[0].id in out and m["decided"] == 0


# --- queues -----------------------------------------------------------------------------------------------------------
def queue_ids(c: TestClient, qs: str) -> list[str]:
    return re.findall(r'href="/r/([0-9a-f]+)\?', c.get(f"/queue?{qs}").text.split('<table class="grid queue">')[1])


def test_filters(review_project):
    recs, _ = records()
    c = client(review_project)
    assert queue_ids(c, "state=pending&source=evol") == [recs[5].id, recs[6].id]
    assert queue_ids(c, "state=pending&level=person") == [recs[0].id, recs[3].id, recs[4].id]
    assert queue_ids(c, "state=pending&level=person&value=敬业") == [recs[3].id]
    assert queue_ids(c, "state=pending&ifd_min=0.955&ifd_max=0.965") == [recs[3].id, recs[4].id, recs[7].id]
    assert c.get("/queue?state=nonsense").status_code == 400
    assert c.get("/queue?state=pending&ifd_min=abc").status_code == 400


def test_each_reviewer_gets_their_own_queue(review_project):
    set_review(review_project, reviewers=["wang", "li"], double_share=0.0)
    recs, _ = records()
    wang, li = queue_ids(client(review_project), "state=pending"), queue_ids(client(review_project, "li"), "state=pending")
    assert wang and li and not set(wang) & set(li) and set(wang) | set(li) == {r.id for r in recs}
    assert "/login" in client(review_project, "zhang").get("/", follow_redirects=False).headers["location"]


def test_conflicts_go_to_the_adjudicator(review_project):
    set_review(review_project, reviewers=["wang", "li"], adjudicators=["zhao"], double_share=1.0)
    recs, _ = records()
    decide(review_project, recs[5], "wang", "accept")
    decide(review_project, recs[5], "li", "reject", reason="stereotype")
    zhao = client(review_project, "zhao")
    assert zhao.get("/", follow_redirects=False).headers["location"] == f"/r/{recs[5].id}?state=conflict"
    html = zhao.get(f"/r/{recs[5].id}?state=conflict").text
    assert "wang" in html and "li" in html and "冲突" in html
    r = post(zhao, "/api/decide", body_for(zhao, recs[5].id, query="state=conflict", decision="reject",
                                            reason="stereotype"))
    assert r.status_code == 200 and lines(review_project)[-1]["role"] == "adjudicator"
    assert queue_ids(zhao, "state=conflict") == []
    progress = client(review_project).get("/progress").text
    assert "wang" in progress and "li" in progress


def test_stale_decisions_are_queued_not_applied(review_project):
    recs, _ = records()
    old = Record.from_dict(recs[2].to_dict())
    old.categorization = {"level": "social", "value": "公正"}  # what it was when reviewed
    d = log.new_decision(old, "wang", "accept", guidelines="1")
    older = Record.from_dict({**recs[3].to_dict(), "id": "", "output": "旧版本的回答。"})  # other text, other id
    assert older.id != recs[3].id
    log.append(review_project / "review/decisions.jsonl", [d, log.new_decision(older, "li", "accept")])
    c = client(review_project)
    assert queue_ids(c, "state=stale&reviewer=*") == [recs[2].id, recs[3].id]
    assert queue_ids(c, "state=stale") == [recs[2].id]  # mine
    assert "过期" in c.get(f"/r/{recs[2].id}?state=stale").text


def test_decisions_of_other_processes_are_seen(review_project):
    recs, _ = records()
    c = client(review_project)
    assert recs[1].id in queue_ids(c, "state=pending")
    decide(review_project, recs[1], "wang", "accept")  # another app process appending to the same log
    assert recs[1].id not in queue_ids(c, "state=pending") and recs[1].id in queue_ids(c, "state=decided")


def test_record_page_shows_lineage_context(review_project):
    recs, seeds = records()
    c = client(review_project)
    evol = c.get(f"/r/{recs[5].id}").text
    assert seeds[0].instruction in evol and "增加约束" in evol          # parent prompt and operation
    tr = c.get(f"/r/{recs[7].id}").text
    assert "I suspect a coworker is faking receipts" in tr and "英文原文" in tr  # the English original beside it
    dup = c.get(f"/r/{recs[0].id}").text
    assert "near_duplicate" in dup and "希望对你有帮助。" in dup and "0.91" in dup   # the drop of its duplicate
    assert "data/raw/manual/review_test.jsonl:1" in dup


# --- judge hints --------------------------------------------------------------------------------------------------------
def judge(messages) -> str:
    last = messages[-1]["content"]
    if "粗心" in last:
        return '{"flags": ["stereotype", "bogus"], "level": "social", "value": "平等", "note": "性别刻板印象"}'
    return '{"flags": [], "level": "person", "value": "诚信", "note": "没有问题"}'


def test_judge_hints_are_shown_and_sort_the_queue_but_decide_nothing(review_project, monkeypatch):
    from vad.review.suggest import suggest

    p = review_project / "params.yaml"
    with FakeOpenAI(judge) as srv:
        params = yaml.safe_load(p.read_text(encoding="utf-8"))
        params["llm"].update(backend="openai", base_url=srv.base_url, model="fake-model", api_key_env="FAKE_KEY")
        p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
        monkeypatch.setenv("FAKE_KEY", "k")
        summary = suggest(review_project)
        assert summary["judged"] == 8 and summary["flagged"] == 1 and summary["llm"]["calls"] == 8
        assert suggest(review_project)["llm"]["calls"] == 0  # cached
    recs, _ = records()
    rows = [json.loads(l) for l in (review_project / "build/suggest/suggestions.jsonl").read_text().splitlines()]
    hint = next(r for r in rows if r["id"] == recs[5].id)
    assert hint["flags"] == ["stereotype"] and hint["categorization"] == {"level": "social", "value": "平等"}
    c = client(review_project)
    assert "刻板印象" in c.get(f"/r/{recs[5].id}").text
    assert queue_ids(c, "state=pending&sort=flags")[0] == recs[5].id
    assert queue_ids(c, "state=pending")[0] == recs[0].id
    m, out, ledger = run(review_project)
    assert recs[5].id not in out and m["decided"] == 0  # a hint never replaces a reviewer's decision


def test_guidelines_page_escapes_raw_html(review_project):
    g = review_project / "review/guidelines.md"
    g.write_text("---\nversion: 7\n---\n# 准则\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n",
                 encoding="utf-8")
    c = client(review_project)
    html = c.get("/guidelines").text
    assert "<h1>准则</h1>" in html and "<script>alert" not in html and 'href="javascript' not in html
    recs, _ = records()
    post(c, "/api/decide", body_for(c, recs[0].id, decision="accept"))
    assert lines(review_project)[0]["guidelines"] == "7"


# --- the judge stage's categorization, verdict and flags ------------------------------------------------------------
JUDGED_EVOL = {
    "category_pred": pred("social", "法治", 0.42),
    "category_table": {"level": "nation", "value": "和谐"},
    "category_by": "table",
    "judge": {"verdict": "fail", "scores": {"values": 2, "fidelity": None, "fluency": 4}, "failed": ["values"],
              "problems": ["stereotype", "brand_new_problem"], "reason": "回答带有<b>性别刻板印象</b>",
              "by": "fake-judge-model"},
    "flags": [{"reason": "judge_failed", "detail": "values 2 < 3", "by": "JudgeCheck"},
              {"reason": "category_low_confidence", "detail": "0.42 < 0.6", "by": "CategoryCheck"}],
}


def test_record_page_shows_prediction_table_default_verdict_and_flags(review_project):
    recs = judge_meta(records()[0], r5=JUDGED_EVOL)
    write_jsonl(review_project / paths.JUDGED, recs)
    c = client(review_project)
    html = c.get(f"/r/{recs[5].id}").text
    box = html.split('id="judged"')[1].split('<div class="fields')[0]
    assert "预测分类" in box and "社会 · 法治" in box and "0.42" in box and "tfidf-char12-sgd" in box  # the prediction
    assert "查表默认" in box and "国家 · 和谐" in box                                                 # the table default
    assert "查表默认（预测置信度不足）" in box                                                         # which one set it
    assert "模型评审" in box and "未通过" in box and "fake-judge-model" in box                         # the verdict
    assert re.search(r"价值观 <span[^>]*>2</span>.*忠实度 <span[^>]*>—</span>.*流畅度 <span[^>]*>4</span>", box, re.S)
    assert "刻板印象" in box and "brand_new_problem" in box                   # problems (an unknown code shows as is)
    assert "&lt;b&gt;性别刻板印象&lt;/b&gt;" in box and "<b>性别" not in box  # the judge's reason, escaped
    assert "模型评审未通过" in box and "values 2 &lt; 3" in box and "JudgeCheck" in box                # the flags
    assert "分类置信度低" in box and "0.42 &lt; 0.6" in box
    c.get("/lang?to=en")
    en = c.get(f"/r/{recs[5].id}").text.split('id="judged"')[1]
    assert "Predicted category" in en and "table default" in en and "the table default (prediction" in en
    assert ">fail<" in en and "failed the LLM judge" in en and "low category confidence" in en
    assert 'id="judged"' not in c.get(f"/r/{recs[0].id}").text  # a hand-written record: the judge left it alone


def test_record_page_names_a_prediction_that_set_the_category(review_project):
    recs = judge_meta(records()[0], r6={"category_pred": pred("social", "公正", 0.91, by="llm:deepseek-chat"),
                                        "category_table": {"level": "person", "value": "友善"},
                                        "category_by": "prediction",
                                        "judge": {"verdict": "pass", "scores": {"values": 5, "fidelity": None,
                                                                                "fluency": 5}, "failed": [],
                                                  "problems": [], "reason": "没有问题", "by": "m"}})
    write_jsonl(review_project / paths.JUDGED, recs)
    box = client(review_project).get(f"/r/{recs[6].id}").text.split('id="judged"')[1].split('<div class="fields')[0]
    assert "预测（置信度达到阈值）" in box and "0.91" in box and "llm:deepseek-chat" in box and "个人 · 友善" in box
    assert "v-pass" in box and "没有问题" in box and 'id="record-flags"' not in box


def test_confidence_sort_puts_the_least_sure_prediction_first(review_project):
    recs = judge_meta(records()[0], r5={"category_pred": pred("nation", "和谐", 0.9)},
                      r6={"category_pred": pred("social", "公正", 0.3)},
                      r7={"category_pred": pred("social", "公正", 0.6)})
    write_jsonl(review_project / paths.JUDGED, recs)
    c = client(review_project)
    ids = queue_ids(c, "state=pending&sort=confidence")
    assert ids == [recs[6].id, recs[7].id, recs[5].id] + [r.id for r in recs[:5]]  # no prediction: last, in order
    assert queue_ids(c, "state=pending")[0] == recs[0].id
    assert 'value="confidence" selected' in c.get("/queue?state=pending&sort=confidence").text


def test_flags_sort_puts_flagged_and_failed_records_first(review_project):
    recs = judge_meta(records()[0],
                      r3={"judge": {"verdict": "pass", "scores": {"values": 5}, "failed": [], "problems": []}},
                      r6={"flags": [{"reason": "content_refusal_only", "detail": "回答只是拒绝", "by": "ContentCheck"}]},
                      r7={"judge": {"verdict": "error", "scores": {}, "failed": [], "problems": [],
                                    "reason": "timeout", "by": "m"}})
    write_jsonl(review_project / paths.JUDGED, recs)
    c = client(review_project)
    ids = queue_ids(c, "state=pending&sort=flags")
    assert ids == [recs[6].id, recs[7].id] + [r.id for r in recs[:6] if r is not recs[6]]
    assert ids.index(recs[3].id) == 5  # a passing verdict is no objection: file order among the rest
    table = c.get("/queue?state=pending&sort=flags").text.split('<table class="grid queue">')[1]
    assert table.count("⚑1") == 2
    html = c.get(f"/r/{recs[6].id}").text
    assert "只有拒答" in html and "回答只是拒绝" in html and "ContentCheck" in html
