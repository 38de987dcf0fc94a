"""The aggregates behind `pipe stats`, kept in the write transactions so reading them does not grow
with the history.

Counts (table ``stat_counts``): rows per value of a counted column — pipelines by status and
template, deploys by strategy and status, gate decisions, artifacts, monitor events. The unit of
work adds every inserted row and every change of a counted column to one upsert written at commit,
after the pipeline and its children (so the lock order stays pipeline → children → counters), its
rows in key order (so two writers can't lock two counters in opposite orders).

Deployments (table ``dora_deployments``): one row per deploy that went out, with the facts the DORA
figures need (docs/monitoring.md has their definitions, core/services/dora.py computes them):
when it went out, its lead time, when it failed, which later deploy restored it and when. A row
depends on its deploy, the deploy's verdicts and the later deploys to the same target, so each
change to a deploy that went out (success, rollback, an unhealthy verdict) re-derives, at commit,
the rows of that deploy and of the earlier failures on its target it may restore or stop
restoring — with ``DEPLOYMENTS_SQL``, the same statement that fills the table from scratch
(`fill`, run once by the migration that introduced it, and by the consistency test as the
reference).

Days (table ``dora_days``): per UTC day on which deployments went out, and per target (plus one row
for every target), their counts and their lead and restore times sorted — the figures of a window
are the sums and the merged, ranked times of its whole days, plus the deployments of its two
partial days. A day's rows are derived from its deployments whenever one of them is.

Those rows span pipelines whose locks a writer does not hold, so on PostgreSQL the writers of DORA
rows queue on one lock, taken at commit after every other lock but the counters'.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from functools import cache

from chainpipe.core.models import DoraDay, DoraDeployment, StatCount, UTCDateTime
from chainpipe.core.records import UNREAD
from sqlalchemy import Connection, bindparam, delete, select, text

# table -> counted columns ("" counts the table's rows)
COUNTED: dict[str, tuple[str, ...]] = {
    "pipelines": ("status", "template"),
    "deploys": ("strategy", "status"),
    "approvals": ("decision",),
    "artifacts": ("",),
    "monitor_events": ("",),
}
COUNTERS = {table: tuple((column, f"{table}.{column}" if column else table) for column in columns)
            for table, columns in COUNTED.items()}
COUNTS = StatCount.__table__
FACTS = DoraDeployment.__table__
DAYS = DoraDay.__table__


# ---- counts ------------------------------------------------------------------------------------

def count_row(deltas: dict, table: str, values: dict, sign: int = 1) -> None:
    """Add an inserted row of ``table`` to ``deltas`` ((counter, key) -> change)."""
    for column, name in COUNTERS.get(table, ()):
        key = (name, str(values[column]) if column else "")
        deltas[key] = deltas.get(key, 0) + sign


def count_change(deltas: dict, table: str, column: str, old, new) -> None:
    for counted, name in COUNTERS.get(table, ()):
        if counted == column:
            if old is UNREAD:
                raise RuntimeError(f"{table}.{column} changed without being read: its count can't move")
            deltas[(name, str(old))] = deltas.get((name, str(old)), 0) - 1
            deltas[(name, str(new))] = deltas.get((name, str(new)), 0) + 1


def upsert(table, dialect: str):
    """The dialect's INSERT, which has ON CONFLICT (imported on use: a SQLite process never loads
    the PostgreSQL dialect)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


@cache
def upsert_counts(dialect: str):
    stmt = upsert(COUNTS, dialect)
    return stmt.on_conflict_do_update(index_elements=["name", "key"], set_={"n": COUNTS.c.n + stmt.excluded.n})


def counted(conn: Connection) -> dict[tuple[str, str], int]:
    """Every count recomputed from the tables: what ``stat_counts`` must hold."""
    out = {}
    for table, counters in COUNTERS.items():
        for column, name in counters:
            sql = f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}" if column else \
                f"SELECT '', COUNT(*) FROM {table}"
            out.update({(name, str(key)): n for key, n in conn.execute(text(sql)) if n})
    return out


def stored_counts(conn: Connection) -> dict[tuple[str, str], int]:
    return {(name, key): n for name, key, n in conn.execute(COUNTS.select()) if n}


