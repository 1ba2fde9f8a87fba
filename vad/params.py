"""params.yaml access. Stages read only their own sections; DVC tracks exactly those keys (dvc.yaml)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vad.paths import project_root


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    p = Path(path) if path else project_root() / "params.yaml"
    with p.open(encoding="utf-8") as f:
        return yaml.safe_load(f) or {}
