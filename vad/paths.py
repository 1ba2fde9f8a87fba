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
    d = Path(env) if env else build_dir() / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d
