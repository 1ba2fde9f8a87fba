"""The review app in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against
a real `vad review serve` process.

Review a few records with the keyboard — accept, reject with a reason, edit with the character diff, undo, keys
ignored while an IME composes — then `dvc repro` the review and export stages and check the export holds exactly
what was decided; an XSS record renders as text and runs no script; a screenshot of the review page is kept
(build/test-artifacts/review.png; docs/img/review.png is a copy) with CJK glyphs, not boxes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ARTIFACTS, ROOT
from support.review import XSS_INSTRUCTION, XSS_OUTPUT, make_project, records, write_jsonl
from support.review_server import Server
from vad.core import paths
from vad.core.pipeline import DATASET

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _has_cjk_font() -> bool:
    try:
        out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(out.strip())


needs_browser = pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and _has_cjk_font()),
                                   reason="needs /usr/bin/chromium and a CJK font (.ci/browser.sh installs them)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def served(tmp_path):
    root = make_project(tmp_path / "proj")
    srv = Server(root, "wang").wait()
    yield root, srv
    srv.stop()


def new_page(browser, srv: Server):
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"a dialog opened: {d.message}")))
    return page


def log_lines(root: Path) -> list[dict]:
    return [json.loads(l) for l in (root / "review/decisions.jsonl").read_text(encoding="utf-8").splitlines() if l]


def go_and_wait(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#record")


def press_and_land(page, key: str, rid: str) -> None:
    page.keyboard.press(key)
    page.wait_for_url(f"**/r/{rid}?**")
    page.wait_for_selector("#record")


# --- the keyboard, then the build ---------------------------------------------------------------------------------
def _dvc_project(root: Path) -> None:
    """Make the review project a DVC project that `dvc repro -s review / export` can run in: the code and the
    inputs of the export stage (empty upstream ledgers, their metrics, the raw folders' provenance)."""
    shutil.copytree(ROOT / "vad", root / "vad", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    for stage in DATASET[:DATASET.index("review")]:
        lp, mp = root / f"build/ledger/{stage}.jsonl", root / f"build/metrics/{stage}.json"
        if not lp.exists():
            write_jsonl(lp, [])
        mp.parent.mkdir(parents=True, exist_ok=True)
        mp.write_text(json.dumps({"in": 0, "created": 0, "out": 0, "ledgered": 0, "consumed": 0}), encoding="utf-8")
    hist = root / paths.IFD_HIST  # ifd_select's plot data, which the export's report draws
    if not hist.exists():
        hist.parent.mkdir(parents=True, exist_ok=True)
        hist.write_text("source,bin_lo,bin_hi,count\n", encoding="utf-8")
    for raw in ("manual", "cvalues", "saferlhf"):
        src = ROOT / f"data/raw/{raw}/PROVENANCE.json"
        if not src.exists():
            pytest.skip("data/ not pulled (dvc pull data.dvc)")
        (root / f"data/raw/{raw}").mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / f"data/raw/{raw}/PROVENANCE.json")


def dvc(root: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(root), "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"dvc {' '.join(args)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@needs_browser
@pytest.mark.slow
def test_keyboard_review_then_dvc_repro_exports_what_was_decided(browser, served):
    root, srv = served
    recs, _ = records()
    page = new_page(browser, srv)
    page.goto(srv.url + "/")
    page.wait_for_url(f"**/r/{recs[0].id}?**")
    press_and_land(page, "a", recs[1].id)                       # accept record 0

    page.keyboard.press("r")                                    # reject record 1: reason 6, Enter
    page.wait_for_selector("#reject-panel:not([hidden])")
    page.keyboard.press("6")
    assert page.locator("#reasons input").nth(5).is_checked()
    press_and_land(page, "Enter", recs[2].id)

    page.keyboard.press("e")                                    # edit record 2: diff first, then save
    page.wait_for_selector("#edit-panel:not([hidden])")
    new_output = recs[2].output.replace("耐心、讲方法", "耐心、讲方法、以身作则")
    page.fill("#e-output", new_output)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#diff:not([hidden]) ins")
    assert page.locator("#diff-body ins").all_inner_texts() == ["、以身作则"]
    assert page.locator("#diff-body del").count() == 0
    press_and_land(page, "Control+Enter", recs[3].id)

    # keys typed while an input method composes belong to it: nothing happens
    for init in ("{key: 'a', isComposing: true, bubbles: true}", "{key: 'Process', keyCode: 229, bubbles: true}",
                 "{key: 'a', keyCode: 229, bubbles: true}"):
        page.evaluate(f"document.body.dispatchEvent(new KeyboardEvent('keydown', {init}))")
    page.wait_for_timeout(500)
    assert f"/r/{recs[3].id}" in page.url and len(log_lines(root)) == 3

    press_and_land(page, "a", recs[4].id)                       # accept record 3 ...
    go_and_wait(page, f"{srv.url}/r/{recs[3].id}?state=decided")
    page.keyboard.press("u")                                    # ... and undo it
    page.wait_for_selector("#status.s-pending")

    go_and_wait(page, f"{srv.url}/r/{recs[5].id}?state=pending&source=evol")
    page.keyboard.press("r")                                    # the stereotype evolution: rejected
    page.wait_for_selector("#reject-panel:not([hidden])")
    page.keyboard.press("1")
    press_and_land(page, "Enter", recs[6].id)
    page.keyboard.press("a")                                    # the other evolution: accepted
    page.wait_for_url("**/queue?**")

    kinds = [(d["id"], d["decision"], d.get("reason")) for d in log_lines(root)]
    assert kinds == [(recs[0].id, "accept", ""), (recs[1].id, "reject", "off_topic"), (recs[2].id, "edit", ""),
                     (recs[3].id, "accept", ""), (recs[3].id, "undo", ""), (recs[5].id, "reject", "stereotype"),
                     (recs[6].id, "accept", "")]
    page.close()

    _dvc_project(root)
    dvc(root, "init", "--no-scm", "-q")
    dvc(root, "repro", "-s", "review")
    dvc(root, "repro", "-s", "export")
    exported = json.loads((root / "build/export/vad.json").read_text(encoding="utf-8"))
    got = sorted((r["instruction"], r["output"]) for r in exported)
    want = sorted([(recs[0].instruction, recs[0].output), (recs[2].instruction, new_output),
                   (recs[3].instruction, recs[3].output), (XSS_INSTRUCTION, XSS_OUTPUT),
                   (recs[6].instruction, recs[6].output)])
    assert got == want
    m = json.loads((root / "build/metrics/review.json").read_text())
    assert (m["accepted"], m["rejected"], m["edited"], m["pending"]) == (2, 2, 1, 1)
    env = {**os.environ, "PYTHONPATH": str(root)}
    why = subprocess.run([sys.executable, "-m", "vad.cli", "why", recs[7].id], cwd=root, env=env,
                         capture_output=True, text=True).stdout
    assert "stage 'review'" in why and "review_pending" in why and "machine-generated" in why


# --- untrusted text, and how it looks ------------------------------------------------------------------------------
@needs_browser
def test_xss_record_renders_as_text_and_runs_nothing(browser, served):
    root, srv = served
    recs, _ = records()
    page = new_page(browser, srv)
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    go_and_wait(page, f"{srv.url}/r/{recs[4].id}")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#t-instruction").text_content() == XSS_INSTRUCTION
    assert page.locator("#t-output").text_content() == XSS_OUTPUT
    assert page.locator("#t-output img, #t-instruction script").count() == 0
    # the edit form and the diff show it as text too
    page.keyboard.press("e")
    page.wait_for_selector("#edit-panel:not([hidden])")
    assert page.input_value("#e-output") == XSS_OUTPUT
    page.fill("#e-output", XSS_OUTPUT + '<img src=y onerror="window.__xss = 3">')
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#diff-body ins")
    assert page.locator("#diff-body ins").text_content() == '<img src=y onerror="window.__xss = 3">'
    assert page.locator("#diff-body img").count() == 0 and page.evaluate("window.__xss") is None
    page.close()


CJK_PROBE = """() => {
  const c = document.createElement('canvas'); c.width = c.height = 64;
  const x = c.getContext('2d');
  const font = getComputedStyle(document.querySelector('#t-instruction')).fontFamily;
  const ink = (ch) => { x.clearRect(0, 0, 64, 64); x.font = '48px ' + font; x.fillText(ch, 4, 52);
                        return Array.from(x.getImageData(0, 0, 64, 64).data).filter((v, i) => i % 4 === 3).join(); };
  const a = ink('审'), b = ink('核'), tofu = ink('\\u{10FFFD}');
  return {inked: /[1-9]/.test(a), distinct: a !== b, notTofu: a !== tofu && b !== tofu};
}"""


@needs_browser
@pytest.mark.slow
def test_screenshot_of_the_review_page_shows_chinese(browser, tmp_path):
    from vad.review.log import content_sha256

    root = make_project(tmp_path / "proj")
    recs, _ = records()
    write_jsonl(root / "build/suggest/suggestions.jsonl", [  # a judge hint, as `vad review suggest` writes them
        {"id": recs[5].id, "sha256": content_sha256(recs[5]), "ok": True, "flags": ["stereotype"],
         "categorization": {"level": "social", "value": "平等"}, "note": "指令含性别刻板印象，回答没有纠正"}])
    srv = Server(root, "wang").wait()
    page = new_page(browser, srv)
    go_and_wait(page, f"{srv.url}/r/{recs[5].id}?state=pending&source=evol")
    assert page.evaluate(CJK_PROBE) == {"inked": True, "distinct": True, "notTofu": True}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "review.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 20_000
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    page.close()
    srv.stop()
