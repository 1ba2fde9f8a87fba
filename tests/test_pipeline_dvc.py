"""The whole pipeline under DVC, in a copy of the project with small LLM params (slow: a few minutes).

Checks the acceptance list of the spine: a build to build/export/, a no-op second `dvc repro`, an edit to one
manual record rerunning only what depends on it, IFD params rerunning the right stages, a queued `dvc exp` IFD
sweep with kept counts per level, `dvc exp run -S` with changed counts in `dvc exp show`, byte-identical vad.json
over two forced runs, `vad trace` / `vad why`, and that every file a stage opens or imports is one of its deps
in dvc.yaml (the build runs with VAD_TRACE_DIR set)."""
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
from vad.core import dvc_yaml
from vad.core.pipeline import DATASET

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ALL_STAGES = set(DATASET)
ENV: dict[str, str] = {}  # set by the proj fixture: the project's own caches and trace folder


def sh(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **ENV}
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    return r


def ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '(?:[\w./]+:)?([a-z_]+)'", out))


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def set_params(proj: Path, **changes):
    p = proj / "params.yaml"
    params = yaml.safe_load(p.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        sec, key = dotted.split("__")
        params[sec][key] = value
    p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    caches = tmp_path_factory.mktemp("vadproj-caches")
    ENV.update(VAD_CACHE_DIR=str(caches / "cache"), VAD_TRACE_DIR=str(caches / "trace"))
    if os.environ.get("VAD_TEST_BUILT_PROJECT"):  # developers: reuse a project this fixture already built
        return Path(os.environ["VAD_TEST_BUILT_PROJECT"])
    proj = tmp_path_factory.mktemp("vadproj")
    ENV["PYTHONPATH"] = str(proj)  # the copy runs its own code (and the trace sees its modules)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if (ROOT / rel).is_file():
            (proj / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, proj / rel)
    sh("git init -q -b main && git config user.name t && git config user.email t@t", proj)
    # small LLM workload so the test stays in minutes; everything else is the default configuration
    set_params(proj, evol__seed_limit=2, evol__rounds=1, translate__limit=2, llm__max_new_tokens=96)
    sh("git add -A && git commit -qm init && dvc pull -q data.dvc", proj)
    r = sh("dvc repro", proj)
    assert ran(r.stdout) == ALL_STAGES  # the dataset only: evaluation is its own pipeline
    r = sh("dvc repro evaluation/dvc.yaml", proj)
    assert ran(r.stdout) == {"evaluate"}
    ENV.pop("VAD_TRACE_DIR")  # the traces of one full build are what test_deps_cover_what_stages_use reads
    sh("git add -A && git commit -qm built", proj)
    return proj


def test_deps_cover_what_stages_use(proj):
    """Every project file a stage opened or imported during the build is one of its deps in dvc.yaml, and every
    data dep covers a file it opened, so removing any data dep from dvc.yaml makes this test fail (code deps are
    the static import closure, a superset of what one run imports: tests/test_pipeline_deps.py checks them)."""
    trace = Path(ENV["VAD_CACHE_DIR"]).parent / "trace"
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


def test_export_format_and_books(proj):
    data = json.loads((proj / "build/export/vad.json").read_text(encoding="utf-8"))
    assert len(data) > 100
    assert all(list(r) == ["instruction", "input", "output", "source", "categorization"] for r in data)
    assert "\\u" not in (proj / "build/export/vad.json").read_text(encoding="utf-8")[:2000]
    assert {r["source"] for r in data} >= {"manual"}
    lineage = [json.loads(l) for l in (proj / "build/export/lineage.jsonl").read_text().splitlines()]
    assert len(lineage) == len(data)
    for stage in ALL_STAGES:
        m = json.loads((proj / f"build/metrics/{stage}.json").read_text())
        assert m["in"] + m["created"] == m["out"] + m["ledgered"] + m["consumed"], stage
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(proj / "build/export/vad.parquet"), split="train")
    assert ds.num_rows == len(data) and ds[0]["categorization"] == data[0]["categorization"]
    card = (proj / "build/export/README.md").read_text(encoding="utf-8")
    assert "CC BY-NC 4.0" in card or "translated" not in {r["source"] for r in data}


def test_second_repro_does_nothing(proj):
    r = sh("dvc repro", proj)
    assert ran(r.stdout) == set()


def test_edit_one_manual_record_reruns_only_dependents(proj):
    f = sorted((proj / "data/raw/manual").glob("*.jsonl"))[0]
    lines = f.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[0])
    # a fresh suffix each run: the score cache is shared across runs, and this edit must be new to it
    obj["output"] += f"总之，要从身边的小事做起（{uuid.uuid4().hex[:8]}）。"
    lines[0] = json.dumps(obj, ensure_ascii=False)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = sh("dvc repro", proj)
    assert ran(r.stdout) == {"ingest_manual", "merge", "ifd_score", "ifd_select", "review", "export"}
    m = json.loads((proj / "build/metrics/ifd_score.json").read_text())
    assert m["scored"] == 1, m  # the score cache makes every other record free
    sh("git add -A && git commit -qm edit", proj)


