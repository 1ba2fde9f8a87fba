"""The build report: funnel plot data (and `dvc plots`), report.md and report.html from the build's metrics files;
the HTML in headless Chromium (no request leaves the page, every chart decodes, the funnel shown equals the
metrics files, a screenshot kept); `vad report` adds the evaluation only when it exists and never touches the
export stage's outputs, which do not depend on the evaluation.

The build is the session's `nc_build` (tests/conftest.py, tests/support/export_build.py), shared with
tests/test_export.py."""
import base64
import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ARTIFACTS, ROOT
from support.export_build import EXPORT, metrics
from vad.core import dvc_yaml, paths
from vad.core.pipeline import DATASET
from vad.publish import layout, report

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EVALUATE = {"backend": "local", "model": "test-model", "method": "loglik", "acc": 0.625, "acc_star": 0.7,
            "consistency": 0.4, "first_position_rate": 0.55, "items": 8, "answers": 16,
            "by_level": {"nation": {"acc": 0.5, "acc_star": 0.5, "consistency": 0.0, "first_position_rate": 0.5}}}


def present_stages(project: Path) -> list[str]:
    return [s for s in DATASET if (project / paths.metrics(s)).exists()]


def test_funnel_csv_and_markdown_equal_the_metrics(nc_build):
    with (nc_build / EXPORT / layout.FUNNEL).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["stage"] for r in rows] == present_stages(nc_build)  # pipeline order, every stage that ran
    assert {"ingest_manual", "translate", "merge", "ifd_select", "review", "export"} <= {r["stage"] for r in rows}
    md = (nc_build / EXPORT / layout.REPORT_MD).read_text(encoding="utf-8")
    for r in rows:
        m = metrics(nc_build, r["stage"])
        assert {k: int(r[k]) for k in report.FUNNEL_COLUMNS[2:]} == {k: m[k] for k in report.FUNNEL_COLUMNS[2:]}
        assert r["step"] == f"{DATASET.index(r['stage']) + 1:02d} {r['stage']}"
        assert f"| {r['stage']} | {m['in']} | {m['created']} | {m['out']} | {m['ledgered']} |" in md


def test_dvc_plots_render_the_funnel_and_the_ifd_histogram(nc_build, tmp_path):
    proj = tmp_path / "p"
    shutil.copytree(nc_build, proj)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path)}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=proj, env=env, check=True)
    out = subprocess.run(["dvc", "plots", "show", "--json"], cwd=proj, env=env, check=True, capture_output=True,
                         text=True).stdout
    data = json.loads(out)["data"]
    funnel = data[f"{EXPORT}/{layout.FUNNEL}"][0]["content"]
    assert funnel["encoding"]["x"]["field"] == "out" and funnel["encoding"]["y"]["field"] == "step"
    assert funnel["encoding"]["yOffset"]["field"] == "rev"  # revisions side by side in `dvc plots diff`
    assert {v["stage"]: int(v["out"]) for v in funnel["data"]["values"]} == \
        {s: metrics(nc_build, s)["out"] for s in present_stages(nc_build)}
    hist = data[paths.IFD_HIST][0]["content"]
    assert sum(int(v["count"]) for v in hist["data"]["values"]) == metrics(nc_build, "ifd_select")["in"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/test installs it)")
