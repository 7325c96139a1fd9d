"""The rating web app: one blind pair at a time, a preference (A / B / tie) per trust criterion and overall.

Server-rendered (Starlette + Jinja2 with autoescape on every template; no front-end build). Safe by default:

- every reply and context is rendered escaped, and a Content-Security-Policy allows only this server's own script and
  style files, so a reply holding ``<script>`` or an ``onerror=`` attribute is shown as text and can run nothing;
- every POST carries a CSRF token in a hidden field, checked on the server (the session's token once logged in; a
  double-submit cookie on the login form); a missing or wrong token is a 403;
- a rater logs in by POSTing their token in a form (never in a URL, so never in an access log); the session cookie is
  ``HttpOnly`` and ``SameSite=Strict`` and only its hash is stored;
- a rater sees only their own ratings; an admin sees every rater's progress (counts only).

The side each reply is shown on is seeded per rater and item, so it is the same after a restart; each submit is
committed before the next page is served, so a killed server loses nothing a rater saw saved.
"""

from __future__ import annotations

import hmac
import random
import secrets
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from mmrl.labels import TRUST_RUBRIC
from mmrl.rate import QUESTIONS
from mmrl.rate.pairs import Pair
from mmrl.rate.store import Rater, Store

__all__ = ["create_app", "presented_order", "SESSION_COOKIE"]

SESSION_COOKIE = "mmrl_rate_session"
_LOGIN_CSRF_COOKIE = "mmrl_rate_login_csrf"
_HERE = Path(__file__).parent
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_DESCRIPTIONS = {**TRUST_RUBRIC, "overall": "all things considered, which reply would you rather the client received?"}


def presented_order(rater_name: str, item_id: str) -> str:
    """``ab`` (reply_a shown as A) or ``ba``: a seeded coin per rater and item, the same on every visit."""
    return "ab" if random.Random(f"{rater_name}\x00{item_id}").random() < 0.5 else "ba"


def _to_file(shown: str, presented: str) -> str:
    """A shown choice (``A``/``B``/``tie``) in the pair file's terms (``a``/``b``/``tie``)."""
    if shown == "tie":
        return "tie"
    return {"ab": {"A": "a", "B": "b"}, "ba": {"A": "b", "B": "a"}}[presented][shown]


def _to_shown(choice: str, presented: str) -> str:
    if choice == "tie":
        return "tie"
    return {"ab": {"a": "A", "b": "B"}, "ba": {"a": "B", "b": "A"}}[presented][choice]


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response


