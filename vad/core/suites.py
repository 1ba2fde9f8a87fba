"""The great-expectations suites as files: `expectations/<name>.json`, each extending others (`extends`).

Only JSON here (which files a suite is made of, its expectations in order), so that the dvc.yaml generator can
list a stage's suite files without importing great-expectations; vad/quality/validate.py runs them."""
from __future__ import annotations

import json
from pathlib import Path

from vad.core.paths import EXPECTATIONS, project_root


def suite_path(name: str, root: Path | None = None) -> Path:
    return (root or project_root()) / EXPECTATIONS / f"{name}.json"


def read_suite(name: str, root: Path | None = None) -> dict:
    with suite_path(name, root).open(encoding="utf-8") as f:
        return json.load(f)


def suite_files(name: str) -> list[str]:
    """The files a suite is made of: those it extends (recursively, first), then its own."""
    out: list[str] = []
    for base in read_suite(name).get("extends", []):
        out += [f for f in suite_files(base) if f not in out]
    return out + [f"{EXPECTATIONS}/{name}.json"]


def load_suite(name: str) -> dict:
    """The suite with the expectations of the suites it extends before its own (each expectation is written once,
    in the one file that holds it), and the sources it names (None: every source)."""
    d = read_suite(name)
    exps = [x for base in d.get("extends", []) for x in load_suite(base)["expectations"]]
    return {"name": d["name"], "meta": d.get("meta", {}), "sources": d.get("sources"),
            "expectations": exps + d["expectations"]}
