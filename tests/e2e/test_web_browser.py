"""The web view in a real browser: Debian's chromium driven by Playwright against a real
`pipe-server` process. Sign in with a personal token, open the board, follow a pipeline, read a
chart's points back from the SVG, and watch a gate approved through the API leave the board
without a reload; no console errors. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.artifacts import add_artifact
from chainpipe.core.services.deploys import record_deploy
from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.monitoring import record_metric
from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline
from chainpipe.core.services.tokens import create_token
from chainpipe.core.uow import UnitOfWork

CHROMIUM = "/usr/bin/chromium"
VALUES = [120.0, 135.5, 128.25, 610.0, 1250.0]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"{CHROMIUM} is missing (apt-get install -y chromium)")


def do(env, fn, actor, *args, **kw):
    with UnitOfWork(load_settings(env)) as uow:
        return fn(uow, actor, *args, **kw)


def seed(env) -> dict:
    carol = Actor("carol", "cli")
    waiting = do(env, create_pipeline, carol, name="payments <b>v2</b>")["id"]
    do(env, start_pipeline, carol, waiting)
    do(env, advance_stage, carol, waiting, "review")
    shipped = do(env, create_pipeline, carol, name="search")["id"]
    do(env, start_pipeline, carol, shipped)
    do(env, add_artifact, carol, shipped, name="search.tar", type="binary", digest="sha256:" + "cd" * 32)
    do(env, advance_stage, carol, shipped, "review")
    do(env, approve_gate, Actor("bob", "cli"), shipped, "code-review", reason="reviewed")
    do(env, record_deploy, carol, shipped, "canary", "prod", artifact="search.tar")
    for value in VALUES:
        do(env, record_metric, carol, shipped, "latency_ms", value)
    with UnitOfWork(load_settings(env)) as uow:
        token = create_token(uow, Actor("admin"), "alice-browser", person="alice")["token"]
    return {"waiting": waiting, "shipped": shipped, "token": token}


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def test_sign_in_follow_a_pipeline_read_a_chart_and_see_an_approval_arrive_live(pipe_server, browser, tmp_path):
    if not pipe_server.env["PIPE_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("one database is enough for the browser; tests/adapters/test_web.py runs every page on PostgreSQL")
    data = seed(pipe_server.env)
    server = pipe_server(PIPE_SERVER_API_ONLY="1", PIPE_WEB_SECRET="e2e-" + "k" * 40)
    shots = Path(tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    page.goto(server.url + "/web/")
    assert "/web/sign-in" in page.url  # no session yet
    page.fill("#token", data["token"])
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/web/")
    assert page.text_content("#person") == "alice"
    card = page.locator(f'article[data-pipeline="{data["waiting"]}"]')
    assert card.locator(".name").text_content() == "payments <b>v2</b>"  # shown as text, not markup
    assert card.locator('[data-gate="code-review"]').get_attribute("data-state") == "open"
    page.screenshot(path=str(shots / "board.png"), full_page=True)

    page.click(f'article[data-pipeline="{data["shipped"]}"] a.name')
    page.wait_for_url(f"**/web/pipelines/{data['shipped']}")
    assert page.get_attribute("#chain", "data-ok") == "true"
    chart = page.locator("svg#chart-latency_ms")
    values = [float(v) for v in chart.locator("circle.pt").evaluate_all("cs => cs.map(c => c.dataset.value)")]
    assert values[-len(VALUES):] == VALUES
    verdicts = chart.locator("g.verdict").evaluate_all("gs => gs.map(g => g.dataset.verdict)")
    assert verdicts[-2:] == ["degraded", "unhealthy"]
    page.screenshot(path=str(shots / "pipeline.png"), full_page=True)
    page.click('figure[data-metric="latency_ms"] figcaption a')
    page.wait_for_url("**/metrics/latency_ms")
    assert page.locator("svg.chart line.threshold").count() == 2
    page.screenshot(path=str(shots / "metric.png"), full_page=True)

    page.goto(server.url + "/web/")
    page.evaluate("window.__notReloaded = true")
    resp = httpx.post(f"{server.url}/api/v1/commands/approve", json={"pipeline_id": data["waiting"],
                                                                     "gate": "code-review"},
                      headers={"Authorization": f"Bearer {data['token']}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    gate = f'article[data-pipeline="{data["waiting"]}"] [data-gate="code-review"]'
    page.wait_for_selector(gate, state="detached", timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True
    assert "updated" in page.text_content("#live")
    page.screenshot(path=str(shots / "board-after-approval.png"), full_page=True)

    page.goto(server.url + "/web/dora?weeks=8")
    assert page.locator("figure.dora svg").count() == 4
    page.screenshot(path=str(shots / "dora.png"), full_page=True)
    assert problems == []
