"""The whole pipeline under DVC, in a copy of the project with small LLM params (slow: a few minutes).

Checks the acceptance list of the spine: a build to build/export/, id-level books of every stage (each input
leaves exactly once, read from the files the build wrote), a no-op second `dvc repro`, an edit to one manual
record refused until its provenance is updated and then rerunning only what depends on it, IFD params rerunning
the right stages, a queued `dvc exp` IFD sweep with kept counts per level, `dvc exp run -S` with changed counts in
`dvc exp show`, byte-identical vad.json over two forced runs, `vad trace` / `vad why`, and that every file a stage
opens or imports is one of its deps in dvc.yaml (the build runs with VAD_TRACE_DIR set)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from vad.core import dvc_yaml, paths
from vad.core.ledger import id_problems
from vad.core.pipeline import DATASET, RECORD_STAGES
from vad.publish.trace import CORPORA

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ALL_STAGES = set(DATASET)
REUSE = os.environ.get("VAD_TEST_BUILT_PROJECT")  # developers: reuse a project the `proj` fixture already built


def sh(cmd, cwd, env: dict[str, str], check=True):
    """Run a shell command in `cwd` with the venv on PATH and `env` (the `proj_env` fixture) added."""
    full = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **env}
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env=full)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    return r


def ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '(?:[\w./]+:)?([a-z_]+)'", out))


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def append_manual(proj: Path, env: dict[str, str], f: Path, *objs: dict) -> None:
    """Append records to a raw manual file, then record the change in its provenance as a user would."""
    with f.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)
    sh(f"vad provenance {paths.RAW_MANUAL} --update", proj, env)


def set_params(proj: Path, **changes):
    p = proj / "params.yaml"
    params = yaml.safe_load(p.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        sec, key = dotted.split("__")
        params[sec][key] = value
    p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def project_env(proj: Path, caches: Path, trace: bool = False) -> dict[str, str]:
    """What every command against the built project adds to the environment: the project's own caches; its own
    code on PYTHONPATH (the copy runs, and the trace sees, its modules; not for a reused project); with `trace`
    (its one full build), the trace folder."""
    env = {"VAD_CACHE_DIR": str(caches / "cache")}
    if trace:
        env["VAD_TRACE_DIR"] = str(caches / "trace")
    if not REUSE:
        env["PYTHONPATH"] = str(proj)
    return env


@pytest.fixture(scope="module")
def proj_caches(tmp_path_factory) -> Path:
    """The built project's caches (cache/: LLM answers, IFD scores) and the traces of its full build (trace/)."""
    return tmp_path_factory.mktemp("vadproj-caches")


@pytest.fixture(scope="module")
def proj(tmp_path_factory, proj_caches) -> Path:
    """A copy of the project (its git-tracked files) with small LLM params, built by `dvc repro` (the dataset, then
    the evaluation pipeline) with tracing on and committed: once per module; the tests run on in it, in order."""
    if REUSE:
        return Path(REUSE)
    proj = tmp_path_factory.mktemp("vadproj")
    env = project_env(proj, proj_caches, trace=True)  # the traces of one full build: test_deps_cover_what_stages_use
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if (ROOT / rel).is_file():
            (proj / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, proj / rel)
    sh("git init -q -b main && git config user.name t && git config user.email t@t", proj, env)
    # small LLM workload so the test stays in minutes; everything else is the default configuration
    set_params(proj, evol__seed_limit=2, evol__rounds=1, translate__limit=2, llm__max_new_tokens=96)
    sh("git add -A && git commit -qm init && dvc pull -q data.dvc", proj, env)
    r = sh("dvc repro", proj, env)
    assert ran(r.stdout) == ALL_STAGES  # the dataset only: evaluation is its own pipeline
    r = sh("dvc repro evaluation/dvc.yaml", proj, env)
    assert ran(r.stdout) == {"evaluate"}
    sh("git add -A && git commit -qm built", proj, project_env(proj, proj_caches))  # tracing off from here
    return proj


@pytest.fixture(scope="module")
def proj_env(proj, proj_caches) -> dict[str, str]:
    """The environment every command against the built project runs with: `sh(cmd, proj, proj_env)`."""
    return project_env(proj, proj_caches)