def test_ifd_params_rerun_the_right_stages(proj):
    set_params(proj, ifd__min=0.96)  # about the median: the selection changes, so review and export follow
    r = sh("dvc repro", proj)
    assert ran(r.stdout) == {"ifd_select", "review", "export"}
    # a new template means new scores: DVC must see ifd_score as changed (not run here: it re-scores everything)
    set_params(proj, ifd__template="superfiltering_v1")
    status = sh("dvc status ifd_score", proj).stdout
    assert "ifd_score" in status and "ifd.template" in status, status
    sh("git checkout params.yaml && dvc repro", proj)


def test_queued_ifd_sweep_shows_kept_counts(proj):
    # the README's sweep: queued experiments run in temporary workspaces, so every stage output must be restorable
    # from the DVC cache there (an uncached output under the git-ignored build/ made DVC rerun everything and
    # `dvc exp show` print "!")
    import csv

    sh("git add -A && git commit -qm built --allow-empty", proj)
    sh("dvc exp run --queue -S 'ifd.min=0.93,0.96'", proj)
    r = sh("dvc exp run --run-all", proj)
    assert "Running stage 'ifd_score'" not in r.stdout and "Running stage 'merge'" not in r.stdout, r.stdout[-3000:]
    shown = sh("dvc exp show --csv --drop '.*' --keep 'Experiment|ifd\\.min|^kept$|kept_level_.*'", proj).stdout
    rows = {row["ifd.min"]: row for row in csv.DictReader(shown.splitlines()) if row["Experiment"]}
    assert set(rows) == {"0.93", "0.96"}, shown
    lo, hi = rows["0.93"], rows["0.96"]
    assert all(v.isdigit() for row in (lo, hi) for k, v in row.items() if k.startswith("kept")), shown
    assert int(lo["kept"]) > int(hi["kept"])  # a higher minimum keeps fewer records
    assert int(hi["kept"]) == sum(int(hi[f"kept_level_{lv}"]) for lv in ("person", "social", "nation"))
    sh("dvc exp remove -A", proj)


def test_exp_run_near_dup_threshold(proj):
    # a near-duplicate (Jaccard ~0.9) of a manual record: dropped at the default 0.7, kept at 0.95
    f = sorted((proj / "data/raw/manual").glob("*.jsonl"))[0]
    obj = json.loads(f.read_text(encoding="utf-8").splitlines()[1])
    obj["output"] += "以上建议仅供参考，具体情况还需要结合实际来判断和处理。"
    with f.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sh("dvc repro && git add -A && git commit -qm near-dup", proj)
    base = json.loads((proj / "build/metrics/merge.json").read_text())
    assert base["dropped_by_reason"].get("near_duplicate", 0) >= 1
    sh("dvc exp run -n strict -S merge.near_dup_threshold=0.95", proj)
    exp_metrics = json.loads((proj / "build/metrics/merge.json").read_text())  # plain exp run applies to workspace
    assert exp_metrics["out"] > base["out"]
    assert exp_metrics["dropped_by_reason"].get("near_duplicate", 0) < base["dropped_by_reason"]["near_duplicate"]
    shown = sh("dvc exp show --json", proj).stdout
    assert "strict" in shown and "near_dup_threshold" in shown
    assert f'"out": {exp_metrics["out"]}' in shown.replace('"out":{', '"out": {') or str(exp_metrics["out"]) in shown
    sh("git checkout -- . && dvc checkout -q", proj)


def test_forced_runs_are_byte_identical(proj):
    sh("dvc repro --force", proj)
    first = sha(proj / "build/export/vad.json")
    sh("dvc repro --force", proj)
    assert sha(proj / "build/export/vad.json") == first


def test_trace_and_why(proj):
    out = sh("vad trace 0", proj).stdout
    assert re.search(r"raw +data/raw/\S+\.jsonl:\d+ +\(sha256 matches", out), out
    # add a near-duplicate of an exported manual record, rebuild, and ask why it was dropped
    f = sorted((proj / "data/raw/manual").glob("*.jsonl"))[-1]
    obj = json.loads(f.read_text(encoding="utf-8").splitlines()[-1])
    obj["output"] = obj["output"].rstrip("。") + "，这一点很重要。"
    with f.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sh("dvc repro", proj)
    merge_ledger = [json.loads(l) for l in (proj / "build/ledger/merge.jsonl").read_text().splitlines()]
    dup = [e for e in merge_ledger if e["reason"] in ("near_duplicate", "exact_duplicate")
           and e["record"]["lineage"]["origin"]["file"] == f.relative_to(proj).as_posix()][-1]
    out = sh(f"vad why {dup['id']}", proj).stdout
    assert "stage 'merge'" in out and dup["reason"] in out and dup["dup_of"] in out