# ---- deployments -------------------------------------------------------------------------------

# One row per deploy that went out, as docs/monitoring.md defines the DORA figures: it went out when
# it succeeded (a rolled-back deploy's success is in the audit trail) or, never having succeeded,
# when it was rolled back; it failed at its first unhealthy verdict or its rollback, whichever came
# first; the deploy that restored it is the first one to the same target created after it that is
# `succeeded`, finished after the failure and never judged unhealthy.
DEPLOYMENTS_SQL = """
INSERT INTO dora_deployments (deploy_id, target, deploy_created_at, deploy_seq, out_at, succeeded_at, lead_seconds,
                              failed_at, restored_by, restored_at, restore_seconds)
WITH d AS MATERIALIZED (
  SELECT d.id, d.seq, d.target, d.created_at, d.rolled_back_at, p.created_at AS pipeline_created,
    CASE WHEN d.status = 'succeeded' THEN d.finished_at
         ELSE (SELECT MIN(a.at) FROM audit_events a
               WHERE a.entity_id = d.id AND a.entity = 'deploy' AND a.to_state = 'succeeded') END AS succeeded_at,
    (SELECT MIN(v.at) FROM verdict_events v WHERE v.deploy_id = d.id AND v.verdict = 'unhealthy') AS unhealthy_at
  FROM deploys d JOIN pipelines p ON p.id = d.pipeline_id
  WHERE d.status IN ('succeeded', 'rolled-back') {only}
), f AS MATERIALIZED (
  SELECT d.*, COALESCE(succeeded_at, rolled_back_at) AS out_at,
    CASE WHEN unhealthy_at IS NOT NULL AND (rolled_back_at IS NULL OR unhealthy_at < rolled_back_at)
         THEN unhealthy_at ELSE rolled_back_at END AS failed_at
  FROM d
), r AS MATERIALIZED (
  SELECT f.*, CASE WHEN f.failed_at IS NOT NULL THEN (
    SELECT n.id FROM deploys n
    WHERE n.target = f.target AND n.created_at > f.created_at AND n.status = 'succeeded'
      AND n.finished_at > f.failed_at
      AND NOT EXISTS (SELECT 1 FROM verdict_events u WHERE u.deploy_id = n.id AND u.verdict = 'unhealthy')
    ORDER BY n.created_at, n.seq LIMIT 1) END AS restored_by
  FROM f WHERE out_at IS NOT NULL
)
SELECT r.id, r.target, r.created_at, r.seq, r.out_at, r.succeeded_at, {lead}, r.failed_at, r.restored_by,
       n.finished_at, {restore}
FROM r LEFT JOIN deploys n ON n.id = r.restored_by
"""


