"""Great-expectations validation of a corpus against a suite in `expectations/<name>.json`.

Suites are plain JSON read into an ephemeral GX context (no gx/ project folder). A suite `extends` the shared
`base` suite, and its numbers and sets are GX suite parameters (`{"$PARAMETER": "ingest_max_chars"}`) filled in
from params.yaml, the taxonomy and the text constants at run time (expectations/README.md), so no threshold is
copied into a suite. Records are flattened to one row each, with derived columns the suites check. A failing
suite raises, naming the expectation and the failing record ids; the full result is written next to the
stage's outputs."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from vad.core import taxonomy
from vad.core.errors import VadError
from vad.core.io import write_json
from vad.core.record import Record
from vad.core.suites import load_suite
from vad.core.text import MIN_HAN_RATIO, han_ratio

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
log = logging.getLogger(__name__)

COLUMNS = ["id", "instruction", "input", "output", "source", "level", "value", "level_value",
           "instruction_han_ratio", "output_han_ratio", "instruction_chars", "input_chars", "output_chars"]
CONSTANTS: dict[str, Any] = {
    "taxonomy_levels": list(taxonomy.LEVELS),
    "taxonomy_values": [v for vals in taxonomy.LEVELS.values() for v in vals],
    "taxonomy_level_values": list(taxonomy.PAIRS),
    "taxonomy_sources": list(taxonomy.SOURCES),
    "min_han_ratio": MIN_HAN_RATIO,
    # hand-written records are checked as parsed, before merge ledgers the few English-only ones
    "raw_manual_chinese_share": 0.9,
}


class ValidationError(VadError):
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
    return pd.DataFrame(rows, columns=COLUMNS)


def _parameter_names(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        if set(obj) == {"$PARAMETER"}:
            return {obj["$PARAMETER"]}
        return {n for v in obj.values() for n in _parameter_names(v)}
    if isinstance(obj, list):
        return {n for v in obj for n in _parameter_names(v)}
    return set()


def suite_parameters(suite: dict, params: Any) -> dict[str, Any]:
    """Values of the suite's parameters: constants, or `<section>_<key>` read from the (stage's) params."""
    out: dict[str, Any] = {}
    for name in sorted(_parameter_names(suite["expectations"])):
        if name == "suite_sources":  # the sources the suite names, else all
            out[name] = list(suite.get("sources") or taxonomy.SOURCES)
            continue
        if name in CONSTANTS:
            out[name] = CONSTANTS[name]
            continue
        section, _, key = name.partition("_")
        if params is None or not key:
            raise ValidationError(f"suite {suite['name']!r}: parameter {name!r} is neither a constant "
                                  f"({', '.join(sorted(CONSTANTS))}) nor a params.yaml <section>_<key>")
        out[name] = getattr(getattr(params, section), key)
    return out


def validate(records: list[Record], suite_name: str, result_path: str | Path, params: Any = None,
             unless_empty: bool = False) -> dict:
    """Validate; raise ValidationError naming failing expectations and ids. `params`: the stage's params (for
    `<section>_<key>` suite parameters). `unless_empty`: an empty corpus (every record ledgered, a legitimate
    outcome of a small LLM run) is reported, not validated — the row-count check would fail the build."""
    spec = load_suite(suite_name)  # read (and so checked) even when the corpus turns out empty
    values = suite_parameters(spec, params)
    spec = {k: v for k, v in spec.items() if k != "sources"}  # ours, not a GX suite field
    if unless_empty and not records:
        log.warning("no record survived: %s is empty (reasons are in the stage's ledger)", suite_name)
        res = {"suite": suite_name, "skipped": "empty output"}
        write_json(result_path, res)  # the result file exists either way
        return res
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic; older/newer GX may not have this knob
        pass
    suite = gx.ExpectationSuite(**spec)
    batch_def = (context.data_sources.add_pandas("vad").add_dataframe_asset(suite_name)
                 .add_batch_definition_whole_dataframe("all"))
    batch = batch_def.get_batch(batch_parameters={"dataframe": to_frame(records)})
    result = batch.validate(
        suite, expectation_parameters=values,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]},
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


def check(ctx: Any, records: list[Record], suite: str, unless_empty: bool = False) -> dict:
    """Validate a stage's corpus against one of the suites its STAGE declares; the result goes to the stage's
    metrics (and its file next to the stage's outputs)."""
    if suite not in ctx.stage.suites:
        raise RuntimeError(f"stage {ctx.stage.name} validates suite {suite} without declaring it")
    res = validate(records, suite, ctx.root / ctx.stage.gx_result(suite), ctx.params, unless_empty=unless_empty)
    ctx.run.metrics["validation"] = res
    return res
