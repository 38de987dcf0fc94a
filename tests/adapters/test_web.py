"""The web view in process (Starlette's test client): sign-in and sessions, refusals, escaping,
the board, the pipeline page, metric charts and DORA (docs/web.md)."""

from __future__ import annotations

import re
import time

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.models import Approval
from chainpipe.core.services.artifacts import add_artifact
from chainpipe.core.services.deploys import record_deploy, rollback_deploy, update_deploy
from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.monitoring import record_metric
from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline
from chainpipe.core.services.tokens import create_token, revoke_token
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select
from starlette.testclient import TestClient

SECRET = "s" * 40
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def web_env(env):
    return env | {"PIPE_SERVER_API_ONLY": "1", "PIPE_WEB_SECRET": SECRET}


@pytest.fixture
def server(web_env, config_file, monkeypatch):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings

    monkeypatch.setenv("PIPE_WEB_SECRET", SECRET)  # the server reads it from its environment
    app = create_asgi_app(load_settings(web_env), load_bot_settings(web_env))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def make_token(env, name: str, **kw) -> str:
    with UnitOfWork(load_settings(env)) as uow:
        return create_token(uow, Actor("admin"), name, **kw)["token"]


def sign_in(client, token: str):
    return client.post("/web/sign-in", data={"token": token, "next": "/web/"})


@pytest.fixture
def alice_in(server, web_env):
    resp = sign_in(server, make_token(web_env, "alice-web", person="alice"))
    assert resp.status_code == 303, resp.text
    return server


def do(env, fn, actor, *args, **kw):
    with UnitOfWork(load_settings(env)) as uow:
        return fn(uow, actor, *args, **kw)


def deployed_pipeline(env, name: str = "checkout", target: str = "prod") -> dict:
    """A pipeline at its deploy stage: an artifact, code-review approved by bob, a deploy with metrics."""
    bob, ci = Actor("bob", "cli"), Actor("alice", "cli")
    pid = do(env, create_pipeline, ci, name=name)["id"]
    do(env, start_pipeline, ci, pid)
    do(env, add_artifact, ci, pid, name="app.tar", type="binary", digest=DIGEST)
    do(env, advance_stage, ci, pid, "review")
    do(env, approve_gate, bob, pid, "code-review", reason="looks right")
    for value in (100, 110, 120):
        do(env, record_metric, ci, pid, "latency_ms", value)
    dep = do(env, record_deploy, ci, pid, "canary", target, artifact="app.tar")["id"]
    return {"id": pid, "deploy": dep}


# --- sessions ---------------------------------------------------------------------------------------

PROTECTED = ["/web/", "/web/dora", "/web/pipelines/pipe-000000000000"]


@pytest.mark.parametrize("path", PROTECTED)
def test_pages_without_a_session_send_the_browser_to_sign_in_and_show_nothing(server, web_env, path):
    deployed_pipeline(web_env, name="secret-project")
    resp = server.get(path)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/web/sign-in?next=")
    assert "secret-project" not in resp.text


def test_the_fragment_and_svg_without_a_session_are_401(server, web_env):
    pid = deployed_pipeline(web_env, name="secret-project")["id"]
    for path in ("/web/board/fragment", f"/web/pipelines/{pid}/metrics/latency_ms.svg"):
        resp = server.get(path)
        assert resp.status_code == 401 and "secret-project" not in resp.text


def test_a_personal_token_signs_in_to_a_signed_httponly_strict_cookie_without_the_token(server, web_env):
    raw = make_token(web_env, "alice-web", person="alice")
    resp = sign_in(server, raw)
    assert resp.status_code == 303 and resp.headers["location"] == "/web/"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("pipe_session=")
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "max-age", "path"} <= attrs and "samesite=strict" in cookie.lower()
    assert raw not in cookie and raw.removeprefix("cp_") not in cookie
    board = server.get("/web/")
    assert board.status_code == 200 and '<strong id="person">alice</strong>' in board.text


