"""The four DORA figures, computed by the database from deploys, rollbacks and verdicts.

``DEFINITIONS`` is the one text of what each figure means: ``pipe stats --explain`` prints it and
docs/monitoring.md carries it verbatim (a test keeps them equal). All four figures come from one SQL statement
with aggregates, window functions and correlated ``LIMIT 1`` subqueries that both SQLite and
PostgreSQL run; Python only divides and rounds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, text

from core.clock import iso, parse_iso
from core.errors import InvalidInput
from core.models import UTCDateTime
from core.uow import UnitOfWork

DEFAULT_DAYS = 30
DEFINITIONS: dict[str, str] = {
    "window": (
        "The window is [--since, --until) in UTC; by default the 30 days up to now. --target keeps the "
        "deploys to that target only."
    ),
    "deployment_frequency": (
        "Deployment frequency: deploys that reached `succeeded` within the window (including ones "
        "rolled back later), divided by the window's length in days."
    ),
    "lead_time": (
        "Lead time for changes: from the pipeline's creation to its deploy reaching `succeeded`, over "
        "the deploys that succeeded within the window; the median and the 90th percentile (nearest "
        "rank), in seconds."
    ),
    "change_failure_rate": (
        "Change-failure rate: failed deployments divided by deployments. Deployments are the deploys "
        "that succeeded within the window plus the deploys rolled back from `in-progress` within it; "
        "a deployment failed when it was rolled back (by hand or by auto_rollback) or judged "
        "`unhealthy` by a metric. Deploys still pending or in progress, and deploys that failed "
        "before going out, are not counted."
    ),
    "time_to_restore": (
        "Time to restore: for each failed deployment of the window, from the failure (its first "
        "`unhealthy` verdict or its rollback, whichever came first) to the next healthy deploy to "
        "the same target: the first deploy created after the failed one that is `succeeded`, "
        "finished after the failure and never judged unhealthy. The median (nearest rank), in "
        "seconds; failures with no such deploy yet are counted as unrestored."
    ),
}

# One row per deploy that went out: when it succeeded (a rolled-back deploy's success is in the
# audit trail), when it first turned unhealthy, and when it failed. ``deployments`` is referenced
# several times, so both databases compute it once; PostgreSQL would otherwise inline ``d`` and
# ``restored`` and run their subqueries once per reference (SQLite materialises them anyway).
# ``finished_at >= :since`` is a cheap necessary condition (a deploy goes out before it finishes)
# that spares the subqueries for older deploys.
_SQL = """
WITH d AS {materialized} (
  SELECT d.id, d.seq, d.target, d.status, d.created_at, d.rolled_back_at, p.created_at AS pipeline_created,
    CASE WHEN d.status = 'succeeded' THEN d.finished_at
         ELSE (SELECT MIN(a.at) FROM audit_events a
               WHERE a.entity_id = d.id AND a.entity = 'deploy' AND a.to_state = 'succeeded') END AS succeeded_at,
    (SELECT MIN(v.at) FROM verdict_events v WHERE v.deploy_id = d.id AND v.verdict = 'unhealthy') AS unhealthy_at
  FROM deploys d JOIN pipelines p ON p.id = d.pipeline_id
  WHERE d.status IN ('succeeded', 'rolled-back') AND d.created_at < :until AND d.finished_at >= :since {target}
), deployments AS (
  SELECT w.* FROM (
    SELECT d.*,
      CASE WHEN succeeded_at IS NOT NULL THEN succeeded_at ELSE rolled_back_at END AS out_at,
      CASE WHEN unhealthy_at IS NOT NULL AND (rolled_back_at IS NULL OR unhealthy_at < rolled_back_at)
           THEN unhealthy_at ELSE rolled_back_at END AS failed_at
    FROM d) w
  WHERE w.out_at >= :since AND w.out_at < :until
), lead_times AS (
  SELECT {lead} AS x FROM deployments WHERE succeeded_at IS NOT NULL
), restored AS {materialized} (
    SELECT f.failed_at, (
      SELECT n.finished_at FROM deploys n
      WHERE n.target = f.target AND n.created_at > f.created_at AND n.status = 'succeeded'
        AND n.finished_at > f.failed_at
        AND NOT EXISTS (SELECT 1 FROM verdict_events u WHERE u.deploy_id = n.id AND u.verdict = 'unhealthy')
      ORDER BY n.created_at, n.seq LIMIT 1) AS restored_at
    FROM deployments f WHERE f.failed_at IS NOT NULL
), restores AS (
  SELECT {restore} AS x FROM restored WHERE restored_at IS NOT NULL
), lr AS (
  SELECT x, ROW_NUMBER() OVER (ORDER BY x) AS rn, COUNT(*) OVER () AS n FROM lead_times
), rr AS (
  SELECT x, ROW_NUMBER() OVER (ORDER BY x) AS rn, COUNT(*) OVER () AS n FROM restores
)
SELECT
  (SELECT COUNT(*) FROM deployments WHERE succeeded_at IS NOT NULL),
  (SELECT COUNT(*) FROM deployments),
  (SELECT COUNT(*) FROM deployments WHERE failed_at IS NOT NULL),
  (SELECT COUNT(*) FROM lr), {lead_median}, {lead_p90},
  (SELECT COUNT(*) FROM rr), {restore_median}
