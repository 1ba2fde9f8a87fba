"""The build report: build/export/report.html (charts, one self-contained file a browser opens offline),
report.md (the same figures as text, for terminals) and funnel.csv (plot data for `dvc plots`).

Every number comes from the build's files: build/metrics/<stage>.json of each dataset stage and the IFD
histogram of ifd_select (build/ifd/ifd_hist.csv). Charts are matplotlib PNGs embedded as data: URIs; the page
has no script, and a Content-Security-Policy that allows nothing but inline styles and data: images, so opening
it makes no request.

Model evaluation is its own pipeline (`dvc repro evaluation/dvc.yaml`), not part of the dataset build: the export
stage renders only what it declares (so `dvc repro` never needs the evaluation, and the report is a function of
the stage's deps). `vad report` renders the same report for the workspace to build/report.html — outside
build/export/, so it never makes the export stage's outputs stale — and adds the evaluation results when
build/metrics/evaluate.json exists."""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.errors import InputError
from vad.core.pipeline import DATASET, RECORD_STAGES
from vad.core.taxonomy import LEVEL_ZH, LEVELS, PAIRS, SOURCES
from vad.publish import layout
from vad.publish.card import markdown_table, non_commercial

log = logging.getLogger(__name__)

WORKSPACE_REPORT = "build/report.html"      # `vad report`: the workspace's report, evaluation included
EVALUATION = paths.metrics("evaluate")      # written by the evaluation pipeline, read only by `vad report`
FUNNEL_COLUMNS = ("step", "stage", "in", "created", "out", "ledgered", "consumed")
LLM_KEYS = ("calls", "cache_hits", "retries", "failures", "reasks", "prompt_tokens", "completion_tokens",
            "est_cost", "seconds")
# review.json keys shown when present (the review stage writes what its policy needs; any may be missing)
REVIEW_KEYS = ("policy", "decided", "pending", "accepted", "rejected", "edited", "stale", "conflicts",
               "kappa_overall", "decisions", "decisions_applied", "decisions_unmatched")
EVAL_KEYS = ("acc", "acc_star", "consistency", "consistent_acc", "first_position_rate", "debiased_acc", "items",
             "answers", "answered", "refused", "need_check", "error")
EVAL_RATES = ("acc", "acc_star", "consistency", "first_position_rate")
SOURCE_COLOURS = {"manual": "#4C72B0", "evol": "#DD8452", "translated": "#55A868"}
SERIES_COLOURS = ("#4C72B0", "#55A868", "#C44E52", "#8172B3", "#CCB974", "#64B5CD")
DPI = 110
# Fonts with CJK glyphs, tried in order (Debian/Ubuntu fonts-noto-cjk, macOS, Windows, others): value names and
# any Chinese drop reason must not render as boxes.
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "SimHei", "Droid Sans Fallback",
             "Arial Unicode MS")


# --- the build's figures ----------------------------------------------------------------------------------------
def load_metrics(root: Path, stages: tuple[str, ...]) -> dict[str, dict]:
    """Metrics of the given stages that exist, in the given order."""
    out = {}
    for stage in stages:
        p = root / paths.metrics(stage)
        if p.exists():
            out[stage] = json.loads(p.read_text(encoding="utf-8"))
    return out


def read_ifd_hist(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [{"source": r["source"], "bin_lo": float(r["bin_lo"]), "bin_hi": float(r["bin_hi"]),
                 "count": int(r["count"])} for r in csv.DictReader(f)]


@dataclass
class Figures:
    metrics: dict[str, dict]              # stage → its metrics, dataset stages in pipeline order
    ifd_hist: list[dict[str, Any]]        # rows of ifd_select's histogram
    evaluation: dict | None = None        # build/metrics/evaluate.json, only for `vad report`

    def of(self, stage: str) -> dict:
        return self.metrics.get(stage) or {}


def load(root: Path, evaluation: bool = False) -> Figures:
    ev = root / EVALUATION
    return Figures(load_metrics(root, DATASET), read_ifd_hist(root / paths.IFD_HIST),
                   json.loads(ev.read_text(encoding="utf-8")) if evaluation and ev.exists() else None)


def funnel_rows(metrics: dict[str, dict]) -> list[dict[str, Any]]:
    """Records in / created / out / ledgered / consumed per stage, in pipeline order. `step` numbers a stage by
    its place in the pipeline (plots sort by it)."""
    rows = []
    for i, stage in enumerate(DATASET, start=1):
        m = metrics.get(stage)
        if m is not None and stage in RECORD_STAGES:
            rows.append({"step": f"{i:02d} {stage}", "stage": stage,
                         **{k: int(m.get(k) or 0) for k in FUNNEL_COLUMNS[2:]}})
    return rows


def write_funnel_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(FUNNEL_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


# --- charts ---------------------------------------------------------------------------------------------------
def _cjk_font() -> str | None:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in CJK_FONTS if n in names), next((n for n in sorted(names) if "CJK" in n), None))