def create_app(pairs: Sequence[Pair], db: str | Path | Store, *, title: str = "Which reply is better?") -> Starlette:
    """The app over ``pairs`` storing into ``db`` (a path or an open :class:`Store`)."""
    store = db if isinstance(db, Store) else Store(db)
    pairs = list(pairs)
    index = {p.id: i for i, p in enumerate(pairs)}
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True, default_for_string=True))
    templates = Jinja2Templates(env=env)

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"title": title, **context}, status_code=status)

    def current(request: Request) -> tuple[Rater, str] | None:
        return store.session(request.cookies.get(SESSION_COOKIE))

    def forbidden(request: Request, message: str) -> HTMLResponse:
        return page(request, "error.html", status=403, message=message)

    def next_item(rater: Rater, after: int = 0) -> int | None:
        """The 1-based number of the first item after ``after`` (wrapping) that ``rater`` has not finished."""
        done = store.rated_items(rater, QUESTIONS)
        order = [*range(after, len(pairs)), *range(0, after)]
        return next((i + 1 for i in order if pairs[i].id not in done), None)

    async def home(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        rater, _ = session
        if rater.is_admin:
            return RedirectResponse("/admin", status_code=303)
        n = next_item(rater)
        return RedirectResponse("/done" if n is None else f"/item/{n}", status_code=303)

    async def login_form(request: Request) -> Response:
        csrf = secrets.token_urlsafe(32)
        response = page(request, "login.html", csrf=csrf, error=None)
        response.set_cookie(_LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/login")
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        cookie, field = request.cookies.get(_LOGIN_CSRF_COOKIE, ""), str(form.get("csrf", ""))
        if not cookie or not field or not hmac.compare_digest(cookie, field):
            return forbidden(request, "The form's security token is missing or wrong. Reload the login page and try again.")
        rater = store.rater_for_token(str(form.get("token", "")).strip())
        if rater is None:
            csrf = secrets.token_urlsafe(32)
            response = page(request, "login.html", status=403, csrf=csrf, error="Unknown token. Check the token you were given.")
            response.set_cookie(_LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/login")
            return response
        sid, _ = store.open_session(rater)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", path="/")
        response.delete_cookie(_LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def logout(request: Request) -> Response:
        session = current(request)
        form = await request.form()
        if session is None or not hmac.compare_digest(session[1], str(form.get("csrf", ""))):
            return forbidden(request, "The form's security token is missing or wrong.")
        store.close_session(request.cookies[SESSION_COOKIE])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def item_page(request: Request, rater: Rater, csrf: str, n: int, *, shown=None, comment=None, error=None) -> HTMLResponse:
        pair = pairs[n - 1]
        presented = presented_order(rater.name, pair.id)
        saved, saved_comment = store.judgements_of(rater, pair.id)
        if shown is None:
            shown = {q: _to_shown(c, presented) for q, c in saved.items()}
        replies = (pair.reply_a, pair.reply_b) if presented == "ab" else (pair.reply_b, pair.reply_a)
        done = len(store.rated_items(rater, QUESTIONS))
        return page(
            request, "item.html", status=400 if error else 200, rater=rater, csrf=csrf, n=n, total=len(pairs), done=done, pair=pair,
            reply_shown_a=replies[0], reply_shown_b=replies[1], questions=[(q, _DESCRIPTIONS[q]) for q in QUESTIONS],
            shown=shown, comment=saved_comment if comment is None else comment, error=error,
        )  # fmt: skip

    def item_number(request: Request) -> int | None:
        n = request.path_params["n"]
        return n if 1 <= n <= len(pairs) else None

    async def show_item(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        n = item_number(request)
        if n is None:
            return page(
                request, "error.html", status=404, message=f"There is no item {request.path_params['n']}; items are 1 to {len(pairs)}."
            )
        return item_page(request, *session, n)

    async def submit_item(request: Request) -> Response:
        session = current(request)
        form = await request.form()
        if session is None or not hmac.compare_digest(session[1], str(form.get("csrf", ""))):
            return forbidden(request, "The form's security token is missing or wrong. Reload the page and submit again.")
        rater, csrf = session
        n = item_number(request)
        if n is None:
            return page(request, "error.html", status=404, message=f"There is no item {request.path_params['n']}.")
        pair = pairs[n - 1]
        if str(form.get("item_id", "")) != pair.id:
            return page(request, "error.html", status=409, message="The pair file changed since this page was shown. Reload it.")
        shown = {q: str(form[f"q_{q}"]) for q in QUESTIONS if str(form.get(f"q_{q}", "")) in ("A", "B", "tie")}
        comment = str(form.get("comment", ""))[:4000]
        missing = [q for q in QUESTIONS if q not in shown]
        if missing:
            error = "Please answer every question before going on (missing: " + ", ".join(m.replace("_", " ") for m in missing) + ")."
            return item_page(request, rater, csrf, n, shown=shown, comment=comment, error=error)
        presented = presented_order(rater.name, pair.id)
        store.save(rater, pair.id, {q: _to_file(c, presented) for q, c in shown.items()}, presented, comment)
        following = next_item(rater, after=n)
        return RedirectResponse("/done" if following is None else f"/item/{following}", status_code=303)

    async def done(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        rater, csrf = session
        return page(request, "done.html", rater=rater, csrf=csrf, done=len(store.rated_items(rater, QUESTIONS)), total=len(pairs))

    async def admin(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        rater, csrf = session
        if not rater.is_admin:
            return forbidden(request, "Only an admin token sees every rater's progress.")
        ids = set(index)
        progress = [(r.name, len(store.rated_items(r, QUESTIONS) & ids)) for r in store.raters() if not r.is_admin]
        return page(request, "admin.html", rater=rater, csrf=csrf, progress=progress, total=len(pairs))

    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/item/{n:int}", show_item, methods=["GET"]),
        Route("/item/{n:int}", submit_item, methods=["POST"]),
        Route("/done", done),
        Route("/admin", admin),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
    app.state.store = store
    return app
