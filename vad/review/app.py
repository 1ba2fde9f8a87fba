"""`vad review serve`: the review app (FastAPI + Jinja2), over the records the review stage receives
(build/judge/judged.jsonl: machine-made records categorized and judged, their objections first under "flags").

Pages are rendered on the server, one record at a time (a 30k-record queue never goes to the browser); the
keyboard does the work (static/review.js); every decision is one line appended to the decision log
(vad/review/log.py), which is the only state: restart the app, or run several at once on the same project, and
each reviewer carries on where the log says.

Safe by default: it binds 127.0.0.1 and then accepts only loopback Host names (no DNS rebinding); on any other
address a reviewer token is required. State changes are POSTs whose Origin must be the app's own; every page has
a Content-Security-Policy without inline script; every template autoescapes, so record text (LLM output, SafeRLHF
prompts: untrusted) renders as text."""
from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader

from vad.core import paths
from vad.core.config import load_params
from vad.core.errors import InputError
from vad.core.taxonomy import LEVEL_ZH, LEVELS, SOURCES
from vad.review.board import EVERYONE, QUEUE_STATES, SORTS, Board, Query, QueryError
from vad.review.corpus import Context, Corpus
from vad.review.diff import char_diff
from vad.review.guidelines import read_guidelines
from vad.review.i18n import KEYS, LANGS, labeller, reason_label, translator
from vad.review.log import TEXT_FIELDS, append, new_decision, real_changes
from vad.review.state import latest_active

HERE = Path(__file__).resolve().parent
PAGE_ROWS = 50
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
REVIEWER_COOKIE, TOKEN_COOKIE, LANG_COOKIE = "vad_reviewer", "vad_token", "vad_lang"
NAME = re.compile(r"\S{1,40}")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store",
}
OPEN_PATHS = ("/login", "/static/", "/healthz", "/favicon.ico")  # reachable before the token is given


def templates() -> Environment:
    """Autoescape on for every template, whatever its name."""
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=False)


