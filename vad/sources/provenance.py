"""Raw sources: provenance files, and loading the full public datasets at pinned revisions.

The bundled samples live in data/raw/<source>/ with a PROVENANCE.json (origin, revision, licence, sha256 of
each file). A user with internet access replaces a sample by the full dataset with `vad fetch ...`, which
writes the same layout and provenance, so the pipeline runs unchanged (then `dvc add data && dvc push`)."""
from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from vad.core.errors import InputError
from vad.core.io import write_json

SAFERLHF_REPO = "PKU-Alignment/PKU-SafeRLHF"
CVALUES_REPO = "X-PLUG/CValues"
CVALUES_COMMIT = "3018d3886890d04c95c9051c7055fb19e36ef592"
CVALUES_FILES = {"cvalues_responsibility_prompts.jsonl": "dataset/cvalues_responsibility_prompts.jsonl"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_provenance(folder: Path, origin: str, revision: str, licence: str, **extra: Any) -> dict:
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(folder.glob("*.jsonl"))}
    prov = {"origin": origin, "revision": revision, "licence": licence, **extra, "files": files}
    write_json(folder / "PROVENANCE.json", prov)
    return prov


def verify_provenance(folder: Path) -> dict:
    """Fail naming the file if a raw file is not the one its provenance describes."""
    prov_path = folder / "PROVENANCE.json"
    if not prov_path.exists():
        raise InputError(str(prov_path), "missing provenance file (origin, revision, licence, sha256)")
    prov = json.loads(prov_path.read_text(encoding="utf-8"))
    on_disk = {p.name for p in folder.glob("*.jsonl")}
    for name in sorted(on_disk - set(prov["files"])):
        raise InputError(str(folder / name), f"not listed in {prov_path}")
    for name, info in prov["files"].items():
        path = folder / name
        if not path.exists():
            raise InputError(str(path), f"listed in {prov_path} but missing")
        if sha256_file(path) != info["sha256"]:
            raise InputError(str(path), f"sha256 differs from {prov_path}: the raw file changed without new provenance")
    return prov


def fetch_saferlhf(out_dir: Path, revision: str, split: str = "train", subset: str | None = None,
                   data_files: str | None = None) -> dict:
    """Load PKU-SafeRLHF with `datasets` at a pinned revision (or from local `data_files`) into out_dir."""
    import datasets

    if data_files:  # local copy (also the tested path: no hub here)
        ds = datasets.load_dataset("json", data_files=data_files, split="train")
        origin = f"local:{data_files}"
    else:
        ds = datasets.load_dataset(SAFERLHF_REPO, name=subset, split=split, revision=revision)
        origin = f"https://huggingface.co/datasets/{SAFERLHF_REPO}"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"pku_saferlhf_{subset or 'default'}_{split}.jsonl"
    with (out_dir / name).open("w", encoding="utf-8") as f:
        for row in ds:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return write_provenance(out_dir, origin, revision, "CC BY-NC 4.0", split=split, subset=subset, rows=len(ds))


def fetch_cvalues(out_dir: Path, commit: str = CVALUES_COMMIT,
                  base_url: str = "https://raw.githubusercontent.com/X-PLUG/CValues") -> dict:
    """Download the CValues data files at a pinned commit (base_url may be file:// for a local mirror)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, repo_path in CVALUES_FILES.items():
        with urllib.request.urlopen(f"{base_url}/{commit}/{repo_path}", timeout=60) as resp:
            (out_dir / name).write_bytes(resp.read())
    return write_provenance(out_dir, f"https://github.com/{CVALUES_REPO}", commit, "Apache-2.0")
