import json
import os
import shutil
from pathlib import Path

import pytest

import vad  # noqa: F401  (sets the offline environment variables before anything else loads)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"  # screenshots the browser tests keep for people to look at
# Prepared models are a pure function of their package: every test shares the project's copy (preparing the
# default model takes ~40 s). Caches with state (LLM requests, IFD scores) are each test's own (below).
os.environ.setdefault("VAD_MODEL_DIR", str(ROOT / "build" / "cache" / "models"))


@pytest.fixture(autouse=True)
def own_caches(tmp_path, monkeypatch):
    """Every test gets empty LLM request and IFD score caches: no test sees another's, or the developer's."""
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "vad-cache"))
    return tmp_path / "vad-cache"


def manual_line(instruction="请解释什么是诚信，并举一个日常生活中的例子。", output=None, level="person", value="诚信",
                input="", **extra) -> str:
    obj = {"instruction": instruction, "input": input,
           "output": output if output is not None else "诚信是指诚实守信，说到做到。比如借了朋友的钱，按约定的时间归还，就是诚信的表现。",
           "categorization": {"level": level, "value": value}, **extra}
    return json.dumps(obj, ensure_ascii=False)


@pytest.fixture
def mini_project(tmp_path, monkeypatch):
    """A project folder with the real code layout (dvc.yaml, params, suites, stages) and empty raw data."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for d in ("expectations", "stages"):
        shutil.copytree(ROOT / d, tmp_path / d)
    (tmp_path / "data/raw/manual").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def record_provenance(folder: Path, origin: str = "written by a test", licence: str = "CC BY 4.0") -> dict:
    """PROVENANCE.json for a raw folder a test wrote (the raw stages refuse files their provenance does not list)."""
    from vad.sources.provenance import write_provenance

    return write_provenance(Path(folder), origin, "test", licence)