def _rc() -> dict[str, Any]:
    cjk = _cjk_font()
    if cjk is None:
        log.warning("no CJK font found for the report's charts (install fonts-noto-cjk): Chinese labels will be boxes")
    return {"font.family": "sans-serif", "font.sans-serif": [*([cjk] if cjk else []), "DejaVu Sans"],
            "axes.spines.top": False, "axes.spines.right": False, "font.size": 9}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: same figures, same bytes
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _legend_above(ax, n: int) -> None:
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=n, frameon=False, fontsize=8)


def _zero_axis(ax, totals: list[int], what: str) -> None:
    """An axis whose bars are all zero gets a readable scale and says why it is empty."""
    if not any(totals):
        ax.set_xlim(0, 1)
        ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#555555")


def _whole_numbers(ax, axis: str = "x") -> None:
    """Record counts are whole: no 0.25 ticks on a small build."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def _label_bars(ax, bars, values) -> None:
    ax.bar_label(bars, labels=[f"{v:,}" if v else "" for v in values], padding=2, fontsize=7)


def _grouped_barh(ax, labels: list[str], series: list[tuple[str, list[int]]]) -> None:
    """One row per label, one bar per series in it, each bar labelled with its count."""
    h = 0.8 / len(series)
    for k, (name, values) in enumerate(series):
        bars = ax.barh([i - 0.4 + h * (k + 0.5) for i in range(len(labels))], values, height=h, label=name,
                       color=SERIES_COLOURS[k])
        _label_bars(ax, bars, values)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    _legend_above(ax, len(series))


def _stacked_barh(ax, labels: list[str], series: list[tuple[str, list[int], str]]) -> list[int]:
    """One bar per label, the series stacked in it (name, values, colour), the total written after it."""
    left = [0] * len(labels)
    for name, values, colour in series:
        ax.barh(range(len(labels)), values, left=left, label=name, color=colour)
        left = [a + b for a, b in zip(left, values)]
    for i, total in enumerate(left):
        ax.text(total, i, f" {total:,}" if total else "", va="center", fontsize=7)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    _legend_above(ax, len(series))
    return left


def chart_funnel(rows: list[dict[str, Any]]) -> str:
    fig = _figure(9, 0.42 * len(rows) + 1.0)
    ax = fig.add_subplot()
    series = [("in + created", [r["in"] + r["created"] for r in rows]), ("out", [r["out"] for r in rows]),
              ("ledgered", [r["ledgered"] for r in rows])]
    if any(r["consumed"] for r in rows):
        series.append(("consumed (parents)", [r["consumed"] for r in rows]))
    _grouped_barh(ax, [r["stage"] for r in rows], series)
    ax.set_xlabel("records")
    ax.margins(x=0.1)
    _whole_numbers(ax)
    return _png(fig)


def drop_items(metrics: dict[str, dict]) -> list[tuple[str, str, int]]:
    return [(stage, reason, int(n)) for stage, m in metrics.items()
            for reason, n in (m.get("dropped_by_reason") or {}).items() if n]


def chart_drops(items: list[tuple[str, str, int]]) -> str:
    fig = _figure(9, 0.28 * len(items) + 1.0)
    ax = fig.add_subplot()
    stages = list(dict.fromkeys(s for s, _r, _n in items))
    colours = {s: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(stages)}
    values = [n for _s, _r, n in items]
    bars = ax.barh(range(len(items)), values, color=[colours[s] for s, _r, _n in items])
    _label_bars(ax, bars, values)
    ax.set_yticks(range(len(items)), [f"{s} · {r}" for s, r, _n in items])
    ax.invert_yaxis()
    if max(values) / max(1, min(values)) > 50:  # one reason can outnumber the others 100:1 (evol_over_limit)
        ax.set_xscale("log")
        ax.set_xlabel("records ledgered (log scale)")
    else:
        ax.set_xlabel("records ledgered")
        _whole_numbers(ax)
    ax.margins(x=0.1)
    return _png(fig)


def chart_ifd(rows: list[dict[str, Any]], select: dict) -> str:
    sources = sorted({r["source"] for r in rows}, key=lambda s: (s not in SOURCES, SOURCES.index(s) if s in SOURCES
                                                                 else 0, s))
    lo, hi = select.get("ifd_min"), select.get("ifd_max")
    filled = [r for r in rows if r["count"]] or rows
    x0 = min([r["bin_lo"] for r in filled] + ([lo] if lo is not None else []))
    x1 = max([r["bin_hi"] for r in filled] + ([hi] if hi is not None else []))
    pad = (x1 - x0) * 0.04 or 0.05
    fig = _figure(9, 1.5 * len(sources) + 0.8)
    axes = fig.subplots(len(sources), 1, sharex=True, squeeze=False)[:, 0]
    for ax, src in zip(axes, sources):
        mine = [r for r in rows if r["source"] == src]
        ax.bar([r["bin_lo"] for r in mine], [r["count"] for r in mine], width=[r["bin_hi"] - r["bin_lo"] for r in mine],
               align="edge", color=SOURCE_COLOURS.get(src, "#888888"), edgecolor="white", linewidth=0.5)
        if lo is not None and hi is not None:
            ax.axvspan(lo, hi, color="#2ca02c", alpha=0.12, label=f"kept: ifd.min {lo} ≤ IFD < ifd.max {hi}")
            for x in (lo, hi):
                ax.axvline(x, color="#2ca02c", linestyle="--", linewidth=1)
        p50 = select.get(f"ifd_p50_source_{src}")
        if p50 is not None:
            ax.axvline(p50, color="black", linestyle=":", linewidth=1, label=f"median {p50:.3f}")
        ax.set_title(f"{src} · {sum(r['count'] for r in mine):,} scored", loc="left", fontsize=9)
        ax.set_ylabel("records")
        _whole_numbers(ax, "y")
        ax.legend(loc="upper left", fontsize=7)
    axes[-1].set_xlim(max(0.0, x0 - pad), x1 + pad)
    axes[-1].set_xlabel(f"IFD (bins of {rows[0]['bin_hi'] - rows[0]['bin_lo']:g})")
    return _png(fig)


def ifd_quantiles(select: dict) -> tuple[list[str], list[list[Any]]]:
    """ifd_select's `ifd_<q>_all` / `ifd_<q>_source_<s>` as (quantile names, a row per group)."""
    qs: dict[str, None] = {}
    groups: dict[str, dict[str, float]] = {}
    for k, v in select.items():
        m = re.fullmatch(r"ifd_(p\d+)_(all|source_(.+))", k)
        if m and isinstance(v, (int, float)):
            qs[m[1]] = None
            groups.setdefault(m[3] or "all", {})[m[1]] = v
    return list(qs), [[g, *[vals.get(q) for q in qs]] for g, vals in groups.items()]