def test_a_service_token_or_an_unknown_token_cannot_sign_in(server, web_env):
    service = make_token(web_env, "ci")
    resp = sign_in(server, service)
    assert resp.status_code == 403 and "set-cookie" not in resp.headers
    assert "a service token cannot sign in" in resp.text
    resp = sign_in(server, "cp_not-a-token")
    assert resp.status_code == 401 and "set-cookie" not in resp.headers
    assert server.get("/web/").status_code == 303


def test_a_forged_or_foreign_cookie_is_refused(server, web_env):
    from chainpipe.bot.web.session import Sessions

    raw = make_token(web_env, "alice-web", person="alice")
    with UnitOfWork(load_settings(web_env)) as uow:
        from chainpipe.core.services.tokens import find_token

        token_id = find_token(uow, raw)["id"]
    deployed_pipeline(web_env, name="secret-project")
    genuine = Sessions(SECRET).issue({"id": token_id, "person": "alice"})
    payload, _, signature = genuine.rpartition(".")
    forgeries = [
        Sessions("another-secret-" + "x" * 30).issue({"id": token_id, "person": "alice"}),  # wrong key
        payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:],  # altered signature
        Sessions(SECRET).issue({"id": token_id, "person": "mallory"}),  # a person the token is not
        "garbage",
    ]
    for forged in forgeries:
        server.cookies.set("pipe_session", forged, path="/web")
        resp = server.get("/web/")
        assert resp.status_code == 303 and "secret-project" not in resp.text, forged
    server.cookies.set("pipe_session", genuine, path="/web")
    assert "secret-project" in server.get("/web/").text


def test_an_expired_session_is_refused(server, web_env, monkeypatch):
    sign_in(server, make_token(web_env, "alice-web", person="alice"))
    assert server.get("/web/").status_code == 200
    later = time.time() + 9 * 3600
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    assert server.get("/web/").status_code == 303


def test_revoking_the_token_ends_the_session_on_the_next_request(alice_in, web_env):
    assert alice_in.get("/web/").status_code == 200
    do(web_env, revoke_token, Actor("admin"), "alice-web")
    resp = alice_in.get("/web/")
    assert resp.status_code == 303 and "pipe_session=" in resp.headers.get("set-cookie", "")
    assert alice_in.get("/web/board/fragment").status_code == 401


