"""The four DORA figures, from the deployments table that the write paths keep (core/aggregates.py).

``DEFINITIONS`` is the one text of what each figure means: ``pipe stats --explain`` prints it and
docs/monitoring.md carries it verbatim (a test keeps them equal). Each deploy that went out has a
row with its facts (when it went out, lead time, failure, restore), so the figures of a window are
one indexed range read, counted and ranked by the database; Python only divides and rounds. The
cost follows the deployments inside the window, not the history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import bindparam, text

from core.aggregates import refresh
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

# ``w`` (the window's deployments) is referenced several times: PostgreSQL computes it once.
_SQL = """
WITH w AS {materialized} (
  SELECT succeeded_at, lead_seconds, failed_at, restore_seconds FROM dora_deployments
  WHERE out_at >= :since AND out_at < :until {target}
), lr AS (
  SELECT lead_seconds AS x, ROW_NUMBER() OVER (ORDER BY lead_seconds) AS rn, COUNT(*) OVER () AS n
  FROM w WHERE lead_seconds IS NOT NULL
), rr AS (
  SELECT restore_seconds AS x, ROW_NUMBER() OVER (ORDER BY restore_seconds) AS rn, COUNT(*) OVER () AS n
  FROM w WHERE restore_seconds IS NOT NULL
)
SELECT
  (SELECT COUNT(*) FROM w WHERE succeeded_at IS NOT NULL),
  (SELECT COUNT(*) FROM w),
  (SELECT COUNT(*) FROM w WHERE failed_at IS NOT NULL),
  (SELECT COUNT(*) FROM lr), {lead_median}, {lead_p90},
  (SELECT COUNT(*) FROM rr), {restore_median}
"""


def _percentile(ranked: str, p: int) -> str:
    """Nearest rank: the p-th percentile of n sorted values is value number ceil(p * n / 100)."""
    return f"(SELECT MAX(x) FROM {ranked} WHERE rn = (n * {p} + 99) / 100)"


def deployment_changed(uow: UnitOfWork, deploy) -> None:
    """``deploy`` succeeded, was rolled back or judged unhealthy in this unit of work: its DORA facts
    (and those of the earlier failures it restores or stops restoring) are re-derived at commit."""
    uow.defer("dora", deploy, lambda deploys: refresh(uow.conn, deploys))


_NO_JIT = text("SET LOCAL jit = off")


def no_jit(uow: UnitOfWork) -> None:
    """Reports can scan many rows, so PostgreSQL's planner may switch on JIT compilation, which costs
    more than it saves here: measured 4 s of compiling for 0.1 s of executing on 100k deploys."""
    if uow.dialect == "postgresql":
        uow.conn.execute(_NO_JIT)


def window(now: datetime, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = parse_iso(until) if until else now
    start = parse_iso(since) if since else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise InvalidInput(f"--since ({iso(start)}) must be before --until ({iso(end)})")
    return start, end


def _round(value) -> float | None:
    return None if value is None else round(float(value), 3)


@cache
def _statement(dialect: str, by_target: bool):
    sql = _SQL.format(
        materialized="MATERIALIZED" if dialect == "postgresql" else "",
        target="AND target = :target" if by_target else "",
        lead_median=_percentile("lr", 50), lead_p90=_percentile("lr", 90), restore_median=_percentile("rr", 50),
    )
    return text(sql).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))


def dora_figures(
    uow: UnitOfWork, since: str | None = None, until: str | None = None, target: str | None = None,
) -> dict:
    start, end = window(uow.now(), since, until)
    params = {"since": start, "until": end} | ({"target": target} if target else {})
    no_jit(uow)
    row = uow.conn.execute(_statement(uow.dialect, bool(target)), params).one()
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
