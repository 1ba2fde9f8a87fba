"""The decision log under load: four reviewer processes appending at once lose no line and interleave none, and a
reader sees only whole lines while a writer is mid-line."""
from __future__ import annotations

import json
import multiprocessing as mp
import threading
from pathlib import Path

import httpx
import pytest

from support.review import records
from support.review_server import Server
from vad.review import log

N_POSTS = 30  # per reviewer process


def _post_many(srv: Server, recs, out: list, errors: list) -> None:
    note = "理由：" + "需要更多上下文。" * 600  # ~5 kB lines: beyond PIPE_BUF, so whole-line writes matter
    with httpx.Client(base_url=srv.url, headers={"Origin": srv.url}, timeout=60) as c:
        for n in range(N_POSTS):
            r = recs[n % len(recs)]
            page = c.get(f"/r/{r.id}?state=all").text
            sha = page.split('data-sha="', 1)[1].split('"', 1)[0]
            body = {"id": r.id, "sha256": sha, "query": "state=all", "note": note}
            body.update({"decision": "reject", "reason": "other"} if n % 3 else {"decision": "accept"})
            resp = c.post("/api/decide", json=body)
            (out if resp.status_code == 200 else errors).append(resp.json())


@pytest.mark.slow
def test_four_reviewer_processes_posting_at_once_lose_no_line(review_project):
    recs, _ = records()
    names = ("wang", "li", "zhang", "zhao")
    servers = [Server(review_project, n) for n in names]  # four processes over one project, started together
    try:
        for s in servers:
            s.wait()
        ok: list = []
        errors: list = []
        threads = [threading.Thread(target=_post_many, args=(s, recs, ok, errors)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in servers:
            s.stop()
    assert errors == [] and len(ok) == 4 * N_POSTS
    raw = (review_project / "review/decisions.jsonl").read_text(encoding="utf-8")
    lines = raw.splitlines()
    assert raw.endswith("\n") and len(lines) == 4 * N_POSTS
    parsed = [json.loads(l) for l in lines]  # every line is one whole JSON object
    assert {d["uid"] for d in parsed} == {r["uid"] for r in ok}
    assert {n: sum(d["reviewer"] == n for d in parsed) for n in names} == {n: N_POSTS for n in names}
    assert len(log.read_log(review_project / "review/decisions.jsonl", None)) == 4 * N_POSTS


def _append_many(path: str, who: str, n: int) -> None:
    recs, _ = records()
    for k in range(n):
        d = log.new_decision(recs[k % len(recs)], who, "reject", reason="other", note=f"{who}{k}:" + "长" * 20000)
        log.append(path, [d])


def test_appends_from_processes_never_interleave(tmp_path):
    path = tmp_path / "decisions.jsonl"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), f"r{i}", 25)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    parsed = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]
    assert len(parsed) == 100 and len({d["uid"] for d in parsed}) == 100
    assert all(d["note"].endswith("长" * 20000) for d in parsed)


def test_tail_reads_whole_lines_only(tmp_path):
    recs, _ = records()
    path = tmp_path / "decisions.jsonl"
    path.write_text("", encoding="utf-8")
    tail = log.LogTail(path)
    assert tail.new() == ([], True)  # the first read is a whole read
    a, b = (log.new_decision(recs[0], w, "accept") for w in ("wang", "li"))
    line_a, line_b = (json.dumps(d.to_json(), ensure_ascii=False) + "\n" for d in (a, b))
    with path.open("a", encoding="utf-8") as f:
        f.write(line_a + line_b[:40])  # a writer mid-line
    new, reset = tail.new()
    assert [d.uid for d in new] == [a.uid] and not reset
    with path.open("a", encoding="utf-8") as f:
        f.write(line_b[40:])
    assert [d.uid for d in tail.new()[0]] == [b.uid]
    path.write_text(line_b, encoding="utf-8")  # rewritten (a merge): read again from the start
    new, reset = tail.new()
    assert reset and [d.uid for d in new] == [b.uid]


def test_append_after_a_line_without_newline(tmp_path):
    recs, _ = records()
    path = tmp_path / "decisions.jsonl"
    a, b = (log.new_decision(recs[0], w, "accept") for w in ("wang", "li"))
    path.write_text(json.dumps(a.to_json(), ensure_ascii=False), encoding="utf-8")  # hand-edited, no newline
    log.append(path, [b])
    assert {d.uid for d in log.read_log(path)} == {a.uid, b.uid}
    assert Path(path).read_text(encoding="utf-8").count("\n") == 2


def test_a_malformed_line_names_the_file_and_line_in_both_readers(tmp_path):
    from vad.core.errors import InputError

    recs, _ = records()
    path = tmp_path / "decisions.jsonl"
    good = json.dumps(log.new_decision(recs[0], "wang", "accept").to_json(), ensure_ascii=False)
    path.write_text(good + "\n\n" + '{"v": 1, "uid": \n', encoding="utf-8")  # a bad hand edit on line 3
    for read in (lambda: log.read_log(path), lambda: log.LogTail(path).new()):
        with pytest.raises(InputError, match=rf"{path}:3: malformed JSON"):
            read()
