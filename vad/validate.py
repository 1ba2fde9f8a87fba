"""Great-expectations validation of a corpus against a suite in `expectations/<name>.json`.

The suites are plain JSON (gx.ExpectationSuite) and run in an ephemeral context: no gx/ project folder.
Records are flattened to one row each, with derived columns the suites check (level_value pairing, Han
share of each field as the Chinese-language check, character counts). A failing suite raises, naming the
expectation and the failing record ids; the full result is written next to the stage's outputs."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from vad.io import write_json
from vad.lang import han_ratio
from vad.paths import project_root
from vad.record import Record

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
log = logging.getLogger(__name__)


class ValidationError(RuntimeError):
    pass


def to_frame(records: list[Record]):
    import pandas as pd

    rows = []
    for r in records:
        cat = r.categorization if isinstance(r.categorization, dict) else {}
        rows.append({
            "id": r.id, "instruction": r.instruction, "input": r.input, "output": r.output, "source": r.source,
            "level": cat.get("level"), "value": cat.get("value"),
            "level_value": f"{cat.get('level')}/{cat.get('value')}",
            "instruction_han_ratio": han_ratio(r.instruction), "output_han_ratio": han_ratio(r.output),
            "instruction_chars": len(r.instruction), "input_chars": len(r.input), "output_chars": len(r.output),
        })
    return pd.DataFrame(rows, columns=[
        "id", "instruction", "input", "output", "source", "level", "value", "level_value",
        "instruction_han_ratio", "output_han_ratio", "instruction_chars", "input_chars", "output_chars"])


def load_suite(name: str) -> dict:
    path = project_root() / "expectations" / f"{name}.json"
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def validate(records: list[Record], suite_name: str, result_path: str | Path) -> dict:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic; older/newer GX may not have this knob
        pass
    suite = gx.ExpectationSuite(**load_suite(suite_name))
    batch_def = (context.data_sources.add_pandas("vad").add_dataframe_asset(suite_name)
                 .add_batch_definition_whole_dataframe("all"))
    batch = batch_def.get_batch(batch_parameters={"dataframe": to_frame(records)})
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]}
    ).to_json_dict()
    write_json(result_path, result)
    failures = []
    for r in result["results"]:
        if r["success"]:
            continue
        cfg = r["expectation_config"]
        kw = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id",)}
        ids = [row.get("id") for row in (r["result"].get("unexpected_index_list") or [])]
        shown = ", ".join(str(i) for i in ids[:10]) + (f" … ({len(ids)} in all)" if len(ids) > 10 else "")
        failures.append(f"  - {cfg['type']} {json.dumps(kw, ensure_ascii=False)}"
                        + (f": failing ids {shown}" if ids else f": observed {r['result'].get('observed_value')}"))
    if failures:
        raise ValidationError(
            f"great-expectations suite {suite_name!r} failed ({len(failures)} expectation(s); "
            f"full result in {result_path}):\n" + "\n".join(failures))
    return {"suite": suite_name, "expectations": len(result["results"]), "success": True}


def validate_unless_empty(records: list[Record], suite_name: str, result_path: str | Path) -> dict:
    """For LLM stages: an empty output (every record ledgered, e.g. a tiny run with the small local model) is
    reported, not validated — the suite's row-count check would fail the build for a legitimate outcome."""
    if not records:
        log.warning("no record survived: %s is empty (reasons are in the stage's ledger)", suite_name)
        res = {"suite": suite_name, "skipped": "empty output"}
        write_json(result_path, res)  # the result file exists either way
        return res
    return validate(records, suite_name, result_path)
