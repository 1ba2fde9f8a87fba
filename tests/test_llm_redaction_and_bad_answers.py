"""What an endpoint sends back must not break a build or leak the key: an endpoint that echoes the request's
Authorization header in its error bodies leaves no trace of the key in the ledger, the caches or the logs; an
answer of combining accents is a parse error (re-asked, then ledgered), not a failed evol suite."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support.fake_openai import FakeOpenAI
from support.llm_stages import run_stage, set_llm_params
from vad.llm.openai_backend import REDACTED, redact

# made up for the test (not a key of any service), assembled so it reads as what it is
SECRET = "-".join(("fake", "api", "key", "for", "redaction", "tests"))


class EchoingEndpoint:
    """A broken endpoint on 127.0.0.1 that answers every request 500, its body quoting the request headers."""

    def __enter__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"error": {"message": f"upstream failed for Authorization: "
                                                        f"{self.headers.get('Authorization')} (key {SECRET[5:]})",
                                             "type": "server_error"}}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_redact_removes_the_key_and_credential_values():
    text = f'{{"headers": {{"Authorization": "Bearer {SECRET}", "api-key": "abc"}}}} {SECRET}'
    out = redact(text, SECRET)
    assert SECRET not in out and "abc" not in out and out.count(REDACTED) == 3
    assert redact("HTTP 500: upstream timed out") == "HTTP 500: upstream timed out"


def test_an_endpoint_echoing_the_key_leaves_no_trace_of_it(stage_env, monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with EchoingEndpoint() as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 2, "rounds": 1, "breadth_share": 0.0})
        m = run_stage(stage_env, "evolve")
    assert m["dropped_by_reason"].get("llm_error"), m["dropped_by_reason"]
    ledger = (stage_env / "build/ledger/evolve.jsonl").read_text(encoding="utf-8")
    assert "HTTP 500" in ledger and REDACTED in ledger  # the error is kept, the key is not
    out, err = capfd.readouterr()
    places = {"stdout": out, "stderr": err}
    for folder in (stage_env / "build", tmp_path / "llmcache"):
        for f in Path(folder).rglob("*"):
            if f.is_file():
                places[str(f)] = f.read_bytes().decode("utf-8", "replace")
    leaked = [where for where, text in places.items() if SECRET in text or SECRET[5:] in text]
    assert leaked == []


def accents_answer(messages) -> str:
    """Rewrites as asked (a real question), but every answer is 30 combining acute accents."""
    system = messages[0]["content"] if messages else ""
    last = messages[-1]["content"]
    if "相同" in system or "相同" in last:
        return "不同"
    if "提示" in system and "回答" not in system[:20]:
        return "孩子每天玩三个小时手机游戏，作为家长，怎样和他约定规则才不伤感情？"
    return "\u0301" * 30


def test_an_answer_of_combining_accents_is_ledgered_not_a_failed_suite(stage_env):
    with FakeOpenAI(accents_answer) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 2, "rounds": 1, "breadth_share": 0.0})
        m = run_stage(stage_env, "evolve")  # before: the evol suite failed the stage on output_han_ratio
        asks = srv.count
    ledger = [json.loads(line) for line in (stage_env / "build/ledger/evolve.jsonl").read_text().splitlines()]
    bad = [e for e in ledger if e["reason"] == "parse_error" and e.get("step") == "answer"]
    assert bad and all("\u0301" in e["text"] for e in bad), [(e["reason"], e.get("step")) for e in ledger]
    assert m["out"] == 0 and asks > len(bad)  # each bad answer was asked again before it was ledgered