def test_report_html_in_headless_chromium(nc_build):
    from playwright.sync_api import sync_playwright

    page_url = (nc_build / EXPORT / layout.REPORT_HTML).resolve().as_uri()
    requested, left = [], []

    def route(r):
        if r.request.url.startswith(("http://", "https://")):
            left.append(r.request.url)
            r.abort()
        else:
            r.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda req: requested.append(req.url))
            page.route("**/*", route)
            page.goto(page_url, wait_until="load")
            images = page.evaluate("""Promise.all([...document.images].map(i => i.decode().then(
                () => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, src: i.src}),
                () => ({alt: i.alt, w: 0, h: 0, src: i.src}))))""")
            funnel = page.evaluate("""[...document.querySelectorAll('#funnel tbody tr')].map(tr => ({
                stage: tr.dataset.stage,
                ...Object.fromEntries([...tr.querySelectorAll('td[data-k]')].map(td => [td.dataset.k, td.innerText]))
            }))""")
            review = page.evaluate("Object.fromEntries([...document.querySelectorAll('#review tbody tr')]"
                                   ".map(tr => [...tr.cells].map(td => td.innerText)))")
            csp = page.evaluate("document.querySelector('meta[http-equiv=Content-Security-Policy]').content")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert left == [] and requested == [page_url]  # the page itself, nothing else
    assert csp.startswith("default-src 'none'")
    # funnel, drops, IFD, categories, LLM, review: every chart decodes
    assert len(images) == 6 and all(i["w"] > 0 and i["h"] > 0 for i in images), images
    for i in images:  # and every byte of it: a truncated PNG still has a size
        prefix, data = i["src"].split(",", 1)
        assert prefix == "data:image/png;base64"
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.load()
            assert im.size == (i["w"], i["h"])
    assert [row["stage"] for row in funnel] == present_stages(nc_build)
    for row in funnel:
        m = metrics(nc_build, row["stage"])
        for k in ("in", "created", "out", "ledgered", "consumed"):
            assert int(row[k].replace(",", "")) == m[k], (row, k)
    assert review["kappa_overall"] == "0.71" and review["pending"] == "2" and review["kappa person"] == "—"
    assert shot.stat().st_size > 50_000  # kept in build/test-artifacts/ (docs/img/report.png is a copy)
    print(f"screenshot: {shot}")


def vad_report(root: Path) -> Path:
    r = subprocess.run([sys.executable, "-m", "vad.cli", "report", "--root", str(root)], capture_output=True,
                       text=True, check=True)
    return Path(r.stdout.strip())


def test_vad_report_adds_the_evaluation_only_when_it_exists(nc_build, tmp_path):
    proj = tmp_path / "p"
    shutil.copytree(nc_build, proj)
    stage_report = proj / EXPORT / layout.REPORT_HTML
    before = hashlib.sha256(stage_report.read_bytes()).hexdigest()
    assert '<table id="evaluation">' not in stage_report.read_text(encoding="utf-8")

    out = vad_report(proj)
    assert out == proj / report.WORKSPACE_REPORT
    text = out.read_text(encoding="utf-8")
    assert 'id="funnel"' in text and '<table id="evaluation">' not in text and "does not exist" in text

    (proj / report.EVALUATION).write_text(json.dumps(EVALUATE), encoding="utf-8")
    text = vad_report(proj).read_text(encoding="utf-8")
    assert '<table id="evaluation">' in text and "<td>acc_star</td><td class=\"n\">0.7</td>" in text
    assert "test-model" in text
    assert hashlib.sha256(stage_report.read_bytes()).hexdigest() == before  # the stage's output is untouched


def test_the_dataset_build_does_not_depend_on_the_evaluation():
    assert report.EVALUATION not in dvc_yaml.load_stage("export", ROOT).reads
    assert report.EVALUATION not in dvc_yaml.declared_deps(ROOT)["export"]


def test_vad_report_without_a_build_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vad.cli", "report", "--root", str(tmp_path)], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"vad report: {tmp_path / paths.metrics('export')}: not found: build the dataset " \
                               "first (`dvc repro`)"


@pytest.mark.parametrize("review, shown, absent", [
    ({}, "No review metrics in this build.", 'id="review"><thead>'),
    ({"decisions": 3}, "no progress or agreement figures", "<img"),  # an older review stage: a table, no chart
    ({"decided": 3, "pending": 1}, "<td>decided</td>", "no progress or agreement figures"),
])
def test_review_section_shows_what_is_present(review, shown, absent):
    f = report.Figures(metrics={"review": review} if review else {}, ifd_hist=[])
    section = report.render_html(f).split('<section id="review">')[1].split("</section>")[0]
    assert shown in section and absent not in section


def test_open_in_browser_opens_the_file_or_says_why_not(tmp_path, monkeypatch):
    import webbrowser

    page = tmp_path / "report.html"
    page.write_text("<html></html>", encoding="utf-8")
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda uri: opened.append(uri) or True)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert report.open_in_browser(page).startswith("no display here") and opened == []
    monkeypatch.setenv("DISPLAY", ":0")
    assert report.open_in_browser(page) == "opened in a browser" and opened == [page.resolve().as_uri()]