def host_name(host_header: str) -> str:
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def create_app(root: str | Path = ".", *, reviewer: str = "", token: str = "") -> FastAPI:
    """The app over the project at `root`. `token`: required from every client when set (serve() sets one for
    any non-loopback address); without it only loopback Host names are served."""
    root = Path(root).resolve()
    params = load_params(root / "params.yaml")
    corpus = Corpus(root / paths.JUDGED)
    context = Context(corpus, root)
    board = Board(corpus, root / paths.REVIEW_DECISIONS, params.review, root / paths.REVIEW_SUGGESTIONS)
    log_path = root / paths.REVIEW_DECISIONS
    guide = read_guidelines(root / paths.REVIEW_GUIDELINES)
    guide_html = guide.html()
    env = templates()
    band = (params.ifd.min, params.ifd.max)
    names = [*params.review.reviewers, *params.review.adjudicators]

    app = FastAPI(title="VAD review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.board = board

    # --- who, in which language ---------------------------------------------------------------------------
    def me(request: Request) -> str:
        name = request.cookies.get(REVIEWER_COOKIE) or reviewer
        return name if valid_name(name) else ""

    def valid_name(name: str) -> bool:
        return bool(name) and (name in names if names else bool(NAME.fullmatch(name)))

    def lang(request: Request) -> str:
        v = request.cookies.get(LANG_COOKIE, "zh")
        return v if v in LANGS else "zh"

    def render(request: Request, name: str, title: str, http_status: int = 200, **kw: Any) -> HTMLResponse:
        lg = lang(request)
        who = me(request)
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        html = env.get_template(name).render(
            t=translator(lg), lb=labeller(lg), lang=lg, me=who, adjudicator=board.is_adjudicator(who), keys=KEYS, back=back,
            guidelines_version=guide.version, title=title, levels=LEVELS,
            level_zh=LEVEL_ZH if lg == "zh" else {k: k for k in LEVELS},
            reason_label=lambda code: reason_label(code, board.reasons, lg), **kw)
        return HTMLResponse(html, status_code=http_status)

    def message(request: Request, status: int, key: str, detail: str = "") -> HTMLResponse:
        t = translator(lang(request))
        return render(request, "message.html", t(key), http_status=status, heading=t(key), message=detail)

    def record_url(i: int, q: Query) -> str:
        qs = urlencode(q.params())
        return f"/r/{corpus.ids[i]}" + (f"?{qs}" if qs else "")

    def default_query(who: str) -> Query:
        return Query(state="conflict") if board.is_adjudicator(who) else Query()

    def query_of(request: Request, who: str) -> Query:
        given = dict(request.query_params)
        return Query.parse(given) if given.get("state") else _with(default_query(who), given)

    # --- the guard: host, token, same origin, headers ------------------------------------------------------
    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = request.headers.get("host", "")
        if not token and host_name(host) not in LOOPBACK:
            return PlainTextResponse("this app serves loopback addresses only (start it with --host to share it)",
                                     status_code=400)
        path = request.url.path
        if token and not any(path == p or path.startswith(p) for p in OPEN_PATHS):
            supplied = request.cookies.get(TOKEN_COOKIE) or request.headers.get("authorization", "").removeprefix(
                "Bearer ").strip()
            given = request.query_params.get("token", "")
            if given and hmac.compare_digest(given, token) and request.method == "GET":
                resp = RedirectResponse(path, status_code=303)  # the printed URL works once; the cookie after
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return _secure(resp)
            if not (supplied and hmac.compare_digest(supplied, token)):
                if request.method == "GET" and not path.startswith("/api/"):
                    return _secure(RedirectResponse("/login", status_code=303))
                return _secure(JSONResponse({"ok": False, "error": "reviewer token required"}, status_code=401))
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin", "")
            if origin != f"{request.url.scheme}://{host}" or \
                    request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
                return _secure(JSONResponse({"ok": False, "error": "cross-origin request refused"}, status_code=403))
        board.refresh()
        return _secure(await call_next(request))

    # --- pages ----------------------------------------------------------------------------------------------
    @app.get("/favicon.ico")
    async def favicon():
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz():
        return {"ok": True, "records": len(corpus), "decision_lines": board.lines}

    @app.get("/")
    async def home(request: Request):
        who = me(request)
        if not who:
            return RedirectResponse("/login", status_code=303)
        q = default_query(who)
        queue = board.queue(q, who)
        target = record_url(queue[0], q) if queue else "/queue?" + urlencode(q.params())
        return RedirectResponse(target, status_code=303)

    @app.get("/login")
    async def login_page(request: Request):
        return render(request, "login.html", "login", names=names, adjudicators=params.review.adjudicators,
                      need_token=bool(token), error="")

    @app.post("/login")
    async def login(request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        name = form.get("reviewer", "").strip()
        if token and not hmac.compare_digest(form.get("token", ""), token):
            return render(request, "login.html", "login", http_status=401, names=names,
                          adjudicators=params.review.adjudicators, need_token=True, error="token?")
        if not valid_name(name):
            return render(request, "login.html", "login", http_status=400, names=names,
                          adjudicators=params.review.adjudicators, need_token=bool(token), error=name)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(REVIEWER_COOKIE, name, httponly=True, samesite="strict")
        if token:
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return resp

    @app.get("/lang")
    async def set_lang(request: Request, to: str = "zh", back: str = "/"):
        safe = back if back.startswith("/") and not back.startswith(("//", "/\\")) else "/"
        resp = RedirectResponse(safe, status_code=303)
        resp.set_cookie(LANG_COOKIE, to if to in LANGS else "zh", samesite="strict")
        return resp

    @app.get("/guidelines")
    async def guidelines(request: Request):
        return render(request, "guidelines.html", "guidelines", guidelines_html=guide_html,
                      path=paths.REVIEW_GUIDELINES)

    @app.get("/progress")
    async def progress(request: Request):
        return render(request, "progress.html", "progress", p=board.progress())

    @app.get("/queue")
    async def queue_page(request: Request, page: int = 0):
        who = me(request)
        if not who:
            return RedirectResponse("/login", status_code=303)
        try:
            q = query_of(request, who)
        except QueryError as e:
            return message(request, 400, "bad_query", str(e))
        queue = board.queue(q, who)
        page = max(0, page)
        first = page * PAGE_ROWS
        rows = []
        for n, i in enumerate(queue[first:first + PAGE_ROWS], start=first + 1):
            rec = corpus.record(i)
            rows.append({"n": n, "url": record_url(i, q), "source": rec.source, "level": corpus.level[i],
                         "value": corpus.value[i], "ifd": corpus.ifd[i], "flags": board.flags(i),
                         "status": board.status_for(i, q.reviewer or who) or "none",
                         "instruction": rec.instruction[:80]})
        counts = {s: len(board.queue(_with(q, {"state": s}), who)) for s in QUEUE_STATES if s != "all"}

        def page_url(p: int) -> str:
            return "/queue?" + urlencode({**q.params(), "page": p})

        people = sorted({*names, *(d.reviewer for ds in board.decisions.values() for d in ds)})
        return render(request, "queue.html", "queue", query=q, rows=rows, total=len(queue), first=first,
                      counts=counts, queue_states=QUEUE_STATES, sources=SOURCES, sorts=SORTS, people=people,
                      with_state=lambda s: urlencode({**q.params(), "state": s}),
                      prev_page=page_url(page - 1) if page else "",
                      next_page=page_url(page + 1) if first + PAGE_ROWS < len(queue) else "")

    @app.get("/r/{rid}")
    async def record_page(request: Request, rid: str):
        who = me(request)
        if not who:
            return RedirectResponse("/login", status_code=303)
        i = corpus.pos.get(rid)
        if i is None:
            return message(request, 404, "not_found", rid)
        try:
            q = query_of(request, who)
        except QueryError as e:
            return message(request, 400, "bad_query", str(e))
        queue = board.queue(q, who)
        pos, prev_i, next_i = board.neighbours(queue, i)
        rec = corpus.record(i)
        st = board.state(i)
        history = board.history(i)
        return render(
            request, "record.html", rec.instruction[:30], rec=rec, sha=corpus.sha[i], qs=urlencode(q.params()),
            query=q, pos=pos, queue_len=len(queue),
            prev_url=record_url(prev_i, q) if prev_i is not None else "",
            next_url=record_url(next_i, q) if next_i is not None else "",
            my_status=board.status_for(i, who), state=st, ifd=corpus.ifd[i], band=band,
            pct=corpus.percentile(corpus.ifd[i]), assigned=board.a.reviewers_of(rid), required=st.required,
            suggestion=board.suggestions.get(rid), ctx=context.of(rec), history=history,
            can_undo=latest_active(history, who) is not None,
            reasons=[(code, reason_label(code, board.reasons, lang(request))) for code in board.reasons],
            guidelines_html=guide_html)

    # --- actions --------------------------------------------------------------------------------------------
    def error(request: Request, status: int, key: str, detail: str = "") -> JSONResponse:
        t = translator(lang(request))
        return JSONResponse({"ok": False, "error": t(key) + (f": {detail}" if detail else "")}, status_code=status)

    async def body_of(request: Request) -> tuple[dict, int | None, Query | None, str]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return {}, None, None, "a JSON object"
        i = corpus.pos.get(str(body.get("id", "")))
        try:
            q = Query.parse(parse_qs_flat(str(body.get("query", ""))))
        except QueryError as e:
            return body, i, None, str(e)
        return body, i, q, ""

    async def action(request: Request) -> tuple[str, dict, int, Query] | JSONResponse:
        """Who acts on which record, from which queue — or the error response."""
        who = me(request)
        if not who:
            return error(request, 401, "who")
        body, i, q, bad = await body_of(request)
        if bad:
            return error(request, 400, "bad_query", bad)
        if i is None:
            return error(request, 404, "not_found")
        return who, body, i, q

    def role(who: str) -> str:
        return "adjudicator" if board.is_adjudicator(who) else "reviewer"

    @app.post("/api/decide")
    async def decide(request: Request):
        got = await action(request)
        if isinstance(got, JSONResponse):
            return got
        who, body, i, q = got
        if body.get("sha256") != corpus.sha[i]:
            return error(request, 409, "changed_upstream")
        kind = body.get("decision")
        if kind not in ("accept", "reject", "edit", "skip"):
            return error(request, 400, "error", f"decision {kind!r}")
        rec = corpus.record(i)
        fields = {}
        if kind == "edit":
            fields = real_changes(rec, _fields(body.get("fields")))
            if not fields:
                return error(request, 400, "no_change")
        if kind == "reject" and not body.get("reason"):
            return error(request, 400, "pick_reason")
        try:
            d = new_decision(rec, who, kind, role=role(who),
                             guidelines=guide.version, reason=str(body.get("reason") or "") if kind == "reject" else "",
                             note=str(body.get("note") or "")[:2000], fields=fields, reasons=board.reasons)
        except InputError as e:
            return error(request, 400, "error", str(e).split(": ", 1)[-1])
        _, _, nxt = board.neighbours(board.queue(q, who), i)  # the queue as the reviewer saw it
        append(log_path, [d])
        board.refresh()
        if nxt is None or nxt == i:
            rest = [j for j in board.queue(q, who) if j != i]
            nxt = rest[0] if rest else None
        t = translator(lang(request))
        return {"ok": True, "uid": d.uid, "message": t("saved"),
                "next": record_url(nxt, q) if nxt is not None else "/queue?" + urlencode(q.params())}

    @app.post("/api/undo")
    async def undo(request: Request):
        got = await action(request)
        if isinstance(got, JSONResponse):
            return got
        who, _body, i, q = got
        target = latest_active(board.history(i), who)
        if target is None:
            return error(request, 400, "nothing_to_undo")
        rec = corpus.record(i)
        d = new_decision(rec, who, "undo", role=role(who),
                         guidelines=guide.version, undoes=target.uid, reasons=board.reasons)
        append(log_path, [d])
        board.refresh()
        return {"ok": True, "uid": d.uid, "undone": target.uid, "next": record_url(i, q)}

    @app.post("/api/diff")
    async def diff(request: Request):
        body, i, _q, _bad = await body_of(request)
        if i is None:
            return error(request, 404, "not_found")
        rec = corpus.record(i)
        changed = real_changes(rec, _fields(body.get("fields")))
        out = {}
        for k, v in changed.items():
            if k in TEXT_FIELDS:
                out[k] = char_diff(getattr(rec, k), v)
            else:
                old, new = rec.categorization, v
                out[k] = [("-", f"{old.get('level')}/{old.get('value')}"), ("+", f"{new.get('level')}/{new.get('value')}")]
        return {"ok": True, "changed": out, "none": not out}

    return app


def _with(q: Query, changes: dict[str, str]) -> Query:
    return Query.parse({**q.params(), **{k: v for k, v in changes.items() if k != "page" and v}})


def parse_qs_flat(qs: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(qs.lstrip("?")).items()}


def _fields(obj: Any) -> dict[str, Any]:
    """The edit form's fields: the three texts, and the categorization as "level/value"."""
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {k: str(obj[k]) for k in TEXT_FIELDS if isinstance(obj.get(k), str)}
    cat = obj.get("categorization")
    if isinstance(cat, str) and "/" in cat:
        level, value = cat.split("/", 1)
        out["categorization"] = {"level": level, "value": value}
    return out


def _secure(resp: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


def serve(root: str | Path = ".", host: str = "127.0.0.1", port: int = 8765, reviewer: str = "",
          token: str = "") -> None:
    """Run the app with uvicorn. Any address but loopback needs a token (one is made and printed if none given)."""
    import secrets

    import uvicorn

    if host_name(host) not in LOOPBACK and not token:
        token = secrets.token_urlsafe(18)
    app = create_app(root, reviewer=reviewer, token=token)
    board: Board = app.state.board
    shown = f"[{host}]" if ":" in host else host
    print(f"VAD review: {len(board.corpus)} records, {board.lines} decision lines ({paths.REVIEW_DECISIONS})")
    print(f"  open http://{shown}:{port}/" + (f"?token={token}" if token else "") + "   (Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
