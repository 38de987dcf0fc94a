"""Read models (core.services.pages) turned into charts (bot.web.svg): a metric's chart, the
pipeline page with one chart per metric, and the four DORA figures per week."""

from __future__ import annotations

from chainpipe.bot.web.svg import Chart, render
from chainpipe.core.clock import parse_iso
from chainpipe.core.errors import NotFound
from chainpipe.core.rules.metrics import check_metric
from chainpipe.core.services import pages

THRESHOLDS = ("degraded", "unhealthy")
CHAIN_ROWS = pages.AUDIT_ROWS  # audit rows a view re-verifies: as many as the page lists
DORA_CHARTS = (
    ("deployment_frequency", "per_day", "Deployment frequency", "deploys per day"),
    ("lead_time", "median_seconds", "Lead time for changes (median)", "hours"),
    ("change_failure_rate", "rate", "Change-failure rate", "share of deployments"),
    ("time_to_restore", "median_seconds", "Time to restore (median)", "hours"),
)


def metric_chart(uow, pipeline_id: str, metric: str, deploy: str | None = None, css_id: str = "chart",
                 newest: int = pages.SERIES_MAX) -> dict:
    series = pages.metric_series(uow, pipeline_id, check_metric(metric), deploy, newest)
    if not series["points"] and metric not in _metrics(uow, pipeline_id):
        raise NotFound(f"pipeline {pipeline_id} has no metric {metric}")
    rule = series["rule"] or {}
    rules = [(d["at"], f"deploy {d['target']}") for d in series["deploys"] if not deploy or d["id"] == deploy]
    rules += [(d["rolled_back_at"], "rollback") for d in series["deploys"]
              if d["rolled_back_at"] and (not deploy or d["id"] == deploy)]
    if series["points"]:  # keep the rules inside the drawn time span
        first = series["points"][0][0]
        rules = [(t, label) for t, label in rules if t >= first]
    chart = Chart(
        title=f"{metric} of {series['pipeline']['name']}" + (f", deploy {deploy}" if deploy else ""),
        points=series["points"], unit=series["unit"], baseline=series["baseline"], band=series["band"],
        thresholds=[(name, rule[name]) for name in THRESHOLDS if rule.get(name) is not None],
        markers=[(v["at"], v["verdict"]) for v in series["verdicts"]], rules=rules, css_id=css_id,
        total=series["count"],
    )
    return series | {"svg": render(chart), "points_count": series["count"]}


def _metrics(uow, pipeline_id: str) -> list[str]:
    from chainpipe.core.services.monitoring import metrics_of

    return metrics_of(uow, pipeline_id)


def pipeline_with_charts(uow, pipeline_id: str, whole_chain: bool = False) -> dict:
    """The pipeline page: a chart per metric of its newest PAGE_SERIES events (the metric's own page
    draws more); a view re-verifies the newest CHAIN_ROWS rows of the audit chain (all of a shorter
    chain), the whole chain only when asked (``?verify=all``)."""
    data = pages.pipeline_page(uow, pipeline_id)
    data["charts"] = [metric_chart(uow, pipeline_id, m, css_id=f"chart-{m.replace('.', '-')}",
                                   newest=pages.PAGE_SERIES)
                      for m in data["metric_names"]]
    data["chain"] = pages.verify_chain(uow, pipeline_id, None if whole_chain else CHAIN_ROWS)  # last: see there
    return data


def _figure(week: dict, figure: str, key: str) -> float | None:
    value = week[figure][key]
    if value is None:
        return None
    return value / 3600 if key == "median_seconds" else value


def dora_charts(uow, weeks: int, target: str | None) -> dict:
    data = pages.dora_weeks(uow, weeks, target)
    points = [parse_iso(w["since"]) for w in data["weeks"]]
    data["charts"] = [
        {"figure": figure, "title": title, "definition": data["definitions"][figure],
         "svg": render(Chart(title=f"{title} per week" + (f", target {target}" if target else ""),
                             points=[(t, _figure(w, figure, key)) for t, w in zip(points, data["weeks"], strict=True)],
                             unit=unit, css_id=f"dora-{figure}"))}
        for figure, key, title, unit in DORA_CHARTS
    ]
    return data
