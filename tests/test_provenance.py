"""Every raw source is checked against its PROVENANCE.json by its stage (changed, unlisted, missing file → the stage
fails naming the file and the command that records a change), and the `vad provenance` / `vad fetch` commands,
run as real subprocesses, write provenance the stages accept."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from vad.core.errors import InputError
from vad.core.ledger import StageRun
from vad.core.config import load_params
from vad.core.stage import run_script
from vad.sources.provenance import CVALUES_COMMIT, CVALUES_FILES, verify_provenance
from vad.sources.select_pairs import select_pairs

SOURCES = {"manual": "ingest_manual", "cvalues": "seeds", "saferlhf": "select_pairs"}  # raw folder → its stage


def vad(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vad.cli", *args], cwd=cwd, capture_output=True, text=True)


def copy_raw(project: Path, source: str) -> Path:
    folder = project / "data/raw" / source
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "data/raw" / source, folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def mutate(folder: Path, how: str) -> Path:
    """Change the folder the way `how` says; returns the file the error must name."""
    first = sorted(folder.glob("*.jsonl"))[0]
    if how == "changed":
        lines = first.read_text(encoding="utf-8").splitlines()
        obj = json.loads(lines[0])
        key = "output" if "output" in obj else "prompt"
        obj[key] = obj[key] + "（修改）"
        lines[0] = json.dumps(obj, ensure_ascii=False)
        first.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return first
    if how == "unlisted":
        new = folder / "zz_added.jsonl"
        new.write_text(first.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
        return new
    first.unlink()  # missing
    return first


@pytest.mark.parametrize("how,problem", [
    ("changed", "sha256 differs from"), ("unlisted", "not listed in"), ("missing", "but missing")])
@pytest.mark.parametrize("source", SOURCES)
def test_stage_refuses_raw_files_its_provenance_does_not_describe(mini_project, source, how, problem):
    folder = copy_raw(mini_project, source)
    rel = f"data/raw/{source}"
    bad = mutate(folder, how)
    with pytest.raises(InputError) as e:
        run_script(mini_project / f"stages/{SOURCES[source]}.py")
    msg = str(e.value)
    assert msg.startswith(f"{rel}/{bad.name}: ") and problem in msg and f"{rel}/PROVENANCE.json" in msg
    assert msg.endswith(f"`vad provenance {rel} --update`")
    assert not (mini_project / "build/metrics" / f"{SOURCES[source]}.json").exists()  # it failed before writing


@pytest.mark.parametrize("source", SOURCES)
def test_provenance_update_records_the_change_and_keeps_origin(mini_project, source):
    folder = copy_raw(mini_project, source)
    before = json.loads((folder / "PROVENANCE.json").read_text(encoding="utf-8"))
    mutate(folder, "changed")
    added = mutate(folder, "unlisted")
    r = vad("provenance", f"data/raw/{source}", "--update", cwd=mini_project)
    assert r.returncode == 0, r.stderr
    after = json.loads((folder / "PROVENANCE.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in after.items() if k != "files"} == {k: v for k, v in before.items() if k != "files"}
    assert set(after["files"]) == set(before["files"]) | {added.name}
    assert json.loads(r.stdout) == after
    verify_provenance(Path(f"data/raw/{source}"))  # the stage's check now passes
    # a missing file: --update drops it from the list
    added.unlink()
    assert vad("provenance", f"data/raw/{source}", "--update", "--licence", "CC0-1.0", cwd=mini_project).returncode == 0
    after = json.loads((folder / "PROVENANCE.json").read_text(encoding="utf-8"))
    assert set(after["files"]) == set(before["files"]) and after["licence"] == "CC0-1.0"
    assert after["origin"] == before["origin"] and after["revision"] == before["revision"]


def test_provenance_command_errors(mini_project):
    folder = mini_project / "data/raw/manual"
    (folder / "a.jsonl").write_text("{}\n", encoding="utf-8")
    r = vad("provenance", "data/raw/manual", "--update", cwd=mini_project)
    assert r.returncode == 1 and "data/raw/manual/PROVENANCE.json: missing provenance file" in r.stderr
    assert "Traceback" not in r.stderr
    r = vad("provenance", "data/raw/manual", "--origin", "ours", cwd=mini_project)
    assert r.returncode == 2 and "--revision --licence required" in r.stderr
    r = vad("provenance", "data/raw/manual", "--origin", "ours", "--revision", "v1", "--licence", "CC BY 4.0",
            cwd=mini_project)
    assert r.returncode == 0
    prov = json.loads((folder / "PROVENANCE.json").read_text(encoding="utf-8"))
    assert prov["origin"] == "ours" and prov["revision"] == "v1" and list(prov["files"]) == ["a.jsonl"]
    (folder / "PROVENANCE.json").write_text("{\n  \"origin\": \n", encoding="utf-8")
    r = vad("provenance", "data/raw/manual", "--update", cwd=mini_project)
    assert r.returncode == 1 and "data/raw/manual/PROVENANCE.json:3: malformed JSON" in r.stderr


def test_fetch_cvalues_from_a_file_url(tmp_path):
    mirror = tmp_path / "mirror"
    for name, repo_path in CVALUES_FILES.items():
        dst = mirror / CVALUES_COMMIT / repo_path
        dst.parent.mkdir(parents=True)
        shutil.copy(ROOT / "data/raw/cvalues" / name, dst)
    out = tmp_path / "cvalues"
    r = vad("fetch", "cvalues", "--base-url", mirror.as_uri(), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    prov = json.loads((out / "PROVENANCE.json").read_text(encoding="utf-8"))
    bundled = json.loads((ROOT / "data/raw/cvalues/PROVENANCE.json").read_text(encoding="utf-8"))
    assert prov["revision"] == CVALUES_COMMIT and prov["licence"] == "Apache-2.0"
    assert prov["files"] == bundled["files"]  # byte-identical to the bundled copy of that commit
    verify_provenance(out)
    # a commit the mirror does not have: a one-line error naming the URL, no traceback
    r = vad("fetch", "cvalues", "--base-url", mirror.as_uri(), "--revision", "0" * 40, "--out", str(out), cwd=tmp_path)
    assert r.returncode == 1 and f"{mirror.as_uri()}/{'0' * 40}/" in r.stderr and "download failed" in r.stderr
    assert "Traceback" not in r.stderr


def test_fetch_saferlhf_from_local_data_files(tmp_path):
    src = ROOT / "data/raw/saferlhf/pku_saferlhf_alpaca7b_test_first16.jsonl"
    out = tmp_path / "saferlhf"
    r = vad("fetch", "saferlhf", "--data-files", str(src), "--revision", "local-copy", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    prov = verify_provenance(out)
    (name,) = prov["files"]
    assert prov["origin"] == f"local:{src}" and prov["revision"] == "local-copy" and prov["rows"] == 16
    assert prov["licence"] == "CC BY-NC 4.0"
    # the fetched rows select the same pairs as the bundled ones (ids are content hashes)
    params = load_params(ROOT / "params.yaml").select
    fetched = select_pairs(out / name, name, params, StageRun("select_pairs", root=tmp_path))
    bundled = select_pairs(src, src.name, params, StageRun("select_pairs", root=tmp_path))
    assert fetched and [r.id for r in fetched] == [r.id for r in bundled]
