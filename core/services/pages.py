"""Read models for the web pages and the Slack App Home: the board, one pipeline in full, a metric's
series, DORA per week, and what waits for one person.

Every read is bounded: a LIMIT over an index (pipelines by status or template, deploys by pipeline
or target, monitor events by (pipeline or deploy, metric, seq), verdicts by (pipeline, metric)), so
a page costs the same with ten pipelines or ten thousand.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from chainpipe.core.catalogue import PIPELINE_STATUSES, check_choice
from chainpipe.core.clock import iso
from chainpipe.core.errors import InvalidInput
from chainpipe.core.models import Approval, Deploy, Gate, MonitorEvent, Pipeline, VerdictEvent
from chainpipe.core.rules.gates import can_decide, gate_state
from chainpipe.core.rules.metrics import judge, verdict_reason, worst
from chainpipe.core.services.audit import heads, stream_rows
from chainpipe.core.services.monitoring import MAX_SEQ, latest_deploy
from chainpipe.core.services.queries import audit_log, show_pipeline
from chainpipe.core.uow import UnitOfWork
from chainpipe.core.views import approval_view, deploy_view, pipeline_view
from sqlalchemy import func, text, tuple_, type_coerce
from sqlalchemy.types import NullType
from sqlmodel import select

BOARD_PER_STATUS = 25
SERIES_MAX = 20000  # the newest events a chart covers
PAGE_SERIES = 2000  # the newest events each chart on the pipeline page covers (its metric page: SERIES_MAX)
CHART_BUCKETS = 400  # a longer series comes back as each slice's lowest and highest value
AUDIT_ROWS = 200
DEPLOY_ROWS = 50
MAX_WEEKS = 52
HOME_GATES = 100
HOME_ROWS = 10
TARGETS_MAX = 50
FEW_DEPLOYS = 2000  # a board filtered by a target with no more deploys reads them, not the pipelines


# ---- the board ----------------------------------------------------------------------------------

def board(uow: UnitOfWork, status: str | None = None, template: str | None = None,
          target: str | None = None, per_status: int = BOARD_PER_STATUS) -> dict:
    """The newest pipelines of each status (filtered), with waiting gates and the last deploy."""
    statuses = [check_choice("status", status, PIPELINE_STATUSES)] if status else list(PIPELINE_STATUSES)
    if template:
        check_choice("template", template, sorted(uow.settings.templates))
    few = _pipelines_deployed_to(uow, target) if target else None
    if few is not None:
        columns = _board_rows_among(uow, few, statuses, template, per_status)
    else:
        columns = {s: _board_rows(uow, s, template, target, per_status) for s in statuses}
    rows = [p for ps in columns.values() for p in ps]
    gates = _pending_gates(uow, rows)
    deploys = _last_deploys(uow, [p.id for p in rows])
    verdicts = deploy_verdicts(uow, [d.id for d in deploys.values()])

    def card(p) -> dict:
        dep = deploys.get(p.id)
        return pipeline_view(p) | {
            "gates": [{"name": g.name, "stage": g.stage, "state": gate_state(p, g)} for g in gates.get(p.id, [])],
            "last_deploy": (deploy_view(dep) | {"verdict": verdicts.get(dep.id, "unknown")}) if dep else None,
        }

    return {"filters": {"status": status, "template": template, "target": target},
            "columns": [{"status": s, "pipelines": [card(p) for p in ps]} for s, ps in columns.items()]}


def _rows(uow, stmt) -> list:
    """Plain rows (attribute access, like the tables' records) without building ORM instances: a
    page reads hundreds of rows and building instances cost more than the queries."""
    return list(uow.session.execute(stmt))


def _board_rows(uow, status, template, target, limit) -> list:
    stmt = select(*Pipeline.__table__.c).where(Pipeline.status == status)
    if template:
        stmt = stmt.where(Pipeline.template == template)
    if target:  # probed per pipeline, newest first, on the (pipeline_id, seq) index, until the LIMIT is met
        deployed = select(Deploy.seq).where(Deploy.pipeline_id == Pipeline.id, Deploy.target == target)
        stmt = stmt.where(deployed.exists())
    return _rows(uow, stmt.order_by(Pipeline.seq.desc()).limit(limit))


def _pipelines_deployed_to(uow, target: str) -> set[str] | None:
    """The pipelines with a deploy to ``target`` when it has at most FEW_DEPLOYS deploys (a range of
    the (target, created_at) index), else None: probing every pipeline for a deploy to a rare
    target would walk them all, where reading its few deploys is cheap."""
    found = uow.session.execute(select(Deploy.pipeline_id).where(Deploy.target == target)
                                .limit(FEW_DEPLOYS + 1)).scalars().all()
    return set(found) if len(found) <= FEW_DEPLOYS else None


def _board_rows_among(uow, ids: set[str], statuses: list[str], template, limit: int) -> dict[str, list]:
    """The newest ``limit`` pipelines of each status among ``ids``, read by id (the unique index)."""
    columns: dict[str, list] = {s: [] for s in statuses}
    if not ids:
        return columns
    for row in _rows(uow, select(*Pipeline.__table__.c).where(Pipeline.id.in_(sorted(ids)))
                     .order_by(Pipeline.seq.desc())):
        column = columns.get(row.status)
        if column is not None and len(column) < limit and (not template or row.template == template):
            column.append(row)
    return columns


def _pending_gates(uow, pipelines: list) -> dict[str, list]:
    out: dict[str, list[Gate]] = {}
    if not pipelines:
        return out
    stmt = select(*Gate.__table__.c).where(Gate.pipeline_id.in_([p.id for p in pipelines]), Gate.status == "pending")
    for g in _rows(uow, stmt.order_by(Gate.seq)):
        out.setdefault(g.pipeline_id, []).append(g)
    return out


def _last_deploys(uow, pipeline_ids: list[str]) -> dict:
    if not pipeline_ids:
        return {}
    newest = (select(func.max(Deploy.seq)).where(Deploy.pipeline_id.in_(pipeline_ids))
              .group_by(Deploy.pipeline_id))
    return {d.pipeline_id: d for d in _rows(uow, select(*Deploy.__table__.c).where(Deploy.seq.in_(newest)))}


def deploy_verdicts(uow, deploy_ids: list[str]) -> dict[str, str]:
    """Each deploy's overall verdict: the worst of its metrics' latest verdicts."""
    if not deploy_ids:
        return {}
    # The newest verdict of each (deploy, metric), picked by the database: a deploy whose verdict
    # changed thousands of times sends one row per metric, not thousands.
    newest = (select(func.max(VerdictEvent.seq)).where(VerdictEvent.deploy_id.in_(deploy_ids))
              .group_by(VerdictEvent.deploy_id, VerdictEvent.metric))
    stmt = select(VerdictEvent.deploy_id, VerdictEvent.verdict).where(VerdictEvent.seq.in_(newest))
    out: dict[str, list[str]] = {}
    for deploy_id, verdict in uow.conn.execute(stmt):
        out.setdefault(deploy_id, []).append(verdict)
    return {d: worst(v) for d, v in out.items()}


# ---- one pipeline -------------------------------------------------------------------------------

def pipeline_page(uow: UnitOfWork, pipeline_id: str) -> dict:
    """Everything the pipeline page shows but the audit chain's verification (``verify_chain``)."""
    from chainpipe.core.services.artifacts import list_artifacts
    from chainpipe.core.services.monitoring import metrics_of

    shown = show_pipeline(uow, None, pipeline_id)
    deploys = _rows(uow, select(*Deploy.__table__.c).where(Deploy.pipeline_id == pipeline_id)
                    .order_by(Deploy.seq.desc()).limit(DEPLOY_ROWS))
    verdicts = deploy_verdicts(uow, [d.id for d in deploys])
    return shown | {
        "artifacts": list_artifacts(uow, None, pipeline_id, all_versions=True),
        "deploys": [deploy_view(d) | {"verdict": verdicts.get(d.id, "unknown")} for d in deploys],
        "audit": audit_log(uow, None, pipeline_id, limit=AUDIT_ROWS),
        "metric_names": metrics_of(uow, pipeline_id),
    }


def verify_chain(uow: UnitOfWork, pipeline_id: str, newest: int | None = None) -> dict:
    """The pipeline's audit chain recomputed, as ``pipe audit verify ID`` does; with ``newest``, only
    that many of its last rows (each row's hash, its link to the row before, the last against the
    chain's head), in work that does not grow with the chain. ``rows`` says how many were verified,
    ``length`` how many the chain holds, ``whole`` whether that was all of them.

    Run the whole verification last in a unit of work: the rows are streamed, which leaves
    PostgreSQL connections of this session on server-side cursors (a round trip per fetch) for
    whatever is read after it."""
    from chainpipe.core.rules.chain import verify_rows

    chain = f"pipeline:{pipeline_id}"
    recorded = heads(uow, chain)
    length = recorded.get(chain, (None, 0))[1]
    if newest is None or length <= newest:
        report, whole = verify_rows(stream_rows(uow, chain), recorded), True
    else:
        rows = list(stream_rows(uow, chain, newest))
        start = {chain: (rows[0]["prev_hash"], length - len(rows))} if rows else {}
        report, whole = verify_rows(rows, recorded, start), False
    return report.as_dict() | {"line": report.broken.line() if report.broken else None, "length": length,
                               "whole": whole}


# ---- a metric's series --------------------------------------------------------------------------

def metric_series(uow: UnitOfWork, pipeline_id: str, metric: str, deploy: str | None = None,
                  newest: int = SERIES_MAX) -> dict:
    """The points of one metric (of the pipeline, or of one deploy: its ``newest`` events at most),
    its rule, baseline and band, the deploy's verdict, verdict changes and the pipeline's deploys
    and rollbacks, for a chart. ``limited`` says whether older events were left out."""
    pipeline = uow.get_pipeline(pipeline_id)
    dep = _deploy_of(uow, pipeline_id, deploy) if deploy else latest_deploy(uow, pipeline_id)
    by, key = (MonitorEvent.deploy_id, deploy) if deploy else (MonitorEvent.pipeline_id, pipeline_id)
    count, points = _points(uow, by, key, metric, newest)
    rule = uow.settings.metric_rules.get(metric)
    latest = _latest_value(uow, dep, metric)
    verdict = judge(rule, latest) if latest is not None else "unknown"
    baseline, band = _baseline(uow, dep, metric, rule)
    verdicts = _rows(uow, select(VerdictEvent.at, VerdictEvent.verdict, VerdictEvent.deploy_id).where(
        VerdictEvent.pipeline_id == pipeline_id, VerdictEvent.metric == metric)
        .order_by(VerdictEvent.seq.desc()).limit(200))
    deploys = _rows(uow, select(*Deploy.__table__.c).where(Deploy.pipeline_id == pipeline_id)
                    .order_by(Deploy.seq.desc()).limit(DEPLOY_ROWS))
    where, order = _on_index(by, key, metric)
    unit = uow.session.execute(select(MonitorEvent.unit).where(*where).order_by(*order).limit(1)).scalar()
    return {
        "pipeline": pipeline_view(pipeline), "metric": metric, "deploy_id": dep.id if dep else None,
        "unit": unit, "count": count, "limited": count >= newest, "points": points,
        "rule": rule.as_dict() if rule else None,
        "baseline": baseline, "band": band, "verdict": verdict,
        "reason": verdict_reason(rule, latest, verdict) if dep else "no deploy yet",
        "verdicts": [{"at": v.at, "verdict": v.verdict, "deploy_id": v.deploy_id}
                     for v in verdicts if not deploy or v.deploy_id == deploy][::-1],
        "deploys": [{"id": d.id, "at": d.created_at, "target": d.target, "status": d.status,
                     "rolled_back_at": d.rolled_back_at, "rollback_reason": d.rollback_reason}
                    for d in deploys][::-1],
    }


def _on_index(by, key: str, metric: str, *, oldest: bool = False):
    """WHERE and ORDER BY for one (pipeline or deploy, metric) as a range over the whole
    ``(by, metric, seq)`` index key: with plain equalities PostgreSQL may walk the primary key
    instead and filter (core/services/monitoring.py ``_slice`` says more)."""
    cols = (by, MonitorEvent.metric, MonitorEvent.seq)
    where = (tuple_(*cols) >= tuple_(key, metric, -1), tuple_(*cols) <= tuple_(key, metric, MAX_SEQ))
    return where, [c if oldest else c.desc() for c in cols]


_RAW_TIME = type_coerce(MonitorEvent.__table__.c.recorded_at, NullType())  # parsed only where drawn


def _points(uow, by, key: str, metric: str, newest: int = SERIES_MAX) -> tuple[int, list]:
    """(how many events, the points to draw): the ``newest`` events, in time order; beyond
    2 * CHART_BUCKETS of them, each of CHART_BUCKETS slices as its lowest value at its first
    moment and its highest at its last. One range read of the (by, metric, seq) index; the slices
    are cut here, where a pass over the values costs less than the database's sorts and groups, and
    only the times drawn are parsed."""
    where, order = _on_index(by, key, metric)
    rows = uow.conn.execute(select(_RAW_TIME, MonitorEvent.value).where(*where).order_by(*order)
                            .limit(newest)).all()
    rows.reverse()
    n = len(rows)
    if n <= 2 * CHART_BUCKETS:
        return n, [(_moment(t), v) for t, v in rows]
    points = []
    for b in range(CHART_BUCKETS):  # the rows whose rank r has r * CHART_BUCKETS // n == b
        lo, hi = -(-b * n // CHART_BUCKETS), -(-(b + 1) * n // CHART_BUCKETS)
        if lo < hi:
            values = [r[1] for r in rows[lo:hi]]
            first, last = _moment(rows[lo][0]), _moment(rows[hi - 1][0])
            points += [(first, min(values)), (last, max(values))] if last != first else [(first, min(values))]
    return n, points


def _moment(raw) -> datetime:
    """A time as the driver gave it (SQLite: text, no zone) as an aware UTC datetime."""
    moment = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _latest_value(uow, dep, metric: str) -> float | None:
    if dep is None:
        return None
    where, order = _on_index(MonitorEvent.deploy_id, dep.id, metric)
    return uow.session.execute(select(MonitorEvent.value).where(*where).order_by(*order).limit(1)).scalar()


def _deploy_of(uow, pipeline_id: str, deploy: str):
    dep = uow.get_deploy(deploy)
    if dep.pipeline_id != pipeline_id:
        raise InvalidInput(f"deploy {deploy} belongs to pipeline {dep.pipeline_id}, not {pipeline_id}")
    return dep


def _baseline(uow, dep, metric: str, rule) -> tuple[float | None, tuple[float, float] | None]:
    """The deploy's baseline (the mean, as ``monitor-status`` computes it) and its spread (lowest, highest)."""
    from chainpipe.core.services.monitoring import find_baseline

    if dep is None or rule is None:
        return None, None
    where, order = _on_index(MonitorEvent.deploy_id, dep.id, metric, oldest=True)
    first = uow.session.execute(select(MonitorEvent.seq).where(*where).order_by(*order).limit(1)).scalar()
    found = find_baseline(uow, dep, metric, rule, first)
    if not found:
        return None, None
    values = [r.value for r in found["rows"]]
    return sum(values) / len(values), (min(values), max(values))


# ---- DORA per week ------------------------------------------------------------------------------

def dora_weeks(uow: UnitOfWork, weeks: int = 12, target: str | None = None) -> dict:
    """The four figures of each of the last ``weeks`` whole-or-current weeks (Monday 00:00 UTC),
    computed by ``core.services.dora.dora_figures``: the definitions of ``pipe stats --explain``."""
    from chainpipe.core.services.dora import DEFINITIONS, dora_figures

    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks must be between 1 and {MAX_WEEKS}, got {weeks}")
    now = uow.now()
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [monday - timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]
    rows = []
    for start in starts:
        end = min(start + timedelta(weeks=1), now)
        if end > start:
            rows.append(dora_figures(uow, since=iso(start), until=iso(end), target=target))
    return {"weeks": rows, "target": target, "targets": deploy_targets(uow), "definitions": dict(DEFINITIONS)}


_TARGETS_SQL = text("""
WITH RECURSIVE t(target, n) AS (
  SELECT MIN(target), 1 FROM deploys
  UNION ALL
  SELECT (SELECT MIN(d.target) FROM deploys d WHERE d.target > t.target), n + 1
  FROM t WHERE t.target IS NOT NULL AND n < :limit
)
SELECT target FROM t WHERE target IS NOT NULL
""")


def deploy_targets(uow: UnitOfWork, limit: int = TARGETS_MAX) -> list[str]:
    """Distinct deploy targets: one seek on the (target, created_at) index per name."""
    return [r[0] for r in uow.session.execute(_TARGETS_SQL, {"limit": limit})]


# ---- the Slack App Home -------------------------------------------------------------------------

def home(uow: UnitOfWork, person: str) -> dict:
    """What waits for ``person`` (open gates they may decide), their recent decisions, and the
    last deploy to each target."""
    # Only a pipeline at a stage some template gates can wait for a decision: checking that on the
    # pipeline's row first spares a probe of the gates of every running pipeline at another stage.
    gated = sorted({stage for t in uow.settings.templates.values() for stage in t.gates.values()})
    stmt = (select(Pipeline, Gate).join(Gate, Gate.pipeline_id == Pipeline.id)
            .where(Pipeline.status == "running", Pipeline.current_stage.in_(gated), Gate.status == "pending",
                   Gate.stage == Pipeline.current_stage)
            .order_by(Pipeline.seq.desc()).limit(HOME_GATES))
    waiting = [
        {"pipeline": pipeline_view(p), "gate": g.name, "stage": g.stage, "required": g.required_approvals}
        for p, g in uow.session.exec(stmt)
        if gate_state(p, g) == "open" and can_decide(p, g, person, uow.settings.policy(g.name)).allowed
    ]
    decided = uow.session.exec(select(Approval, Gate.name).join(Gate, Gate.id == Approval.gate_id)
                               .where(Approval.person == person).order_by(Approval.seq.desc()).limit(HOME_ROWS))
    return {"person": person, "waiting": waiting,
            "decisions": [approval_view(a) | {"pipeline_id": a.pipeline_id, "gate": name} for a, name in decided],
            "deploys": last_deploy_per_target(uow)}


def last_deploy_per_target(uow: UnitOfWork, limit: int = HOME_ROWS) -> list[dict]:
    out = []
    for target in deploy_targets(uow, limit):
        dep = uow.session.exec(select(Deploy).where(Deploy.target == target)
                               .order_by(Deploy.created_at.desc(), Deploy.seq.desc()).limit(1)).first()
        out.append(dep)
    verdicts = deploy_verdicts(uow, [d.id for d in out])
    return [deploy_view(d) | {"verdict": verdicts.get(d.id, "unknown")} for d in out]


# ---- web sessions -------------------------------------------------------------------------------

def personal_token(uow: UnitOfWork, token_id: str) -> dict | None:
    """The token a web session was opened with, while it is active and personal; else None."""
    from chainpipe.core.models import ApiToken
    from chainpipe.core.services.tokens import token_view

    row = uow.session.exec(select(ApiToken).where(ApiToken.id == token_id)).first()
    if row is None or row.revoked_at is not None or row.kind != "personal" or not row.person:
        return None
    return token_view(row)