def category_mix(export: dict) -> dict[str, dict[str, int]]:
    c = export.get("counts") or {}
    return c.get("value_by_source") or ({"all": c["value"]} if c.get("value") else {})


def chart_categories(mix: dict[str, dict[str, int]]) -> str:
    fig = _figure(9, 4.2)
    ax = fig.add_subplot()
    _stacked_barh(ax, [f"{LEVEL_ZH[p.split('/')[0]]} · {p.split('/')[1]}" for p in PAIRS],
                  [(src, [int(by_value.get(p, 0)) for p in PAIRS], SOURCE_COLOURS.get(src, "#888888"))
                   for src, by_value in mix.items()])
    ax.set_xlabel("exported records")
    ax.margins(x=0.08)
    _whole_numbers(ax)
    return _png(fig)


def llm_stages(metrics: dict[str, dict]) -> dict[str, dict]:
    return {s: m["llm"] for s, m in metrics.items() if isinstance(m.get("llm"), dict)}


def chart_llm(llm: dict[str, dict]) -> str:
    fig = _figure(9, 0.6 * len(llm) + 1.4)
    a1, a2 = fig.subplots(1, 2)
    names = list(llm)
    _grouped_barh(a1, names, [(label, [int(llm[s].get(key) or 0) for s in names]) for label, key in (
        ("calls", "calls"), ("cache hits", "cache_hits"), ("retries", "retries"), ("failures", "failures"))])
    a1.set_xlabel("requests")
    a1.margins(x=0.15)
    _whole_numbers(a1)
    totals = _stacked_barh(a2, names, [(label, [int(llm[s].get(key) or 0) for s in names], SERIES_COLOURS[k + 3])
                                       for k, (label, key) in enumerate((("prompt", "prompt_tokens"),
                                                                         ("completion", "completion_tokens")))])
    a2.set_xlabel("tokens")
    a2.margins(x=0.15)
    _zero_axis(a2, totals, "no tokens: every answer came from the cache")
    return _png(fig)