def test_deps_cover_what_stages_use(proj, proj_caches):
    """Every project file a stage opened or imported during the build is one of its deps in dvc.yaml, and every
    data dep covers a file it opened, so removing any data dep from dvc.yaml makes this test fail (code deps are
    the static import closure, a superset of what one run imports: tests/test_pipeline_deps.py checks them)."""
    trace = proj_caches / "trace"
    used = {}
    for f in trace.glob("*.json"):
        t = json.loads(f.read_text())
        used[t["stage"]] = set(t["reads"]) | set(t["modules"])
    assert set(used) == ALL_STAGES | {"evaluate"}
    deps, outs = dvc_yaml.declared_deps(proj), dvc_yaml.declared_outs(proj)
    assert dvc_yaml.missing_deps(used, deps, outs) == []
    data = {s: [d for d in ds if not d.endswith(".py")] for s, ds in deps.items()}
    assert dvc_yaml.unused_deps(used, data) == []
    for stage, ds in data.items():  # the mutation the issue asks for, for every data dep
        for d in ds:
            fewer = {**deps, stage: [x for x in deps[stage] if x != d]}
            assert any(s == stage for s, _p in dvc_yaml.missing_deps(used, fewer, outs)), (stage, d)


def test_export_format(proj):
    data = json.loads((proj / "build/export/vad.json").read_text(encoding="utf-8"))
    assert len(data) > 100
    assert all(list(r) == ["instruction", "input", "output", "source", "categorization"] for r in data)
    assert "\\u" not in (proj / "build/export/vad.json").read_text(encoding="utf-8")[:2000]
    assert {r["source"] for r in data} >= {"manual"}
    lineage = [json.loads(l) for l in (proj / "build/export/lineage.jsonl").read_text().splitlines()]
    assert len(lineage) == len(data)
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(proj / "build/export/vad.parquet"), split="train")
    assert ds.num_rows == len(data) and ds[0]["categorization"] == data[0]["categorization"]
    card = (proj / "build/export/README.md").read_text(encoding="utf-8")
    assert "CC BY-NC 4.0" in card or "translated" not in {r["source"] for r in data}


EXPORTED = f"{paths.EXPORT_DIR}/records.jsonl"  # the export stage's corpus (vad.json's rows with their meta)
RECORD_CORPORA = {*CORPORA, EXPORTED}


