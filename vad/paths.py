"""Where things live. Every path is relative to the project root (the folder holding dvc.yaml)."""
from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    p = (start or Path.cwd()).resolve()
    for cand in (p, *p.parents):
        if (cand / "dvc.yaml").exists():
            return cand
    return p


def build_dir() -> Path:
    return project_root() / "build"


def cache_dir() -> Path:
    """Caches that must survive `dvc repro --force` (LLM requests, IFD scores, prepared models).

    They are not DVC outputs: DVC deletes outputs before rerunning a stage."""
    env = os.environ.get("VAD_CACHE_DIR")
    root = project_root()
    # `dvc exp run --queue/--temp` runs in <project>/.dvc/tmp/exps/<tmp>/: share the project's caches so an
    # experiment does not re-prepare models, re-pay LLM calls or re-score IFD.
    if ".dvc" in root.parts:
        root = Path(*root.parts[: root.parts.index(".dvc")])
    d = Path(env) if env else root / "build" / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d
