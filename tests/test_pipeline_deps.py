"""dvc.yaml holds exactly what the stage declarations and the code say (fast: nothing runs).

The files a stage opens are checked against a real, traced build in test_pipeline_dvc.py; here: the generated
files are up to date, each stage's code deps are exactly its import closure (removing one fails), an import
added to a stage's code shows up as a missing dep, and every stage is in a pipeline."""
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from vad.core import dvc_yaml
from vad.core.pipeline import PIPELINES


def code_problems(root: Path) -> list[tuple[str, str, str]]:
    """(stage, path, 'missing' | 'stale') for code deps that differ from the import closure."""
    out = []
    declared = dvc_yaml.declared_deps(root)
    for name, st in dvc_yaml.all_stages(root).items():
        _data, code = dvc_yaml.stage_deps(st, root)
        have = [d for d in declared.get(name, []) if d.endswith(".py")]
        out += [(name, c, "missing") for c in code if c not in have]
        out += [(name, h, "stale") for h in have if h not in code]
    return sorted(out)


def test_generated_dvc_yaml_is_up_to_date():
    assert dvc_yaml.stale(ROOT) == [], "run `vad pipeline write`"


def test_code_deps_are_the_import_closure():
    assert code_problems(ROOT) == []


def test_removing_any_code_dep_is_noticed(tmp_path):
    declared = dvc_yaml.declared_deps(ROOT)
    closures = {n: dvc_yaml.stage_deps(st, ROOT)[1] for n, st in dvc_yaml.all_stages(ROOT).items()}
    for stage, deps in declared.items():
        for d in (x for x in deps if x.endswith(".py")):
            have = [x for x in deps if x != d and x.endswith(".py")]
            assert [c for c in closures[stage] if c not in have] == [d], (stage, d)


@pytest.fixture
def project_copy(tmp_path):
    for d in ("stages", "vad", "expectations", "evaluation"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    return tmp_path


def test_a_new_import_is_a_missing_dep(project_copy):
    # review's code starts using the IFD templates: the generated dvc.yaml must change, and the
    # current one lacks the module
    p = project_copy / "vad/publish/review.py"
    p.write_text(p.read_text(encoding="utf-8") + "\n\ndef _tmpl(name):\n    from vad.quality.ifd.templates import TEMPLATES\n\n"
                 "    return TEMPLATES[name]\n", encoding="utf-8")
    assert ("review", "vad/quality/ifd/templates.py", "missing") in code_problems(project_copy)
    assert "dvc.yaml" in dvc_yaml.stale(project_copy)
    dvc_yaml.write(project_copy)
    assert code_problems(project_copy) == [] and dvc_yaml.stale(project_copy) == []


def test_every_stage_script_is_in_a_pipeline():
    scripts = {p.stem for p in (ROOT / "stages").glob("*.py")}
    listed = {n for names in PIPELINES.values() for n in names}
    assert scripts == listed