def raw_lines(proj: Path, folder: str) -> list[str]:
    return [f"{folder}/{p.name}:{n}" for p in sorted((proj / folder).glob("*.jsonl"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]


def origin(rec: dict) -> str:
    o = rec["lineage"]["origin"]
    return f"{o['file']}:{o['line']}"


def test_every_record_is_accounted_for_by_id(proj):
    """From the files alone: in every stage each input (raw line, or record of an input corpus) leaves exactly once
    (output, ledger, consumed, or as the record its text became), every other leaving record was created, and over
    the whole build an id is ledgered at most once and never passed on after it was ledgered."""
    stages = dvc_yaml.all_stages(proj)
    problems, ledgered, passed_on = [], {}, {}
    for name in RECORD_STAGES:  # the stages that pass records on (categorize_train fits a model)
        st, m = stages[name], json.loads((proj / paths.metrics(name)).read_text())
        outputs = [r for w in st.writes if w in RECORD_CORPORA for r in read_jsonl(proj / w)]
        ledger = read_jsonl(proj / st.ledger)
        raw = [d for d in st.reads if d.startswith("data/raw/") and (proj / d).is_dir()]  # a raw stage's folders
        if raw:
            inputs, key = [k for d in raw for k in raw_lines(proj, d)], origin
        else:
            inputs, key = [r["id"] for d in st.reads if d in RECORD_CORPORA for r in read_jsonl(proj / d)], None
        assert inputs and m["in"] == len(inputs), name
        problems += [f"{name}: {p}" for p in id_problems(inputs, outputs, ledger, m["consumed_ids"], m["created"],
                                                         key=key)]
        for e in ledger:
            if e["id"] in ledgered:
                problems.append(f"{e['id']} ledgered by {ledgered[e['id']]} and {name}")
            ledgered[e["id"]] = name
        for r in outputs:
            passed_on.setdefault(r["id"], name)
        problems += [f"{name} passes on {r['id']}, ledgered by {ledgered[r['id']]}" for r in outputs
                     if r["id"] in ledgered and DATASET.index(ledgered[r["id"]]) < DATASET.index(name)]
    assert problems == []
    assert ledgered and len(passed_on) > len(read_jsonl(proj / EXPORTED))


def test_every_machine_made_record_reaching_review_is_categorized(proj):
    judged = read_jsonl(proj / paths.JUDGED)
    made = [r for r in judged if r["source"] != "manual"]
    assert len(made) == json.loads((proj / paths.metrics("judge")).read_text())["generated"]
    for r in made:
        p = r["meta"]["category_pred"]
        assert set(p) == {"level", "value", "confidence", "by"} and r["meta"]["category_by"] in ("prediction", "table")
        want = r["meta"]["category_table"] if r["meta"]["category_by"] == "table" else {"level": p["level"],
                                                                                       "value": p["value"]}
        assert r["categorization"] == want
    assert all("category_pred" not in r["meta"] for r in judged if r["source"] == "manual")
    cv = json.loads((proj / paths.metrics("categorize_train")).read_text())["cross_validation"]
    assert cv["model"]["value"] > cv["chance"]["value_uniform"] and cv["model"]["level"] > cv["chance"]["level_uniform"]
    html = (proj / "build/export/report.html").read_text(encoding="utf-8")
    assert 'id="categorizer"' in html and f">{cv['model']['value']}<" in html


def test_every_ledgered_reason_is_declared(proj):
    """docs/reasons.md lists what a build can say: every reason in a real build's ledgers is declared in the code."""
    from vad.reasons import catalogue

    declared = set(catalogue())
    used = {e["reason"] for name in RECORD_STAGES for e in read_jsonl(proj / dvc_yaml.all_stages(proj)[name].ledger)}
    used |= {f["reason"] for w in RECORD_CORPORA if (proj / w).is_file() for r in read_jsonl(proj / w)
             for f in r["meta"].get("flags", [])}
    assert used and used - declared == set()


def test_second_repro_does_nothing(proj, proj_env):
    r = sh("dvc repro", proj, proj_env)
    assert ran(r.stdout) == set()


def test_edit_one_manual_record_reruns_only_dependents(proj, proj_env):
    f = sorted((proj / "data/raw/manual").glob("*.jsonl"))[0]
    lines = f.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[0])
    # a fresh suffix each run: the score cache is shared across runs, and this edit must be new to it
    obj["output"] += f"总之，要从身边的小事做起（{uuid.uuid4().hex[:8]}）。"
    lines[0] = json.dumps(obj, ensure_ascii=False)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # an edit the provenance does not describe is refused, with the command that records it
    r = sh("dvc repro", proj, proj_env, check=False)
    rel = f.relative_to(proj).as_posix()
    assert r.returncode != 0 and f"{rel}: sha256 differs from data/raw/manual/PROVENANCE.json" in r.stderr, r.stderr
    assert "`vad provenance data/raw/manual --update`" in r.stderr
    sh("vad provenance data/raw/manual --update", proj, proj_env)
    r = sh("dvc repro", proj, proj_env)
    # the categorizer learns from the hand-written records, so it and the judge follow
    assert ran(r.stdout) == {"ingest_manual", "categorize_train", "merge", "ifd_score", "ifd_select", "judge",
                             "review", "export"}
    m = json.loads((proj / "build/metrics/ifd_score.json").read_text())
    assert m["scored"] == 1, m  # the score cache makes every other record free
    sh("git add -A && git commit -qm edit", proj, proj_env)


def test_ifd_params_rerun_the_right_stages(proj, proj_env):
    set_params(proj, ifd__min=0.96)  # about the median: the selection changes, so review and export follow
    r = sh("dvc repro", proj, proj_env)
    # the categorizer reads the selection (for the records reviewers settled), so it and the judge follow
    assert ran(r.stdout) == {"ifd_select", "categorize_train", "judge", "review", "export"}
    # a new template means new scores: DVC must see ifd_score as changed (not run here: it re-scores everything)
    set_params(proj, ifd__template="superfiltering_v1")
    status = sh("dvc status ifd_score", proj, proj_env).stdout
    assert "ifd_score" in status and "ifd.template" in status, status
    sh("git checkout params.yaml && dvc repro", proj, proj_env)


def test_queued_ifd_sweep_shows_kept_counts(proj, proj_env):
    # the README's sweep: queued experiments run in temporary workspaces, so every stage output must be restorable
    # from the DVC cache there (an uncached output under the git-ignored build/ made DVC rerun everything and
    # `dvc exp show` print "!")
    import csv

    sh("git add -A && git commit -qm built --allow-empty", proj, proj_env)
    sh("dvc exp run --queue -S 'ifd.min=0.93,0.96'", proj, proj_env)
    r = sh("dvc exp run --run-all", proj, proj_env)
    assert "Running stage 'ifd_score'" not in r.stdout and "Running stage 'merge'" not in r.stdout, r.stdout[-3000:]
    keep = "'Experiment|ifd\\.min|^kept$|kept_level_.*'"
    shown = sh(f"dvc exp show --csv --drop '.*' --keep {keep}", proj, proj_env).stdout
    rows = {row["ifd.min"]: row for row in csv.DictReader(shown.splitlines()) if row["Experiment"]}
    assert set(rows) == {"0.93", "0.96"}, shown
    lo, hi = rows["0.93"], rows["0.96"]
    assert all(v.isdigit() for row in (lo, hi) for k, v in row.items() if k.startswith("kept")), shown
    assert int(lo["kept"]) > int(hi["kept"])  # a higher minimum keeps fewer records
    assert int(hi["kept"]) == sum(int(hi[f"kept_level_{lv}"]) for lv in ("person", "social", "nation"))
    sh("dvc exp remove -A", proj, proj_env)


def test_exp_run_near_dup_threshold(proj, proj_env):
    # a near-duplicate (Jaccard ~0.9) of a manual record: dropped at the default 0.7, kept at 0.95
    f = sorted((proj / "data/raw/manual").glob("*.jsonl"))[0]
    obj = json.loads(f.read_text(encoding="utf-8").splitlines()[1])
    obj["output"] += "以上建议仅供参考，具体情况还需要结合实际来判断和处理。"
    append_manual(proj, proj_env, f, obj)
    sh("dvc repro && git add -A && git commit -qm near-dup", proj, proj_env)
    base = json.loads((proj / "build/metrics/merge.json").read_text())
    assert base["dropped_by_reason"].get("near_duplicate", 0) >= 1
    sh("dvc exp run -n strict -S merge.near_dup_threshold=0.95", proj, proj_env)
    exp_metrics = json.loads((proj / "build/metrics/merge.json").read_text())  # plain exp run applies to workspace
    assert exp_metrics["out"] > base["out"]
    assert exp_metrics["dropped_by_reason"].get("near_duplicate", 0) < base["dropped_by_reason"]["near_duplicate"]
    shown = json.loads(sh("dvc exp show --json", proj, proj_env).stdout)
    strict, = named(shown, "strict")
    assert strict["params"]["params.yaml"]["data"]["merge"]["near_dup_threshold"] == 0.95
    assert strict["metrics"]["build/metrics/merge.json"]["data"]["out"] == exp_metrics["out"]
    baseline, = [e["data"] for e in shown if e["rev"] != "workspace"]
    assert baseline["metrics"]["build/metrics/merge.json"]["data"]["out"] == base["out"]
    sh("git checkout -- . && dvc checkout -q", proj, proj_env)


def named(obj, name: str) -> list[dict]:
    """The `data` of every experiment called `name` in `dvc exp show --json` output."""
    if isinstance(obj, list):
        return [d for o in obj for d in named(o, name)]
    if not isinstance(obj, dict):
        return []
    here = [obj["data"]] if obj.get("name") == name and isinstance(obj.get("data"), dict) else []
    return here + [d for v in obj.values() for d in named(v, name)]


def test_forced_runs_are_byte_identical(proj, proj_env):
    sh("dvc repro --force", proj, proj_env)
    first = sha(proj / "build/export/vad.json")
    sh("dvc repro --force", proj, proj_env)
    assert sha(proj / "build/export/vad.json") == first


def test_trace_and_why(proj, proj_env):
    out = sh("vad trace 0", proj, proj_env).stdout
    assert re.search(r"raw +data/raw/\S+\.jsonl:\d+ +\(sha256 matches", out), out
    # add a near-duplicate of an exported manual record, rebuild, and ask why it was dropped
    f = sorted((proj / "data/raw/manual").glob("*.jsonl"))[-1]
    last = json.loads(f.read_text(encoding="utf-8").splitlines()[-1])
    obj = {**last, "output": last["output"].rstrip("。") + "，这一点很重要。"}
    append_manual(proj, proj_env, f, obj, last)  # a near-duplicate and an exact copy of a manual record
    sh("dvc repro", proj, proj_env)
    merge_ledger = read_jsonl(proj / "build/ledger/merge.jsonl")
    n = len(f.read_text(encoding="utf-8").splitlines())
    mine = {e["record"]["lineage"]["origin"]["line"]: e for e in merge_ledger
            if e["record"]["lineage"]["origin"]["file"] == f.relative_to(proj).as_posix()}
    near, exact = mine[n - 1], mine[n]
    assert near["reason"] == "near_duplicate" and exact["reason"] == "exact_duplicate"
    out = sh(f"vad why {near['id']}", proj, proj_env).stdout
    assert "stage 'merge'" in out and near["reason"] in out and near["dup_of"] in out
    # the exact copy has its own id (not the kept record's): `vad why` prints its one entry
    assert exact["id"] != exact["dup_of"] and exact["record"]["meta"]["same_content_as"] == exact["dup_of"]
    out = sh(f"vad why {exact['id']}", proj, proj_env).stdout
    assert out.count("was dropped by stage") == 1 and "exported" not in out.splitlines()[0]
    assert f"it duplicates {exact['dup_of']} ({f.relative_to(proj).as_posix()}:{n - 2})" in out
