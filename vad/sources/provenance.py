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
from vad.core.paths import PROVENANCE
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


def _jsonl_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def write_provenance(folder: Path, origin: str, revision: str, licence: str, **extra: Any) -> dict:
    """Write folder/PROVENANCE.json: origin, revision, licence, `extra`, and the sha256 and size of every *.jsonl."""
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in _jsonl_files(folder)}
    prov = {"origin": origin, "revision": revision, "licence": licence, **extra, "files": files}
    write_json(folder / PROVENANCE, prov)
    return prov


def read_provenance(folder: Path) -> dict:
    prov_path = folder / PROVENANCE
    if not prov_path.exists():
        raise InputError(str(prov_path), "missing provenance file (origin, revision, licence, sha256 of each file):"
                         f" write it with `vad provenance {folder} --origin ... --revision ... --licence ...`")
    try:
        prov = json.loads(prov_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{prov_path}:{e.lineno}", f"malformed JSON ({e.msg})") from None
    missing = [k for k in ("origin", "revision", "licence", "files") if k not in prov]
    if missing:
        raise InputError(str(prov_path), f"missing key(s) {missing}")
    return prov


def update_provenance(folder: Path, origin: str | None = None, revision: str | None = None,
                      licence: str | None = None) -> dict:
    """Refresh the file list and hashes of an existing PROVENANCE.json, keeping origin, revision, licence and
    notes (each replaced only when given); a row count (`rows`, as `vad fetch` writes it) is recounted."""
    prov = read_provenance(folder)
    kept = {k: v for k, v in prov.items() if k != "files"}
    kept.update({k: v for k, v in (("origin", origin), ("revision", revision), ("licence", licence)) if v is not None})
    if "rows" in kept:
        kept["rows"] = sum(1 for p in _jsonl_files(folder) for line in p.read_text(encoding="utf-8").splitlines()
                           if line.strip())
    return write_provenance(folder, **kept)


def verify_provenance(folder: Path) -> dict:
    """Fail naming the file if a raw file is not the one its provenance describes (unlisted, missing or changed);
    the message says the command that records a change that is meant."""
    prov_path = folder / PROVENANCE
    prov = read_provenance(folder)
    update = f"`vad provenance {folder} --update`"
    on_disk = {p.name for p in _jsonl_files(folder)}
    for name in sorted(on_disk - set(prov["files"])):
        raise InputError(str(folder / name), f"not listed in {prov_path}: if it belongs there, record it with {update}")
    for name, info in prov["files"].items():
        path = folder / name
        if not path.exists():
            raise InputError(str(path), f"listed in {prov_path} but missing: restore it, or drop it from the "
                                        f"provenance with {update}")
        if sha256_file(path) != info.get("sha256"):
            raise InputError(str(path), f"sha256 differs from {prov_path}: the file changed without new provenance;"
                                        f" if the change is meant, record it with {update}")
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
        url = f"{base_url}/{commit}/{repo_path}"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                data = resp.read()
        except OSError as e:  # URLError, HTTPError and file:// errors are all OSErrors
            raise InputError(url, f"download failed ({getattr(e, 'reason', e)})") from None
        (out_dir / name).write_bytes(data)
    return write_provenance(out_dir, f"https://github.com/{CVALUES_REPO}", commit, "Apache-2.0")
