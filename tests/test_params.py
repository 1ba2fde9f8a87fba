"""params.yaml: one schema per section, one way to report a bad param (file, line, key; exit 2; no traceback),
stages that see only the params they declare, and thresholds that live in one place."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, manual_line, record_provenance
from vad.core import config
from vad.core.config import ParamsError, load_params
from vad.core.pipeline import PIPELINES

PARAMS_TEXT = (ROOT / "params.yaml").read_text(encoding="utf-8")
ALL_STAGES = [n for names in PIPELINES.values() for n in names]

# One bad value per section: (section, text to replace in params.yaml, replacement, expected key, expected problem)
BAD = [
    ("ingest", "  max_chars: 4000", "  max_chars: -1", "ingest.max_chars", "greater than or equal to 1"),
    ("seeds", "    law: {level: social, value: 法治}", "    law: {level: social, value: 法制}", "seeds.domain_map.law",
     "'法制' is not one of level 'social'"),
    ("select", "  max_chosen_severity: 0", "  max_chosen_severity: 9", "select.max_chosen_severity",
     "less than or equal to 3"),
    ("llm", "  concurrency: 4", "  concurency: 4", "llm.concurency", "unknown key (did you mean concurrency?)"),
    ("evol", "  breadth_share: 0.2", "  breadth_share: lots", "evol.breadth_share", "valid number"),
    ("translate", "  min_len_ratio: 0.25", "  min_len_ratio: 2.0", "translate.min_len_ratio",
     "must be below max_len_ratio"),
    ("merge", "  near_dup_threshold: 0.7", "  near_dup_threshold: 0.999", "merge.near_dup_threshold",
     "cannot be banded"),
    ("ifd", "  max_length: 512", "  max_lenght: 512", "ifd.max_lenght", "unknown key (did you mean max_length?)"),
    ("review", "  require: generated", "  require: everything", "review.require",
     "input should be 'none', 'generated', 'all' or 'sample'"),
    ("export", "  version: 0.1.0", "  version: 0.1.0\n  licence: mit", "export.licence", "unknown key"),
    ("eval", "  method: auto", "  method: logprob", "eval.method", "input should be 'auto', 'loglik' or 'generate'"),
]


def bad_params(tmp_path: Path, old: str, new: str) -> Path:
    assert old in PARAMS_TEXT, old
    p = tmp_path / "params.yaml"
    p.write_text(PARAMS_TEXT.replace(old, new, 1), encoding="utf-8")
    return p


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


def vad(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "vad.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_the_project_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert set(type(p).model_fields) == set(config.SECTIONS) == set(yaml.safe_load(PARAMS_TEXT))


@pytest.mark.parametrize("section, old, new, key, problem", BAD, ids=[b[0] for b in BAD])
def test_a_bad_param_in_every_section_is_one_line_naming_file_line_and_key(tmp_path, section, old, new, key,
                                                                             problem):
    p = bad_params(tmp_path, old, new)
    r = vad("params", "check", "--params", str(p))
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    m = re.fullmatch(rf"vad params: {re.escape(str(p))}:(\d+): {re.escape(key)}: (.*)", lines[0])
    assert m, lines[0]
    assert problem in m.group(2), lines[0]
    assert int(m.group(1)) == line_of(p, new.strip().split("\n")[-1].strip()[:12]), lines[0]


def test_the_good_file_checks_ok():
    r = vad("params", "check")
    assert r.returncode == 0 and "ok" in r.stdout


@pytest.fixture
def project(mini_project):
    """The mini project (conftest) with a bad ifd param."""
    text = (mini_project / "params.yaml").read_text(encoding="utf-8")
    (mini_project / "params.yaml").write_text(text.replace("  max_length: 512", "  max_lenght: 512"),
                                              encoding="utf-8")
    return mini_project


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_every_stage_answers_a_bad_param_the_same_way(project, stage):
    # params are validated before a stage reads anything, so every stage refuses the file, not just ifd_score
    r = subprocess.run([sys.executable, f"stages/{stage}.py"], capture_output=True, text=True, cwd=project)
    assert r.returncode == 2, (r.stdout, r.stderr)
    want = f"stage {stage} failed: params.yaml:{line_of(project / 'params.yaml', 'max_lenght')}: ifd.max_lenght: " \
           "unknown key (did you mean max_length?)"
    assert r.stderr.strip().splitlines()[-1] == want and "Traceback" not in r.stderr, r.stderr


def test_commands_that_read_params_answer_the_same_way(project):
    rows = project / "rows.jsonl"
    rows.write_text(json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False) + "\n", encoding="utf-8")
    for args in (["ifd", str(rows), "-o", "out.jsonl"], ["eval", "--limit", "1"], ["params", "check"]):
        r = vad(*args, cwd=project)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert "ifd.max_lenght: unknown key" in r.stderr or args[0] == "eval", (args, r.stderr)
    # `vad eval` reads only its own sections: a bad one of those is refused the same way
    text = (project / "params.yaml").read_text(encoding="utf-8").replace("max_lenght", "max_length")
    (project / "params.yaml").write_text(text.replace("  limit: 0", "  limit: -3"), encoding="utf-8")
    r = vad("eval", cwd=project)
    assert r.returncode == 2 and re.search(r"params.yaml:\d+: eval.limit: input should be greater than", r.stderr)


def test_a_stage_sees_only_the_params_it_declares():
    view = load_params(ROOT / "params.yaml").view(["ifd.min", "ifd.max", "merge"], "some_stage")
    assert view.ifd.min == 0.94 and view.merge.ngram == 3
    with pytest.raises(config.UndeclaredParam, match="some_stage reads ifd.model"):
        view.ifd.model
    with pytest.raises(config.UndeclaredParam, match="section 'llm'"):
        view.llm
    assert view.model_dump() == {"ifd": {"min": 0.94, "max": 1.0}, "merge": view.merge.model_dump()}
    with pytest.raises(ValueError, match="does not exist"):
        load_params(ROOT / "params.yaml").view(["ifd.mni"], "x")


def test_schema_defaults_are_the_params_yaml_values():
    # a key present in params.yaml has its default written twice (file and schema): they must agree
    raw = yaml.safe_load(PARAMS_TEXT)
    for section, cls in config.SECTIONS.items():
        for key, field in cls.model_fields.items():
            if key in raw[section] and not field.is_required():
                default = field.get_default(call_default_factory=True)
                got = raw[section][key]
                if isinstance(default, tuple):
                    got = tuple(got) if isinstance(got, list) else (got,)
                assert default == got, f"{section}.{key}: schema default {default!r} != params.yaml {got!r}"


# --- each threshold in one place ---------------------------------------------------------------------------
def test_suites_hold_no_copy_of_a_threshold():
    """Every number in a suite is a GX suite parameter (from params, taxonomy or text constants) or a fact of the
    suite itself (0 and 1 as bounds)."""
    allowed = {0, 1, 1.0}
    for f in sorted((ROOT / "expectations").glob("*.json")):
        for exp in json.loads(f.read_text(encoding="utf-8"))["expectations"]:
            for k, v in exp["kwargs"].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "value":
                    assert v in allowed, f"{f.name}: {exp['type']} {k}={v} (make it a $PARAMETER)"
                if isinstance(v, list) and k in ("value_set",) and exp["kwargs"].get("column") != "source":
                    raise AssertionError(f"{f.name}: a literal {k} for {exp['kwargs'].get('column')}")


def test_raising_ingest_max_chars_builds(mini_project):
    """A 5,000-character answer is ledgered `too_long` under the default max_chars; raising the param alone lets
    it through ingest, merge and the final suite (no literal 4000 left anywhere to trip on)."""
    from vad.core.io import read_records
    from vad.core.stage import run_script
    from vad.quality.validate import validate

    long_answer = "诚信是立身之本，" * 625  # 5,000 characters
    lines = [manual_line(), manual_line(instruction="谈谈诚信对个人成长的意义。", output=long_answer)]
    (mini_project / "data/raw/manual/t.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    record_provenance(mini_project / "data/raw/manual")
    for empty in ("build/translate/translated.jsonl", "build/evolve/evol.jsonl"):
        (mini_project / empty).parent.mkdir(parents=True, exist_ok=True)
        (mini_project / empty).write_text("", encoding="utf-8")

    def build():
        run_script(mini_project / "stages/ingest_manual.py")
        run_script(mini_project / "stages/merge.py")
        return read_records(mini_project / "build/merge/merged.jsonl")

    assert [len(r.output) for r in build()] == [len(json.loads(lines[0])["output"])]
    ledger = (mini_project / "build/ledger/ingest_manual.jsonl").read_text(encoding="utf-8")
    assert '"too_long"' in ledger
    p = mini_project / "params.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("  max_chars: 4000", "  max_chars: 6000"), encoding="utf-8")
    merged = build()
    assert sorted(len(r.output) for r in merged)[-1] == 5000
    assert validate(merged, "final", mini_project / "gx_final.json", load_params(p))["success"]
