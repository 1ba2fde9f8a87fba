"""Fixtures every test module can take, without importing them.

Helpers (the fake OpenAI server, the fake model, small projects and inputs) are plain modules in tests/support/:
test modules import them as `support.<module>`. pytest puts tests/ on sys.path (this rootdir conftest, in a
folder without __init__.py, under the default "prepend" import mode), so `support` and `conftest` import there;
no test module imports another test module.

    own_caches     (autouse) empty LLM request and IFD score caches for every test
    mini_project   a project folder with the real code layout and empty raw data (the test runs inside it)
    stage_env      mini_project with tiny seeds and pairs for evolve and translate (support.llm_stages)
    review_project a small review project, the test inside it (support.review.make_project)
    nc_build       the export tests' built project with translated pairs (CC BY-NC), once per session
    own_build      the same build without translated pairs, once per session (support.export_build)

ROOT, ARTIFACTS, manual_line and record_provenance live in support.project; they are importable from here too."""
import os
import shutil

import pytest

import vad  # noqa: F401  (sets the offline environment variables before anything else loads)
from support.project import ARTIFACTS, ROOT, manual_line, record_provenance

__all__ = ["ARTIFACTS", "ROOT", "manual_line", "record_provenance"]  # `from conftest import ROOT` in test modules

# Prepared models are a pure function of their package: every test shares the project's copy (preparing the
# default model takes ~40 s). Caches with state (LLM requests, IFD scores) are each test's own (below).
os.environ.setdefault("VAD_MODEL_DIR", str(ROOT / "build" / "cache" / "models"))


@pytest.fixture(autouse=True)
def own_caches(tmp_path, monkeypatch):
    """Every test gets empty LLM request and IFD score caches: no test sees another's, or the developer's."""
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "vad-cache"))
    return tmp_path / "vad-cache"


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


# The fixtures below import their helpers when first used: collecting the tests imports no more than before.
@pytest.fixture
def stage_env(mini_project, tmp_path, monkeypatch):
    """A project copy (mini_project) with tiny seeds and pairs (support.llm_stages); the LLM cache in a tmp folder."""
    from support.llm_stages import make_pairs, make_seeds, write_records

    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "llmcache"))
    write_records(mini_project / "build/seeds/seeds.jsonl", make_seeds())
    write_records(mini_project / "build/select/pairs.jsonl", make_pairs())
    return mini_project


@pytest.fixture
def review_project(tmp_path, monkeypatch):
    """The small review project of support.review.make_project (the review stage's input, the judge stage's
    output the app reads, seeds and a merge ledger), with the test running inside it."""
    from support.review import make_project

    root = make_project(tmp_path)
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def nc_build(tmp_path_factory):
    """support.export_build.build_project with translated SafeRLHF pairs (so a CC BY-NC card), built once per
    session: tests/test_export.py and tests/test_report.py read it; a test that changes a build changes a copy."""
    from support.export_build import REVIEW, build_project

    return build_project(tmp_path_factory.mktemp("nc-build"), translated=True, review=REVIEW)


@pytest.fixture(scope="session")
def own_build(tmp_path_factory):
    """The same build with the translated pairs dropped (the project's own licence), once per session."""
    from support.export_build import REVIEW, build_project

    return build_project(tmp_path_factory.mktemp("own-build"), translated=False, review=REVIEW)
