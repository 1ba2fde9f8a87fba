"""Backend-independent parts of vad.llm: config, templates, the request cache, stop cutting."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import yaml

from vad.core.config import LLMParams, ParamsError
from vad.llm import DEFAULT_STOP, Completion, GenerationTask, Prompt, RequestCache, Template, TemplateError, cache_key, load_template, make_client, safe_url
from vad.llm.local_backend import cut_at_stop, row_seed

ROOT = Path(__file__).resolve().parents[1]


def test_config_reads_every_key_of_params_yaml():
    section = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["llm"]
    cfg = LLMParams.from_params(section)
    for k, v in section.items():
        assert getattr(cfg, k) == v, k
    with pytest.raises(ParamsError, match="temprature"):
        LLMParams.from_params({**section, "temprature": 0.1})
    with pytest.raises(ParamsError, match="backend"):
        LLMParams.from_params({**section, "backend": "vllm"})
    with pytest.raises(ParamsError, match="concurrency"):
        LLMParams.from_params({**section, "concurrency": "many"})
    assert LLMParams.from_params({"timeout_s": 5}).timeout_s == 5.0


def test_gen_overrides_are_checked():
    p = load_template("_selftest").render(instruction="问", input="")
    with pytest.raises(ValueError, match="max_tokens"):
        GenerationTask("k", p, gen={"max_tokens": 5})
    with pytest.raises(TypeError):
        GenerationTask("k", "not a prompt")  # type: ignore[arg-type]


def test_template_renders_messages_and_completion():
    t = load_template("_selftest")
    assert (t.name, t.version) == ("_selftest", "1")
    p = t.render(instruction="什么是诚信？", input="")
    assert isinstance(p, Prompt) and p.template == "_selftest" and p.template_version == "1"
    assert [m["role"] for m in p.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert p.messages[1] == {"role": "user", "content": "中国的首都是哪里？"}
    assert p.messages[-1] == {"role": "user", "content": "什么是诚信？"}
    assert p.completion == (
        "请用一句简短的中文回答问题。\n\n"
        "### 任务\n中国的首都是哪里？\n### 回答\n中国的首都是北京。\n\n"
        "### 任务\n一年有几个季节？\n### 回答\n一年有四个季节：春、夏、秋、冬。\n\n"
        "### 任务\n什么是诚信？\n### 回答\n"
    )
    assert p.stop == DEFAULT_STOP == ("###", "\n\n\n") and p.chat_stop == ()
    # braces in values are data, not format fields
    assert load_template("_selftest").render(instruction="{x}", input="").messages[-1]["content"] == "{x}"
    with pytest.raises(TemplateError, match="input"):
        t.render(instruction="只给了一个变量")


def test_template_file_is_validated(tmp_path):
    def write(name, text):
        p = tmp_path / f"{name}.toml"
        p.write_text(text, encoding="utf-8")
        return p

    ok = write("t1", 'name = "t1"\nversion = "2"\nsystem = ""\nuser = "{q}"\nstop = ["</a>"]\n'
                     '[[fewshot]]\nq = "问"\nanswer = "答"\n')
    t = load_template(ok)
    p = t.render(q="新问题")
    assert p.messages[0] == {"role": "user", "content": "问"}  # no system turn when system is empty
    assert p.completion.startswith("### 任务\n问\n### 回答\n答\n\n")
    assert p.chat_stop == ("</a>",) and p.stop == ("</a>", "###", "\n\n\n")
    with pytest.raises(TemplateError, match="version"):
        load_template(write("t2", 'name = "t2"\nversion = 2\nuser = "{q}"\n'))
    with pytest.raises(TemplateError, match="fewshot"):
        load_template(write("t3", 'name = "t3"\nversion = "1"\nuser = "{q}"\n[[fewshot]]\nanswer = "答"\n'))
    with pytest.raises(TemplateError, match="file name"):
        load_template(write("t4", 'name = "other"\nversion = "1"\nuser = "{q}"\n'))
    with pytest.raises(TemplateError, match="available"):
        load_template("no_such_template")
    assert isinstance(t, Template)


def test_cache_is_wal_persistent_and_thread_safe(tmp_path):
    db = tmp_path / "c" / "llm.sqlite"
    cache = RequestCache(db)
    keys = [cache_key({"i": i}) for i in range(200)]

    def put(part):
        for k in part:
            cache.put(k, Completion(text=f"答{k[:4]}", prompt_tokens=3, completion_tokens=2), {"attempt": 1})

    threads = [threading.Thread(target=put, args=(keys[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 200
    # committed: another connection sees every row while ours is still open
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 200
    con.close()
    cache.close()
    again = RequestCache(db)
    assert again.get(keys[7]) == Completion(text=f"答{keys[7][:4]}", prompt_tokens=3, completion_tokens=2)
    assert again.get(cache_key({"i": -1})) is None


def test_cache_key_is_canonical():
    assert cache_key({"a": 1, "b": [1, "x"]}) == cache_key({"b": [1, "x"], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_request_keys_cover_gen_params_and_attempt(tmp_path, monkeypatch):
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VAD_TEST_KEY", "sk-x")
    client = make_client(LLMParams(backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env="VAD_TEST_KEY"))
    p = load_template("_selftest").render(instruction="问", input="")
    base = client.build_request(p, {})
    assert client.build_request(p, {"temperature": 0.7}).key == base.key  # 0.7 is the default
    assert client.build_request(p, {"max_new_tokens": 256.0}).key == base.key  # normalised types
    assert client.build_request(p, {"top_p": 0.5}).key != base.key
    assert client.build_request(p, {}, attempt=2).key != base.key
    # the openai backend does not send repetition_penalty, so it does not split its cache
    assert client.build_request(p, {"repetition_penalty": 1.3}).key == base.key
    p2 = Prompt(messages=p.messages, completion=p.completion, template="_selftest", template_version="2")
    assert client.build_request(p2, {}).key != base.key  # a new template version is a new request
    assert (tmp_path / "llm.sqlite").exists()


def test_safe_url_and_describe_hide_credentials():
    assert safe_url("https://user:sk-secret@api.example.com:8443/v1?key=sk-secret#x") == "https://api.example.com:8443/v1"
    assert safe_url("") == ""


def test_cut_at_stop_and_row_seed():
    assert cut_at_stop("答：好。\n\n### 任务\n下一个", ("###", "\n\n\n")) == ("答：好。", True)
    assert cut_at_stop("一\n\n\n二###三", ("###", "\n\n\n")) == ("一", True)
    assert cut_at_stop("没有停止符", ("###",)) == ("没有停止符", False)
    assert row_seed(1, "k") == row_seed(1, "k") != row_seed(2, "k")
    assert 0 <= row_seed(1, "k") < 2**63