def chart_review(review: dict) -> str | None:
    parts = [(k, review[k]) for k in ("accepted", "edited", "rejected", "pending")
             if isinstance(review.get(k), (int, float))]
    kappa = {lvl: v for lvl, v in (review.get("kappa_by_level") or {}).items() if isinstance(v, (int, float))}
    if not parts and not kappa:
        return None
    fig = _figure(9, 1.8)
    axes = fig.subplots(1, 2 if (parts and kappa) else 1, squeeze=False)[0]
    if parts:
        ax, left = axes[0], 0
        for k, (label, n) in enumerate(parts):
            ax.barh([0], [n], left=left, color=SERIES_COLOURS[k], label=f"{label} {n:,}")
            left += n
        ax.set_yticks([])
        ax.set_title("review progress (records)", loc="left", fontsize=9)
        ax.legend(fontsize=7, ncols=len(parts), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    if kappa:
        ax = axes[-1]
        bars = ax.bar(list(kappa), list(kappa.values()), color=SERIES_COLOURS[1])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in kappa.values()], fontsize=7)
        ax.set_ylim(min(0.0, *kappa.values()), 1.0)
        ax.set_title("Cohen's κ by level", loc="left", fontsize=9)
    return _png(fig)


def chart_evaluation(ev: dict) -> str:
    groups = {"overall": ev, **{f"level {k}": v for k, v in (ev.get("by_level") or {}).items()},
              **{f"{k}": v for k, v in (ev.get("by_difficulty") or {}).items()}}
    rates = [k for k in EVAL_RATES if any(isinstance(g.get(k), (int, float)) for g in groups.values())]
    fig = _figure(9, 3.2)
    ax = fig.add_subplot()
    w = 0.8 / max(1, len(rates))
    for k, key in enumerate(rates):
        values = [float(g.get(key) or 0) for g in groups.values()]
        bars = ax.bar([i - 0.4 + w * (k + 0.5) for i in range(len(groups))], values, width=w, label=key,
                      color=SERIES_COLOURS[k])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=1, fontsize=6)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylim(0, 1.1)
    _legend_above(ax, len(rates))
    return _png(fig)