"""


def _percentile(ranked: str, p: int) -> str:
    """Nearest rank: the p-th percentile of n sorted values is value number ceil(p * n / 100)."""
    return f"(SELECT MAX(x) FROM {ranked} WHERE rn = (n * {p} + 99) / 100)"


def _seconds(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"(julianday({later}) - julianday({earlier})) * 86400.0"


def no_jit(uow: UnitOfWork) -> None:
    """Reports scan many rows, so PostgreSQL's planner switches on JIT compilation, which costs more
    than it saves here: measured 4 s of compiling for 0.1 s of executing on 100k deploys."""
    if uow.dialect == "postgresql":
        uow.session.execute(text("SET LOCAL jit = off"))


def window(now: datetime, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = parse_iso(until) if until else now
    start = parse_iso(since) if since else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise InvalidInput(f"--since ({iso(start)}) must be before --until ({iso(end)})")
    return start, end


def _round(value) -> float | None:
    return None if value is None else round(float(value), 3)


def dora_figures(
    uow: UnitOfWork, since: str | None = None, until: str | None = None, target: str | None = None,
) -> dict:
    start, end = window(uow.now(), since, until)
    sql = _SQL.format(
        materialized="MATERIALIZED" if uow.dialect == "postgresql" else "",
        target="AND d.target = :target" if target else "",
        lead=_seconds(uow.dialect, "succeeded_at", "pipeline_created"),
        restore=_seconds(uow.dialect, "restored_at", "failed_at"),
        lead_median=_percentile("lr", 50), lead_p90=_percentile("lr", 90), restore_median=_percentile("rr", 50),
    )
    stmt = text(sql).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
    params = {"since": start, "until": end} | ({"target": target} if target else {})
    no_jit(uow)
    row = uow.session.execute(stmt, params).one()
    succeeded, deployments, failures, lead_n, lead_median, lead_p90, restored, restore_median = row
    days = (end - start).total_seconds() / 86400
    return {
        "since": iso(start),
        "until": iso(end),
        "target": target,
        "days": _round(days),
        "deployment_frequency": {"per_day": _round(succeeded / days), "succeeded_deploys": succeeded},
        "lead_time": {"median_seconds": _round(lead_median), "p90_seconds": _round(lead_p90),
                      "deploys": lead_n},
        "change_failure_rate": {"rate": _round(failures / deployments) if deployments else None,
                                "failures": failures, "deployments": deployments},
        "time_to_restore": {"median_seconds": _round(restore_median), "restored": restored,
                            "unrestored": failures - restored},
    }
