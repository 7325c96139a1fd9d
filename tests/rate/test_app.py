"""The web app through Starlette's TestClient: login, CSRF, escaping, per-rater order, resume, admin, headers."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from mmrl.rate import QUESTIONS
from mmrl.rate.app import SESSION_COOKIE, create_app, presented_order
from mmrl.rate.pairs import load_pairs
from mmrl.rate.store import Store
from tests.rate.helpers import INJECTIONS, synthetic_pairs, write_jsonl


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def round_(tmp_path):
    pairs, _ = synthetic_pairs(3, injection=True)
    pairs.append({"id": "bare", "reply_a": "only a", "reply_b": "only b"})
    store = Store(tmp_path / "r.sqlite")
    tokens = {"ana": store.add_rater("ana"), "ben": store.add_rater("ben"), "boss": store.add_rater("boss", admin=True)}
    app = create_app(load_pairs(write_jsonl(tmp_path / "p.jsonl", pairs)), store)
    return app, store, tokens, tmp_path


def _login(app, token) -> TestClient:
    client = TestClient(app)
    page = client.get("/login")
    response = client.post("/login", data={"token": token, "csrf": _csrf(page.text)}, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    return client


def _answers(csrf, item_id, choice="A"):
    return {"csrf": csrf, "item_id": item_id, **{f"q_{q}": choice for q in QUESTIONS}, "comment": "ok"}


def test_login_needs_csrf_and_a_known_token(round_):
    app, _, tokens, _ = round_
    client = TestClient(app)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.post("/login", data={"token": tokens["ana"]}).status_code == 403  # no CSRF cookie or field
    page = client.get("/login")
    assert client.post("/login", data={"token": tokens["ana"], "csrf": "forged"}).status_code == 403
    bad = client.post("/login", data={"token": "nope", "csrf": _csrf(page.text)})
    assert bad.status_code == 403 and "Unknown token" in bad.text
    assert tokens["ana"] not in page.text + bad.text


def test_every_post_rejects_missing_or_wrong_csrf(round_):
    app, store, tokens, _ = round_
    client = _login(app, tokens["ana"])
    for data in ({}, {"csrf": "wrong"}):
        assert client.post("/item/1", data={**_answers("x", "s01"), **data} if data else {"item_id": "s01"}).status_code == 403
        assert client.post("/logout", data=data).status_code == 403
    assert store.rows() == []
    # a valid session's token from another rater does not work either
    other = _login(app, tokens["ben"])
    ben_csrf = _csrf(other.get("/item/1").text)
    assert client.post("/item/1", data=_answers(ben_csrf, "s01")).status_code == 403


def test_replies_and_context_render_escaped(round_):
    app, _, tokens, _ = round_
    client = _login(app, tokens["ana"])
    html = client.get("/item/1").text + client.get("/item/2").text
    for raw in INJECTIONS[:2]:
        assert raw not in html
    assert INJECTIONS[2] in html  # template syntax and markdown are shown as typed, never evaluated
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html and "{{7*7}}" in html and "49" not in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    response = client.get("/item/1")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_missing_context_is_shown_not_an_error(round_):
    app, _, tokens, _ = round_
    html = _login(app, tokens["ana"]).get("/item/4").text
    assert 'id="context-missing"' in html and "only a" in html and "only b" in html


def test_rating_saves_in_file_terms_resumes_and_revises(round_):
    app, store, tokens, _ = round_
    client = _login(app, tokens["ana"])
    page = client.get("/item/1").text
    response = client.post("/item/1", data=_answers(_csrf(page), "s01", "A"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/item/2"
    shown_a = "a" if presented_order("ana", "s01") == "ab" else "b"
    assert {r["choice"] for r in store.rows()} == {shown_a} and {r["comment"] for r in store.rows()} == {"ok"}
    # incomplete answers are refused with a message, nothing stored
    partial = {k: v for k, v in _answers(_csrf(page), "s02").items() if k != "q_safety"}
    refused = client.post("/item/2", data=partial)
    assert refused.status_code == 400 and "missing: safety" in refused.text
    assert len(store.rows()) == len(QUESTIONS)
    # a fresh app over the same database (a restart) resumes at the first unrated item, with earlier answers shown
    app2 = create_app(load_pairs(_pairs_path(round_)), Store(store.path))
    client2 = TestClient(app2, cookies={SESSION_COOKIE: client.cookies[SESSION_COOKIE]})
    assert client2.get("/", follow_redirects=False).headers["location"] == "/item/2"
    assert client2.get("/item/1").text.count("checked") == len(QUESTIONS)
    # revising item 1 overwrites, not duplicates
    client2.post("/item/1", data=_answers(_csrf(client2.get("/item/1").text), "s01", "tie"))
    assert len(store.rows()) == len(QUESTIONS) and {r["choice"] for r in store.rows()} == {"tie"}
    assert client2.get("/item/99").status_code == 404


def _pairs_path(round_):
    return round_[3] / "p.jsonl"


def test_raters_see_only_their_own_ratings_and_admin_sees_progress(round_):
    app, _, tokens, _ = round_
    ana = _login(app, tokens["ana"])
    ana.post("/item/1", data={**_answers(_csrf(ana.get("/item/1").text), "s01"), "comment": "ana-secret-comment"})
    ben = _login(app, tokens["ben"])
    ben_page = ben.get("/item/1").text
    assert "checked" not in ben_page and "ana-secret-comment" not in ben_page
    assert ben.get("/admin").status_code == 403
    boss = _login(app, tokens["boss"])
    admin = boss.get("/", follow_redirects=True)
    assert "<td>ana</td><td>1</td>" in admin.text and "<td>ben</td><td>0</td>" in admin.text
    assert "ana-secret-comment" not in admin.text


def test_order_is_seeded_per_rater():
    orders = {(r, i): presented_order(r, i) for r in ("ana", "ben", "chen") for i in map(str, range(40))}
    assert orders == {(r, i): presented_order(r, i) for r, i in orders}
    assert set(orders.values()) == {"ab", "ba"}
    assert any(orders[("ana", i)] != orders[("ben", i)] for i in map(str, range(40)))


def test_logout_ends_the_session(round_):
    app, store, tokens, _ = round_
    client = _login(app, tokens["ana"])
    csrf = _csrf(client.get("/item/1").text)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).headers["location"] == "/login"
    assert client.get("/item/1", follow_redirects=False).status_code == 303