def test_sign_in_refuses_a_cross_site_post_and_never_redirects_off_site(server, web_env):
    raw = make_token(web_env, "alice-web", person="alice")
    resp = server.post("/web/sign-in", data={"token": raw}, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403 and "set-cookie" not in resp.headers
    for target in ("https://evil.example/", "//evil.example/web/", "/api/v1/commands"):
        resp = server.post("/web/sign-in", data={"token": raw, "next": target})
        assert resp.headers["location"] == "/web/", target


def test_sign_out_clears_the_cookie(alice_in):
    resp = alice_in.post("/web/sign-out")
    assert resp.status_code == 303 and 'pipe_session=""' in resp.headers["set-cookie"]
    assert alice_in.get("/web/").status_code == 303


# --- escaping and headers --------------------------------------------------------------------------

def test_every_value_is_escaped_and_pages_carry_a_csp(alice_in, web_env):
    hostile = "<script>alert(1)</script>"
    pid = deployed_pipeline(web_env, name=hostile, target="<img src=x onerror=alert(2)>")["id"]
    for path in ("/web/", "/web/board/fragment", f"/web/pipelines/{pid}", f"/web/pipelines/{pid}/metrics/latency_ms",
                 "/web/dora"):
        resp = alice_in.get(path)
        assert resp.status_code == 200, (path, resp.text)
        assert "<script>alert" not in resp.text and "<img src=x" not in resp.text, path
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        assert resp.headers["x-content-type-options"] == "nosniff"
    page = alice_in.get(f"/web/pipelines/{pid}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"<script(?! src=\"/web/static/board.js\")", alice_in.get("/web/").text)


def test_a_bad_filter_is_one_line_with_the_right_status(alice_in):
    resp = alice_in.get("/web/?status=exploded")
    assert resp.status_code == 422 and "Traceback" not in resp.text
    assert re.search(r'<p class="error" id="error">[^\n<]+</p>', resp.text)
    assert alice_in.get("/web/pipelines/pipe-000000000000").status_code == 404
    assert alice_in.get("/web/dora?weeks=abc").status_code == 422


# --- the pages --------------------------------------------------------------------------------------

def _cards(html: str, status: str) -> str:
    column = re.search(rf'<section class="column" data-status="{status}">(.*?)</section>', html, re.S)
    return column.group(1) if column else ""


def test_the_board_groups_by_status_with_gates_and_the_last_deploy_and_filters(alice_in, web_env):
    shipped = deployed_pipeline(web_env, name="shipped", target="prod")
    staged = deployed_pipeline(web_env, name="staged", target="staging")
    waiting = do(web_env, create_pipeline, Actor("alice"), name="waiting", template="bugfix")["id"]
    do(web_env, start_pipeline, Actor("alice"), waiting)
    board = alice_in.get("/web/").text
    running = _cards(board, "running")
    assert shipped["id"] in running and staged["id"] in running and waiting in running
    assert "deploy prod: in-progress" in running
    assert re.search(r'data-gate="code-review" data-state="waiting"', _cards(board, "running"))
    only_prod = alice_in.get("/web/?target=prod").text
    assert shipped["id"] in only_prod and staged["id"] not in only_prod
    bugfix = alice_in.get("/web/board/fragment?template=bugfix").text
    assert waiting in bugfix and shipped["id"] not in bugfix
    assert alice_in.get("/web/?status=completed").text.count('class="card"') == 0


def test_the_pipeline_page_shows_stages_approvals_artifacts_deploys_and_a_verified_audit(alice_in, web_env):
    p = deployed_pipeline(web_env)
    do(web_env, rollback_deploy, Actor("alice"), p["deploy"], reason="latency up")
    principal = do(web_env, lambda uow, a: uow.session.exec(select(Approval.principal)).one(), None)
    page = alice_in.get(f"/web/pipelines/{p['id']}").text
    assert 'data-stage="deploy"' in page and "current" in page
    decision = re.search(r'<li class="decision">(.*?)</li>', page, re.S).group(1)
    assert "<strong>bob</strong>" in decision and f"<code>{principal}</code>" in decision
    assert "“looks right”" in decision and "app.tar v1" in decision and DIGEST in decision
    assert f"<code>{DIGEST}</code>" in page and "v1" in page
    row = re.search(rf'<tr data-deploy="{p["deploy"]}">(.*?)</tr>', page, re.S).group(1)
    assert "rolled-back" in row and "latency up" in row and "evidence" in row
    assert 'id="chain" data-ok="true"' in page and "audit chain verified" in page


def test_a_tampered_audit_row_shows_the_chain_as_broken(alice_in, web_env):
    from sqlalchemy import text

    p = deployed_pipeline(web_env)
    with UnitOfWork(load_settings(web_env)) as uow:
        uow.session.execute(text("UPDATE audit_events SET reason = 'edited' WHERE pipeline_id = :p AND "
                                 "action = 'approve'"), {"p": p["id"]})
        uow.commit()
    page = alice_in.get(f"/web/pipelines/{p['id']}").text
    assert 'id="chain" data-ok="false"' in page and "is broken at row" in page


def _tamper(env, pipeline_id: str, end: str) -> None:
    """Edit the oldest (``min``) or the newest (``max``) audit row of the pipeline."""
    from sqlalchemy import text

    with UnitOfWork(load_settings(env)) as uow:
        uow.session.execute(text(f"UPDATE audit_events SET reason = 'edited' WHERE seq = (SELECT {end}(seq) "
                                 "FROM audit_events WHERE pipeline_id = :p)"), {"p": pipeline_id})
        uow.commit()


def test_a_long_chain_is_verified_from_its_head_back_and_the_page_says_how_far(alice_in, web_env, monkeypatch):
    from chainpipe.bot.web import charts

    monkeypatch.setattr(charts, "CHAIN_ROWS", 3)
    p = deployed_pipeline(web_env)
    page = alice_in.get(f"/web/pipelines/{p['id']}").text
    length = int(re.search(r'id="chain"[^>]*data-length="(\d+)"', page).group(1))
    assert length > 3 and 'data-ok="true"' in page and 'data-verified="3"' in page and 'data-whole="false"' in page
    assert f"the newest 3 of {length} audit rows verified" in page and "audit chain verified" not in page
    assert f"{length - 3} older rows were not checked" in page and "?verify=all" in page

    _tamper(web_env, p["id"], "min")  # the oldest row: outside what a view checks, never claimed
    page = alice_in.get(f"/web/pipelines/{p['id']}").text
    assert f"the newest 3 of {length} audit rows verified" in page
    whole = alice_in.get(f"/web/pipelines/{p['id']}?verify=all").text
    assert 'id="chain" data-ok="false"' in whole and 'data-whole="true"' in whole and "is broken at row" in whole

    _tamper(web_env, p["id"], "max")  # the newest row: checked on every view
    page = alice_in.get(f"/web/pipelines/{p['id']}").text
    assert 'id="chain" data-ok="false"' in page and "is broken at row" in page and "the row was edited" in page


def _points(svg: str) -> list[float]:
    return [float(v) for v in re.findall(r'class="pt"[^>]*data-value="([^"]+)"', svg)]


def test_a_metric_chart_draws_points_baseline_thresholds_verdicts_and_rollbacks(alice_in, web_env):
    p = deployed_pipeline(web_env)
    for value in (130, 600, 1200):
        do(web_env, record_metric, Actor("alice"), p["id"], "latency_ms", value)
    do(web_env, rollback_deploy, Actor("alice"), p["deploy"], reason="too slow")
    resp = alice_in.get(f"/web/pipelines/{p['id']}/metrics/latency_ms.svg")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("image/svg+xml")
    svg = resp.text
    assert _points(svg) == [100, 110, 120, 130, 600, 1200]
    assert re.search(r'class="baseline"[^>]*data-value="110"', svg)  # the mean of the three before the deploy
    assert re.search(r'class="band"[^>]*data-low="100" data-high="120"', svg)
    assert re.search(r'data-name="degraded" data-value="500"', svg) and "unhealthy 1000" in svg
    verdicts = re.findall(r'class="verdict" data-verdict="(\w+)"', svg)
    assert verdicts == ["healthy", "healthy", "degraded", "unhealthy"]  # before the deploy, then of it
    assert svg.count('class="rollback"') == 1 and "✕ rollback" in svg
    deploy_only = alice_in.get(f"/web/pipelines/{p['id']}/metrics/latency_ms.svg?deploy={p['deploy']}").text
    assert _points(deploy_only) == [130, 600, 1200]
    page = alice_in.get(f"/web/pipelines/{p['id']}/metrics/latency_ms").text
    assert "Baseline 110" in page and 'role="img"' in page


def test_an_unknown_metric_or_a_foreign_deploy_is_refused(alice_in, web_env):
    p, other = deployed_pipeline(web_env), deployed_pipeline(web_env, name="other")
    assert alice_in.get(f"/web/pipelines/{p['id']}/metrics/cpu").status_code == 404
    assert alice_in.get(f"/web/pipelines/{p['id']}/metrics/latency_ms?deploy={other['deploy']}").status_code == 422


def test_dora_per_week_uses_the_stats_definitions_and_filters_by_target(alice_in, web_env):
    from chainpipe.core.services.dora import DEFINITIONS
    from markupsafe import escape

    p = deployed_pipeline(web_env, target="prod")
    do(web_env, update_deploy, Actor("alice"), p["deploy"], "succeeded")
    deployed_pipeline(web_env, name="other", target="staging")
    page = alice_in.get("/web/dora?weeks=4").text
    assert page.count('<figure class="dora"') == 4
    for text_ in DEFINITIONS.values():
        assert str(escape(text_)) in page
    rows = re.findall(r"<tr><td>(\S+)</td><td>([\d.]+)</td>", page)
    assert len(rows) == 4 and float(rows[-1][1]) > 0
    staging = alice_in.get("/web/dora?weeks=4&target=staging").text
    assert float(re.findall(r"<tr><td>(\S+)</td><td>([\d.]+)</td>", staging)[-1][1]) == 0
    assert alice_in.get("/web/dora?weeks=53").status_code == 422


# --- Slack deep links ---------------------------------------------------------------------------

def _notice(pid: str) -> dict:
    pipeline = {"id": pid, "name": "x", "template": "feature", "status": "running", "current_stage": "review"}
    gate = {"name": "code-review", "stage": "review", "status": "pending", "round": 1, "required_approvals": 1,
            "decisions": [], "decided_by": None, "decided_at": None, "reason": None}
    return {"pipeline": pipeline, "gate": gate, "artifacts": [], "open": True}


def test_gate_messages_link_to_the_pipeline_page_only_when_a_public_url_is_set(monkeypatch):
    from chainpipe.bot.blocks import gate_message

    monkeypatch.delenv("PIPE_PUBLIC_URL", raising=False)
    assert "/web/pipelines/" not in str(gate_message(_notice("pipe-abc"))[1])
    monkeypatch.setenv("PIPE_PUBLIC_URL", "https://pipe.example.com/")
    assert "<https://pipe.example.com/web/pipelines/pipe-abc|" in str(gate_message(_notice("pipe-abc"))[1])


def test_a_long_series_is_downsampled_to_its_slices_lows_and_highs_and_keeps_its_spike(alice_in, web_env):
    from datetime import datetime, timedelta, timezone

    from chainpipe.core.models import MonitorEvent
    from sqlalchemy import insert

    p = deployed_pipeline(web_env)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    rows = [{"id": f"mon-long{i:08d}", "pipeline_id": p["id"], "deploy_id": p["deploy"], "metric": "latency_ms",
             "value": 9999.0 if i == 1234 else 200.0 + i % 50, "actor": "alice", "surface": "cli",
             "recorded_at": t0 + timedelta(seconds=10 * i)} for i in range(3000)]
    with UnitOfWork(load_settings(web_env)) as uow:
        uow.session.execute(insert(MonitorEvent.__table__), rows)
        uow.commit()
    svg = alice_in.get(f"/web/pipelines/{p['id']}/metrics/latency_ms.svg?deploy={p['deploy']}").text
    drawn = _points(svg)
    assert 'data-count="3000"' in svg and 400 <= len(drawn) <= 800
    assert max(drawn) == 9999 and min(drawn) == 200
    assert len(svg.encode()) < 200 * 1024


def test_the_pipeline_page_charts_the_newest_events_and_says_so_the_metric_page_draws_them_all(
        alice_in, web_env, monkeypatch):
    from chainpipe.core.services import pages

    monkeypatch.setattr(pages, "PAGE_SERIES", 4)
    p = deployed_pipeline(web_env)  # three events before the deploy
    for value in (130, 140, 150):
        do(web_env, record_metric, Actor("alice"), p["id"], "latency_ms", value)
    page = alice_in.get(f"/web/pipelines/{p['id']}").text
    chart = page[page.index('id="chart-latency_ms"'):]
    chart = chart[:chart.index("</svg>")]
    assert _points(chart) == [120, 130, 140, 150] and 'data-count="4"' in chart
    assert "(its newest 4 values; the metric's page shows more)" in page
    full = alice_in.get(f"/web/pipelines/{p['id']}/metrics/latency_ms.svg").text
    assert _points(full) == [100, 110, 120, 130, 140, 150] and 'data-count="6"' in full
    short = deployed_pipeline(web_env, name="short")
    assert "newest" not in alice_in.get(f"/web/pipelines/{short['id']}").text.split("<h2>Metrics</h2>")[1]


def test_the_cookie_is_secure_when_the_public_url_is_https(server, web_env, monkeypatch):
    raw = make_token(web_env, "alice-web", person="alice")
    assert "secure" not in sign_in(server, raw).headers["set-cookie"].lower()
    monkeypatch.setenv("PIPE_PUBLIC_URL", "https://pipe.example.com")
    assert "; secure" in sign_in(server, raw).headers["set-cookie"].lower()


# --- flat: what a page runs does not grow with the history ------------------------------------------

def _more_pipelines(env, first: int, n: int) -> None:
    """``n`` pipelines of every status, each with a pending gate and a deploy, written straight."""
    from datetime import datetime, timezone

    from chainpipe.core.catalogue import PIPELINE_STATUSES
    from chainpipe.core.models import Deploy, Gate, Pipeline
    from sqlalchemy import insert

    now = datetime.now(timezone.utc)
    ids = [f"pipe-many{i:07d}" for i in range(first, first + n)]
    pipelines = [dict(id=pid, name=f"many {i}", template="feature", status=PIPELINE_STATUSES[i % 6],
                      current_stage="review", created_by="bulk", created_at=now, updated_at=now)
                 for i, pid in enumerate(ids)]
    gates = [dict(id=f"gate-{pid[5:]}", pipeline_id=pid, name="code-review", stage="review", status="pending")
             for pid in ids]
    deploys = [dict(id=f"dep-{pid[5:]}", pipeline_id=pid, strategy="canary", target="prod", status="succeeded",
                    created_by="bulk", surface="cli", created_at=now, updated_at=now, finished_at=now)
               for pid in ids]
    with UnitOfWork(load_settings(env)) as uow:
        for table, rows in ((Pipeline, pipelines), (Gate, gates), (Deploy, deploys)):
            uow.session.execute(insert(table.__table__), rows)
        uow.commit()


def _statements(client, env, paths: list[str]) -> dict[str, int]:
    """How many SQL statements each request runs (and the App Home's read)."""
    from chainpipe.bot.home import read_home
    from chainpipe.core.db import get_engine
    from sqlalchemy import event

    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    engine, out = get_engine(env["PIPE_DATABASE_URL"]), {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        for path in paths:
            seen.clear()
            assert client.get(path).status_code == 200, path
            out[path] = len(seen)
        seen.clear()
        read_home(load_settings(env), "alice")
        out["app home"] = len(seen)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return out


def test_the_statements_each_page_runs_do_not_grow_with_the_number_of_pipelines(alice_in, web_env):
    p = deployed_pipeline(web_env)
    for value in range(20):  # its verdict changes: a longer audit chain and more verdict marks
        do(web_env, record_metric, Actor("alice", "cli"), p["id"], "latency_ms", (120, 90_000)[value % 2])
    paths = ["/web/", "/web/board/fragment", "/web/?target=prod", "/web/?template=feature&status=running",
             f"/web/pipelines/{p['id']}", f"/web/pipelines/{p['id']}/metrics/latency_ms",
             f"/web/pipelines/{p['id']}/metrics/latency_ms.svg", "/web/dora?weeks=12"]
    _more_pipelines(web_env, 0, 12)  # every column of the board has cards
    few = _statements(alice_in, web_env, paths)
    _more_pipelines(web_env, 12, 300)
    for value in range(20):
        do(web_env, record_metric, Actor("alice", "cli"), p["id"], "latency_ms", (120, 90_000)[value % 2])
    assert _statements(alice_in, web_env, paths) == few
    assert max(few.values()) <= 40, few


def test_a_target_with_few_deploys_fills_the_board_as_the_probe_of_every_pipeline_would(
        alice_in, web_env, monkeypatch):
    from chainpipe.core.services import pages

    _more_pipelines(web_env, 0, 6 * pages.BOARD_PER_STATUS + 12)  # columns that overflow: the newest of each
    deployed_pipeline(web_env, name="elsewhere", target="eu")

    def cards(path: str) -> list[str]:
        return re.findall(r'class="card" data-pipeline="([^"]+)"', alice_in.get(path).text)

    for path in ("/web/?target=prod", "/web/?target=prod&status=running", "/web/?target=eu"):
        few = cards(path)  # read from the target's deploys
        monkeypatch.setattr(pages, "FEW_DEPLOYS", 0)
        probed = cards(path)  # each pipeline probed for a deploy to the target
        monkeypatch.setattr(pages, "FEW_DEPLOYS", 2000)
        assert few == probed and few, path
    assert len(cards("/web/?target=prod")) == 6 * pages.BOARD_PER_STATUS
