import json
from pathlib import Path

import pytest

from conftest import ROOT
from vad.core.errors import InputError
from vad.core.ledger import StageRun
from vad.core.config import load_params
from vad.sources.select_pairs import V0_FIELDS, select_pairs

RAW = ROOT / "data/raw/saferlhf/pku_saferlhf_alpaca7b_test_first16.jsonl"
PARAMS = load_params(ROOT / "params.yaml").select


def rows():
    return [json.loads(l) for l in RAW.read_text(encoding="utf-8").splitlines()]


def select(tmp_path, lines, params=PARAMS):
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) if not isinstance(r, str) else r for r in lines) + "\n")
    run = StageRun("select_pairs", root=tmp_path)
    kept = select_pairs(p, "s.jsonl", params, run)
    return kept, {e["record"]["lineage"]["origin"]["line"]: e for e in run.entries}


def test_safer_id_alone_is_not_enough(tmp_path):
    data = rows()
    kept, dropped = select(tmp_path, data)
    # rows where both answers are unsafe still carry a safer_response_id: all of them must be dropped
    both_unsafe = [i + 1 for i, r in enumerate(data) if not r["is_response_0_safe"] and not r["is_response_1_safe"]]
    assert both_unsafe and all(dropped[i]["reason"] == "chosen_unsafe" for i in both_unsafe)
    for rec in kept:
        row = data[rec.lineage.origin["line"] - 1]
        k = rec.meta["chosen_index"]
        assert row[f"is_response_{k}_safe"] and row[f"response_{k}_severity_level"] == 0
        assert row["better_response_id"] == row["safer_response_id"] == k
        assert rec.output == row[f"response_{k}"].strip() and rec.meta["rejected"] == row[f"response_{1-k}"].strip()
    assert len(kept) + len(dropped) == len(data)


def test_sha256_mismatch_is_ledgered(tmp_path):
    row = next(r for r in rows() if r["is_response_1_safe"] and r["safer_response_id"] == 1)
    row = {**row, "response_1": row["response_1"] + " (edited)"}
    kept, dropped = select(tmp_path, [row])
    assert not kept and dropped[1]["reason"] == "sha256_mismatch"


def test_v0_schema_accepted(tmp_path):
    row = next(r for r in rows() if r["is_response_1_safe"] and r["better_response_id"] == r["safer_response_id"] == 1)
    v0 = {k: row[k] for k in V0_FIELDS}
    kept, dropped = select(tmp_path, [v0])
    assert len(kept) == 1 and not dropped


def test_missing_field_fails_with_line(tmp_path):
    bad = {k: v for k, v in rows()[1].items() if k != "safer_response_id"}
    with pytest.raises(InputError, match=r"s.jsonl:2: missing SafeRLHF field"):
        select(tmp_path, [rows()[0], bad])


def test_categorization_from_harm_table(tmp_path):
    kept, _ = select(tmp_path, rows())
    for rec in kept:
        rule = rec.meta["categorization_rule"]
        if rule.startswith("harm:"):
            assert rec.categorization == PARAMS.harm_map[rule[5:]].as_dict()
    assert any(r.meta["categorization_rule"].startswith("harm:") for r in kept)