def seconds(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"(julianday({later}) - julianday({earlier})) * 86400.0"


def _deployments(dialect: str, only: str) -> str:
    return DEPLOYMENTS_SQL.format(only=only, lead=seconds(dialect, "r.succeeded_at", "r.pipeline_created"),
                                  restore=seconds(dialect, "n.finished_at", "r.failed_at"))


def fill(conn: Connection) -> None:
    """(Re)compute every row of ``dora_deployments`` and ``dora_days`` from the deploys, verdicts
    and audit trail."""
    conn.execute(delete(FACTS))
    conn.execute(text(_deployments(conn.dialect.name, "")))
    conn.execute(delete(DAYS))
    rows = day_rows(conn.execute(_FACTS_FOR_DAYS))
    if rows:
        conn.execute(DAYS.insert(), rows)


_DEPENDENTS = text("""
SELECT f.deploy_id FROM dora_deployments f
WHERE f.target = :target AND f.deploy_created_at < :created AND f.failed_at IS NOT NULL
  AND (f.restored_by IS NULL OR EXISTS (
    SELECT 1 FROM deploys r WHERE r.id = f.restored_by AND (r.created_at > :created OR
                                                            (r.created_at = :created AND r.seq >= :seq))))
""").bindparams(bindparam("created", type_=UTCDateTime()))
# Writers of the DORA rows queue here on PostgreSQL (see the module's docstring).
_DORA_LOCK = text("SELECT pg_advisory_xact_lock(7312027)")


def refresh(conn: Connection, deploys: Iterable) -> None:
    """Re-derive the rows of ``deploys`` (changed in this transaction, already flushed), of the
    earlier failures on their targets whose restoring deploy they may now be or no longer be, and
    of the days they went out on."""
    deploys = list(deploys)
    if conn.dialect.name == "postgresql":
        conn.execute(_DORA_LOCK)
    ids = set()
    for dep in deploys:
        ids.add(dep.id)
        ids.update(r[0] for r in conn.execute(_DEPENDENTS, {"target": dep.target, "created": dep.created_at,
                                                            "seq": dep.seq}))
    ids = sorted(ids)
    days = {day_of(r.out_at) for r in conn.execute(_FORGET, {"ids": ids})}
    days.update(day_of(r.out_at) for r in conn.execute(_derive(conn.dialect.name), {"ids": ids}))
    if days:
        conn.execute(_FORGET_DAYS, {"days": sorted(days)})
        rows = day_rows(r for day in sorted(days) for r in conn.execute(_FACTS_OF_DAY, _day_bounds(day)))
        if rows:
            conn.execute(DAYS.insert(), rows)


_FORGET = (delete(FACTS).where(FACTS.c.deploy_id.in_(bindparam("ids", expanding=True)))
           .returning(FACTS.c.out_at))


@cache
def _derive(dialect: str):
    return (text(_deployments(dialect, "AND d.id IN :ids") + "RETURNING out_at")
            .bindparams(bindparam("ids", expanding=True)).columns(out_at=UTCDateTime()))


# ---- days --------------------------------------------------------------------------------------

ALL_TARGETS = ""  # the day row of every target together (a deploy's target is never empty)
_FACTS_FOR_DAYS = select(FACTS.c.target, FACTS.c.out_at, FACTS.c.succeeded_at.is_not(None), FACTS.c.lead_seconds,
                         FACTS.c.failed_at.is_not(None), FACTS.c.restore_seconds)
_FACTS_OF_DAY = _FACTS_FOR_DAYS.where(FACTS.c.out_at >= bindparam("a"), FACTS.c.out_at < bindparam("b"))
_FORGET_DAYS = delete(DAYS).where(DAYS.c.day.in_(bindparam("days", expanding=True)))


def day_of(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).date().isoformat()


def _day_bounds(day: str) -> dict:
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return {"a": start, "b": start + timedelta(days=1)}


def day_rows(facts) -> list[dict]:
    """The dora_days rows of deployment facts (target, out_at, succeeded, lead, failed, restore):
    one per day and target, and one per day for every target."""
    days: dict[tuple[str, str], dict] = {}
    for target, out_at, succeeded, lead, failed, restore in facts:
        day = day_of(out_at)
        for key in ((target, day), (ALL_TARGETS, day)):
            row = days.get(key)
            if row is None:
                row = days[key] = {"target": key[0], "day": day, "deployments": 0, "succeeded": 0, "failures": 0,
                                   "restored": 0, "lead_seconds": [], "restore_seconds": []}
            row["deployments"] += 1
            row["succeeded"] += bool(succeeded)
            row["failures"] += bool(failed)
            if lead is not None:
                row["lead_seconds"].append(lead)
            if restore is not None:
                row["restored"] += 1
                row["restore_seconds"].append(restore)
    for row in days.values():
        row["lead_seconds"] = json.dumps(sorted(row["lead_seconds"]))
        row["restore_seconds"] = json.dumps(sorted(row["restore_seconds"]))
    return [days[key] for key in sorted(days)]


def fill_all(conn: Connection) -> None:
    """Recompute every aggregate from the tables (the migration that introduced them; bulk loads)."""
    if conn.dialect.name == "postgresql":
        # Rows just loaded or restored have no planner statistics yet, and the deployments'
        # statement then nests scans: 58 s instead of 1 s at 50,000 deploys.
        conn.exec_driver_sql("ANALYZE pipelines, deploys, audit_events, verdict_events")
    conn.execute(delete(COUNTS))
    rows = [{"name": name, "key": key, "n": n} for (name, key), n in sorted(counted(conn).items())]
    if rows:
        conn.execute(COUNTS.insert(), rows)
    fill(conn)