# --- the page ---------------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:0 auto;max-width:1080px;padding:1.5rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}.card{border:1px solid #ddd;border-radius:6px;
padding:.5rem .9rem;min-width:8rem}.card b{display:block;font-size:1.3rem}.nc{color:#b00020}
img.chart{max-width:100%;height:auto;display:block;margin:.6rem 0}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{border:1px solid #ddd;padding:.2rem .5rem}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9rem}nav a{margin-right:.8rem}code{background:#f4f4f4;padding:0 .2rem}
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "—" if v is None else str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _attrs(**attrs: str) -> str:
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{_e(v)}"' for k, v in attrs.items() if v)


def _cell(v: Any, key: str = "") -> str:
    numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
    return f"<td{_attrs(class_='n' if numeric else '', data_k=key)}>{_e(_fmt(v))}</td>"


def _table(header: list[str], rows: list[list[Any]], table_id: str = "", keys: list[str] | None = None,
           row_ids: list[str] | None = None) -> str:
    """A table; `keys` name the columns (data-k) and `row_ids` the rows (data-stage), for people's tools and tests."""
    out = [f"<table{_attrs(id=table_id)}><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header)
           + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cells = "".join(_cell(v, keys[j] if keys else "") for j, v in enumerate(row))
        out.append(f"<tr{_attrs(data_stage=row_ids[i] if row_ids else '')}>{cells}</tr>")
    return "".join(out) + "</tbody></table>"


def _img(src: str | None, alt: str) -> str:
    return f'<img class="chart" alt="{_e(alt)}" src="{src}">' if src else ""


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def render_html(f: Figures, evaluation_note: str = "") -> str:
    import matplotlib

    with matplotlib.rc_context(_rc()):
        return _render_html(f, evaluation_note)


def _render_html(f: Figures, evaluation_note: str) -> str:
    export = f.of("export")
    name = f"{export.get('name', 'VAD')} {export.get('version', '')}".strip()
    licence = export.get("licence", "unknown")
    llm = llm_stages(f.metrics)
    sections = []

    rows = funnel_rows(f.metrics)
    body = _note("Per stage: records in (+ created) = out + ledgered (+ consumed as Evol-Instruct parents); "
                 "the books are checked by every stage.")
    if rows:
        body += _img(chart_funnel(rows), "records in, out and ledgered per stage")
        cols = [*FUNNEL_COLUMNS[1:], "seconds"]
        body += _table(cols, [[*(r[k] for k in FUNNEL_COLUMNS[1:]), f.of(r["stage"]).get("seconds")] for r in rows],
                       table_id="funnel", keys=cols, row_ids=[r["stage"] for r in rows])
    else:
        body += _note("No stage metrics found: build the dataset first (<code>dvc repro</code>).")
    sections.append(_section("funnel", "Funnel", body))

    items = drop_items(f.metrics)
    body = (_img(chart_drops(items), "records ledgered per stage and reason")
            + _table(["stage", "reason", "records"], [list(i) for i in items], table_id="drops")
            + _note("Any record: <code>vad why ID</code> (stage, reason, detail, the record it duplicates).")
            if items else _note("No record was ledgered."))
    sections.append(_section("drops", "Drop reasons", body))

    select = f.of("ifd_select")
    if f.ifd_hist:
        qs, q = ifd_quantiles(select)
        body = (_img(chart_ifd(f.ifd_hist, select), "IFD histogram per source with the kept band")
                + _note(f"Band kept by ifd_select: ifd.min {_e(select.get('ifd_min'))} ≤ IFD &lt; ifd.max "
                        f"{_e(select.get('ifd_max'))}; in band {_e(_fmt(select.get('in_band')))}, kept "
                        f"{_e(_fmt(select.get('kept')))}. Histogram of every scored record entering ifd_select.")
                + _table(["IFD quantiles", *qs], q, table_id="ifd_quantiles"))
    else:
        body = _note("No IFD histogram in this build (ifd_select has not run).")
    sections.append(_section("ifd", "IFD per source", body))

    mix = category_mix(export)
    if mix:
        head = ["level", "value", *mix, "total"]
        table = [[f"{lvl} {LEVEL_ZH[lvl]}", v, *[mix[s].get(f"{lvl}/{v}", 0) for s in mix],
                  sum(mix[s].get(f"{lvl}/{v}", 0) for s in mix)] for lvl, vals in LEVELS.items() for v in vals]
        body = _img(chart_categories(mix), "exported records per core value and source") + _table(head, table,
                                                                                                   "categories")
    else:
        body = _note("No exported records.")
    sections.append(_section("categories", "Category mix (12 values × source)", body))

    if llm:
        table = [[s, *[m.get(k) for k in LLM_KEYS], (f.of(s).get("llm_client") or {}).get("backend"),
                  (f.of(s).get("llm_client") or {}).get("model")] for s, m in llm.items()]
        body = (_img(chart_llm(llm), "LLM requests and tokens per stage")
                + _table(["stage", *LLM_KEYS, "backend", "model"], table, "llm")
                + _note("est_cost uses llm.price_per_1k_input / _output (the currency of your provider); "
                        "cache hits cost nothing."))
    else:
        body = _note("No stage of this build called an LLM.")
    sections.append(_section("llm", "LLM calls, cache, tokens, cost", body))

    sections.append(_section("machine", "Categorizer and judge", machine_section(f)))

    review = f.of("review")
    if review:
        shown = [[k, review[k]] for k in REVIEW_KEYS if k in review]
        shown += [[f"kappa {lvl}", v] for lvl, v in (review.get("kappa_by_level") or {}).items()]
        body = _img(chart_review(review), "review progress and agreement") + _table(["review", "value"], shown,
                                                                                    "review")
        if not any(k in review for k in ("decided", "pending", "kappa_overall")):
            body += _note("This build's review metrics have no progress or agreement figures.")
    else:
        body = _note("No review metrics in this build.")
    sections.append(_section("review", "Review", body))

    ev = f.evaluation
    if ev:
        about = ", ".join(f"{k} {_e(ev[k])}" for k in ("backend", "model", "method") if ev.get(k))
        body = (_note(f"From <code>{_e(EVALUATION)}</code> (the evaluation pipeline): {about}.")
                + _img(chart_evaluation(ev), "evaluation rates overall, per level and per difficulty")
                + _table(["metric", "value"], [[k, ev[k]] for k in EVAL_KEYS if k in ev], "evaluation"))
    else:
        body = _note(evaluation_note or "No evaluation results (<code>dvc repro evaluation/dvc.yaml</code>).")
    sections.append(_section("evaluation", "Evaluation", body))

    counts = export.get("counts") or {}
    cards = [("exported records", _fmt(export.get("exported", counts.get("total", 0)))),
             ("preference pairs", _fmt(export.get("dpo_pairs", 0))),
             ("ledgered (all stages)", _fmt(sum(r["ledgered"] for r in rows))),
             ("LLM calls (+ cache hits)", f"{_fmt(sum(int(m.get('calls') or 0) for m in llm.values()))} (+"
                                          f"{_fmt(sum(int(m.get('cache_hits') or 0) for m in llm.values()))})")]
    nc = non_commercial(str(licence))
    header = (f"<h1>{_e(name)} build report</h1>"
              f'<p>Licence of this build: <b class="{"nc" if nc else ""}">{_e(licence)}</b>'
              + (" (non-commercial: see the dataset card)" if nc else "") + ". Sources: "
              + _e(", ".join(f"{k} {v:,}" for k, v in (counts.get("source") or {}).items()) or "none") + "</p>"
              + '<div class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards)
              + "</div><nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in (
                  ("funnel", "funnel"), ("drops", "drops"), ("ifd", "IFD"), ("categories", "categories"),
                  ("llm", "LLM"), ("machine", "categorizer"), ("review", "review"),
                  ("evaluation", "evaluation"))) + "</nav>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(name)} build report</title><style>{CSS}</style></head><body>"
            + header + "".join(sections)
            + _note("Every figure comes from the build's metrics files (build/metrics/*.json) and ifd_select's "
                    "histogram; look any record up with <code>vad trace ROW_OR_ID</code>.")
            + "</body></html>\n")


def categorizer_rows(train: dict) -> list[list[Any]]:
    """Cross-validated accuracy of the categorizer beside its baselines and chance (categorize_train metrics)."""
    cv = train.get("cross_validation") or {}
    b, ch = cv.get("baselines") or {}, cv.get("chance") or {}
    rows = [["categorizer (cross-validated)", (cv.get("model") or {}).get("n"), (cv.get("model") or {}).get("value"),
             (cv.get("model") or {}).get("level")]]
    rows += [[f"baseline: {k.replace('_', ' ')}", (b.get(k) or {}).get("n"), (b.get(k) or {}).get("value"),
              (b.get(k) or {}).get("level")] for k in ("nearest_centroid", "domain_table")]
    rows.append(["chance (uniform)", None, ch.get("value_uniform"), ch.get("level_uniform")])
    return rows


def machine_section(f: Figures) -> str:
    train, judged, review = f.of("categorize_train"), f.of("judge"), f.of("review")
    if not train and not judged:
        return _note("This build has no categorizer or judge metrics.")
    body = ""
    if train:
        body += (_note(f"The offline categorizer ({_e(train.get('model'))}), trained on {_e(_fmt(train.get('examples')))} "
                       "examples (hand-written records and the categories reviewers settled). The domain table is "
                       "measured on reviewed machine-made records only.")
                 + _table(["categorizer", "n", "value accuracy", "level accuracy"], categorizer_rows(train),
                          "categorizer"))
    if judged:
        rows = []
        for src, s in (judged.get("by_source") or {}).items():
            cb = s.get("category_by") or {}
            j = s.get("judge") or {}
            rows.append([src, s.get("records"), cb.get("prediction"), cb.get("table"), cb.get("review"),
                         s.get("changed_from_table"), s.get("flagged"), j.get("fail"), j.get("error")])
        body += (_note(f"Judge stage: categories by {_e(judged.get('categorized_by'))}, min_confidence "
                       f"{_e(judged.get('min_confidence'))}, LLM judge {'on' if judged.get('judge_enabled') else 'off'}.")
                 + _table(["source", "records", "by prediction", "table (low confidence)", "by review",
                           "changed from table", "flagged", "judge fail", "judge error"], rows, "judge"))
    machine = (review.get("machine") or {}).get("by_source") or {}
    if machine:
        rows = []
        for src, m in machine.items():
            jq, fq = m.get("judge_vs_rejected") or {}, m.get("flags_vs_rejected") or {}
            rows.append([src, m.get("decided"), m.get("category_kept_rate"),
                         ", ".join(f"{k} {v}" for k, v in (m.get("moved_to") or {}).items()) or "—",
                         jq.get("precision"), jq.get("recall"), fq.get("precision"), fq.get("recall")])
        body += (_note("Against the reviewers' decisions: how often they kept the predicted category, where they "
                       "moved records, and how well a failing judge verdict / any flag foresaw a rejection.")
                 + _table(["source", "decided", "kept predicted category", "moved to", "judge precision",
                           "judge recall", "flags precision", "flags recall"], rows, "machine"))
    else:
        body += _note("No reviewer has decided a machine-made record yet: no agreement figures.")
    return body


def render_markdown(f: Figures) -> str:
    table = []
    for r in funnel_rows(f.metrics):
        m = f.of(r["stage"])
        reasons = ", ".join(f"{k} {v}" for k, v in (m.get("dropped_by_reason") or {}).items()) or "—"
        table.append([*(r[k] for k in FUNNEL_COLUMNS[1:]), reasons, m.get("seconds", "")])
    export = f.of("export")
    c = export.get("counts") or {}
    return "\n".join([
        "# VAD build report", "",
        "Per stage: records in (+ created) = out + ledgered (+ consumed as Evol-Instruct parents). Charts: "
        f"`{layout.REPORT_HTML}`.", "",
        markdown_table([*FUNNEL_COLUMNS[1:], "ledgered by reason", "seconds"], table), "",
        f"Exported: {c.get('total', 0)} records — " + ", ".join(f"{k} {v}" for k, v in (c.get("source") or {}).items())
        + f"; {export.get('dpo_pairs', 0)} preference pairs; licence {export.get('licence', 'unknown')}.", "",
        "Look up any record: `vad trace ROW_OR_ID`; any dropped one: `vad why ID`.", ""])


# --- writing ------------------------------------------------------------------------------------------------------
def write_build_reports(root: Path, out_dir: Path) -> dict[str, Path]:
    """The export stage's reports (after its own metrics are written): funnel.csv, report.md, report.html."""
    f = load(root)
    out = {name: out_dir / name for name in (layout.FUNNEL, layout.REPORT_MD, layout.REPORT_HTML)}
    write_funnel_csv(out[layout.FUNNEL], funnel_rows(f.metrics))
    out[layout.REPORT_MD].write_text(render_markdown(f), encoding="utf-8")
    note = ("Model evaluation is a separate pipeline and not part of the dataset build: run "
            "<code>dvc repro evaluation/dvc.yaml</code>, then <code>vad report</code> renders this report with its "
            f"results to <code>{WORKSPACE_REPORT}</code>.")
    out[layout.REPORT_HTML].write_text(render_html(f, note), encoding="utf-8")
    return out


def write_workspace_report(root: Path, out: Path | None = None) -> Path:
    """`vad report`: the report of the build in `root`, with the evaluation results when they exist."""
    f = load(root, evaluation=True)
    if "export" not in f.metrics:
        raise InputError(str(root / paths.metrics("export")), "not found: build the dataset first (`dvc repro`)")
    out = out or root / WORKSPACE_REPORT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(f, f"No evaluation results: <code>{EVALUATION}</code> does not exist (run "
                                  "<code>dvc repro evaluation/dvc.yaml</code>)."), encoding="utf-8")
    return out


def open_in_browser(path: Path) -> str:
    """Open the report where a browser can show it; returns what happened, for the user."""
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here: copy the file to a machine with a browser (it is self-contained) and open it there"
    return "opened in a browser" if webbrowser.open(path.resolve().as_uri()) else "no browser found: open the file"
