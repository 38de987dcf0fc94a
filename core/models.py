"""The database tables. Every table has an integer ``seq`` (insertion order, used to break ties
in "newest first" lists) and, where users see it, a prefixed string ``id``.

Append-only tables (Approval, Artifact, MonitorEvent, VerdictEvent, AuditEvent) are never
updated or deleted by any code path; the services only insert into them.
"""

# No ``from __future__ import annotations`` here: with the field annotations as objects, neither
# pydantic nor SQLAlchemy evaluates ~200 annotation strings at import (measured: -41M instructions,
# ~2 % of a cold `pipe create`).
from datetime import datetime, timezone

from pydantic import ConfigDict
from sqlalchemy import DDL, BigInteger, DateTime, Index, TypeDecorator, UniqueConstraint, event, text
from sqlmodel import Field, SQLModel

# The table models are used as tables (SQLAlchemy) far more than as pydantic models: their pydantic
# schema is built on first validation, not at import (measured: -42M instructions, ~2 % of a cold
# `pipe create`).
DEFERRED = ConfigDict(defer_build=True)


class UTCDateTime(TypeDecorator):
    """Stores aware UTC datetimes; SQLite keeps no zone, so the zone is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def result_processor(self, dialect, coltype):
        """On SQLite, the text parsed and the zone put back in one function: what the decorator's
        generic wrapper does in three calls per value (≈ 3 % of a stage move's CPU, whose read
        brings back ~40 times). Other databases return aware values: the generic path."""
        parse = self.impl_instance.result_processor(dialect, coltype) if dialect.name == "sqlite" else None
        if parse is None:
            return super().result_processor(dialect, coltype)
        utc = timezone.utc

        def process(value):
            return None if value is None else parse(value).replace(tzinfo=utc)

        return process


# The principal of rows written before principals were recorded.
UNRECORDED = "unrecorded"


def _time(nullable: bool = True, index: bool = False):
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index over the rows matching ``where`` (SQL), on SQLite and PostgreSQL alike.

    The condition is handed to the dialect that creates the index, when it does: naming it for
    both up front (``sqlite_where=…, postgresql_where=…``) makes SQLAlchemy import both dialects
    when this module is imported, and a process on SQLite would load the PostgreSQL dialect for
    nothing (measured: 120M instructions, ~5 % of a cold `pipe create`)."""
    index = Index(name, *columns, unique=unique)

    def give_condition(target: Index, connection, **_kw) -> None:
        dialect = connection.dialect.name
        if dialect in ("sqlite", "postgresql") and target.dialect_options[dialect]["where"] is None:
            target.dialect_options[dialect]["where"] = text(where)

    event.listen(index, "before_create", give_condition)
    return index


class Pipeline(SQLModel, table=True):
    __tablename__ = "pipelines"
    model_config = DEFERRED
    __table_args__ = (
        Index("ix_pipelines_status_seq", "status", "seq"),
        Index("ix_pipelines_template_seq", "template", "seq"),
    )
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    name: str = Field(max_length=200)
    template: str = Field(max_length=64)
    status: str = Field(max_length=16)
    current_stage: str | None = Field(default=None, max_length=32)
    created_by: str = Field(max_length=200)
    created_at: datetime = _time(nullable=False, index=True)
    updated_at: datetime = _time(nullable=False)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    reason: str | None = None


class Stage(SQLModel, table=True):
    __tablename__ = "stages"
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    pipeline_id: str = Field(foreign_key="pipelines.id", index=True, max_length=32)
    name: str = Field(max_length=32)
    position: int
    status: str = Field(max_length=16)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()


class Gate(SQLModel, table=True):
    __tablename__ = "gates"
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    pipeline_id: str = Field(foreign_key="pipelines.id", index=True, max_length=32)
    name: str = Field(max_length=32)
    stage: str = Field(max_length=32)
    status: str = Field(max_length=16)
    # Bumped each time the gate is re-opened, so approvals of an earlier round stop counting.
    round: int = 1
    required_approvals: int = 1
    decided_at: datetime | None = _time()
    decided_by: str | None = None
    reason: str | None = None
    # Where the bot posted this gate's message, so later decisions update it.
    message_channel: str | None = None
    message_ts: str | None = None


class Approval(SQLModel, table=True):
    """One row per decision on a gate (approve / reject), kept forever."""

    __tablename__ = "approvals"
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("gate_id", "round", "person"),)
    seq: int | None = Field(default=None, primary_key=True)
    gate_id: str = Field(foreign_key="gates.id", index=True, max_length=32)
    pipeline_id: str = Field(index=True, max_length=32)
    round: int
    decision: str = Field(max_length=16)
    actor: str = Field(max_length=200)
    person: str = Field(max_length=200)
    surface: str = Field(max_length=16)
    reason: str | None = None
    run_url: str | None = None
    created_at: datetime = _time(nullable=False)
    # Who proved the request (slack:U…, token:<name>, os:<user>), and an unproven claim if any.
    principal: str = Field(default=UNRECORDED, max_length=200)
    on_behalf_of: str | None = Field(default=None, max_length=200)
    # What the decision covered: the latest version of each artifact then, as JSON
    # ([{"name", "version", "digest"}]); core/rules/evidence.py.
    covered: str = "[]"


class Artifact(SQLModel, table=True):
    __tablename__ = "artifacts"
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("pipeline_id", "name", "version"),)
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    pipeline_id: str = Field(foreign_key="pipelines.id", index=True, max_length=32)
    name: str = Field(max_length=200)
    version: int
    type: str = Field(max_length=32)
    stage: str | None = Field(default=None, max_length=32)
    path: str | None = None
    uri: str | None = None
    digest: str | None = Field(default=None, max_length=80)
    size: int | None = None
    created_by: str = Field(max_length=200)
    surface: str = Field(max_length=16)
    run_url: str | None = None
    created_at: datetime = _time(nullable=False)


class Deploy(SQLModel, table=True):
    __tablename__ = "deploys"
    model_config = DEFERRED
    __table_args__ = (
        Index("ix_deploys_pipeline_seq", "pipeline_id", "seq"),
        Index("ix_deploys_status_created", "status", "created_at"),
        Index("ix_deploys_target_created", "target", "created_at"),
    )
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    pipeline_id: str = Field(foreign_key="pipelines.id", max_length=32)
    strategy: str = Field(max_length=32)
    target: str = Field(max_length=200)
    artifact_id: str | None = Field(default=None, max_length=32)
    artifact_name: str | None = None
    artifact_version: int | None = None
    ref: str | None = Field(default=None, max_length=200)
    status: str = Field(max_length=16)
    created_by: str = Field(max_length=200)
    surface: str = Field(max_length=16)
    run_url: str | None = None
    created_at: datetime = _time(nullable=False)
    updated_at: datetime = _time(nullable=False)
    finished_at: datetime | None = _time()
    rolled_back_at: datetime | None = _time()
    rolled_back_by: str | None = None
    rollback_reason: str | None = None
    # Set when the deploy is mirrored elsewhere (a GitHub Deployment id).
    external_id: str | None = None
    # Which artifacts were reviewed and which built after review, as JSON (core/rules/evidence.py).
    evidence: str | None = None


class MonitorEvent(SQLModel, table=True):
    __tablename__ = "monitor_events"
    model_config = DEFERRED
    __table_args__ = (
        Index("ix_monitor_pipeline_metric_seq", "pipeline_id", "metric", "seq"),
        Index("ix_monitor_deploy_metric_seq", "deploy_id", "metric", "seq"),
        Index("ix_monitor_pipeline_seq", "pipeline_id", "seq"),
    )
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    pipeline_id: str = Field(foreign_key="pipelines.id", max_length=32)
    deploy_id: str | None = Field(default=None, max_length=32)
    metric: str = Field(max_length=100)
    value: float
    unit: str | None = Field(default=None, max_length=32)
    actor: str = Field(max_length=200)
    surface: str = Field(max_length=16)
    run_url: str | None = None
    recorded_at: datetime = _time(nullable=False)


class VerdictEvent(SQLModel, table=True):
    """A change of a metric's health verdict, citing the monitor events behind it."""

    __tablename__ = "verdict_events"
    model_config = DEFERRED
    __table_args__ = (Index("ix_verdicts_pipeline_metric_seq", "pipeline_id", "metric", "seq"),)
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    pipeline_id: str = Field(foreign_key="pipelines.id", max_length=32)
    deploy_id: str | None = Field(default=None, max_length=32, index=True)
    metric: str = Field(max_length=100)
    previous: str | None = Field(default=None, max_length=16)
    verdict: str = Field(max_length=16)
    regression: bool = False
    reason: str | None = None
    evidence: str = "[]"
    at: datetime = _time(nullable=False)


class AuditEvent(SQLModel, table=True):
    """One row per state change, from every surface. Also the outbox the server drains."""

    __tablename__ = "audit_events"
    model_config = DEFERRED
    __table_args__ = (
        Index("ix_audit_pipeline_seq", "pipeline_id", "seq"),
        Index("ix_audit_entity_seq", "entity_id", "seq"),
        Index("ix_audit_chain_seq", "chain", "seq"),
    )
    seq: int | None = Field(default=None, primary_key=True)
    at: datetime = _time(nullable=False)
    actor: str = Field(max_length=200)
    surface: str = Field(max_length=16)
    entity: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    pipeline_id: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=64)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str | None = Field(default=None, max_length=32)
    reason: str | None = None
    run_url: str | None = None
    data: str = "{}"
    principal: str = Field(default=UNRECORDED, max_length=200)
    on_behalf_of: str | None = Field(default=None, max_length=200)
    # The hash chain (core/rules/chain.py): which chain, the previous row's hash, this row's hash.
    chain: str = Field(default="global", max_length=240)
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str = Field(default="", max_length=64)


class AuditChain(SQLModel, table=True):
    """The head of each audit chain: its last hash and length. The row is also the chain's lock."""

    __tablename__ = "audit_chains"
    model_config = DEFERRED
    chain: str = Field(primary_key=True, max_length=240)
    head_hash: str = Field(max_length=64)
    length: int = Field(sa_type=BigInteger)


# The global chain's head exists from the start: its row is the lock that writers of tokens and
# settings take, so two first writers can't both create it.
event.listen(AuditChain.__table__, "after_create",
             DDL("INSERT INTO audit_chains (chain, head_hash, length) VALUES ('global', '', 0)"))


class StatCount(SQLModel, table=True):
    """How many rows have each value of a counted column (``pipelines.status`` / ``running`` → 12),
    kept by the unit of work in the transaction that inserts or changes them (core/aggregates.py),
    so `pipe stats` reads a few rows instead of counting the history."""

    __tablename__ = "stat_counts"
    model_config = DEFERRED
    name: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    n: int = Field(default=0, sa_type=BigInteger)


class DoraDeployment(SQLModel, table=True):
    """One row per deployment (a deploy that reached ``succeeded`` or was rolled back from
    ``in-progress``) with what the DORA figures need, kept in the transactions that change them
    (core/aggregates.py): `pipe stats` reads the rows of its window, whatever the history's size."""

    __tablename__ = "dora_deployments"
    model_config = DEFERRED
    __table_args__ = (
        Index("ix_dora_out", "out_at"),
        Index("ix_dora_target_out", "target", "out_at"),
        Index("ix_dora_target_created", "target", "deploy_created_at"),
        Index("ix_dora_restored_by", "restored_by"),
    )
    deploy_id: str = Field(primary_key=True, max_length=32)
    target: str = Field(max_length=200)
    deploy_created_at: datetime = _time(nullable=False)
    deploy_seq: int
    out_at: datetime = _time(nullable=False)  # when it went out: succeeded, else rolled back
    succeeded_at: datetime | None = _time()
    lead_seconds: float | None = None  # pipeline created → succeeded
    failed_at: datetime | None = _time()  # first unhealthy verdict or rollback, whichever came first
    restored_by: str | None = Field(default=None, max_length=32)  # the next healthy deploy to the target
    restored_at: datetime | None = _time()
    restore_seconds: float | None = None


class DoraDay(SQLModel, table=True):
    """The deployments that went out on one UTC day to one target (``""``: to any target): their
    counts, and their lead and restore times sorted, so the exact figures of a run of days come
    from one row per day. Derived from dora_deployments in the same transactions (core/aggregates.py)."""

    __tablename__ = "dora_days"
    model_config = DEFERRED
    target: str = Field(primary_key=True, max_length=200)
    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD
    deployments: int = 0
    succeeded: int = 0
    failures: int = 0
    restored: int = 0
    lead_seconds: str = "[]"  # JSON, ascending
    restore_seconds: str = "[]"  # JSON, ascending


class OutboxDelivery(SQLModel, table=True):
    """Which audit events a consumer (e.g. the Slack notifier) has delivered; at-least-once."""

    __tablename__ = "outbox_deliveries"
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("consumer", "audit_seq"),)
    seq: int | None = Field(default=None, primary_key=True)
    consumer: str = Field(max_length=32)
    audit_seq: int = Field(index=True)
    delivered_at: datetime = _time(nullable=False)
    result: str | None = None


class ApiToken(SQLModel, table=True):
    """An API token. ``personal`` tokens act as their ``person``; ``service`` tokens (CI, bots) act as
    themselves and may carry a claimed actor. A name is unique among active tokens only, so a
    revoked token's name can be used again."""

    __tablename__ = "api_tokens"
    model_config = DEFERRED
    __table_args__ = (
        partial_index("ux_api_tokens_active_name", "name", unique=True, where="revoked_at IS NULL"),
    )
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=32)
    name: str = Field(max_length=100, index=False)
    token_hash: str = Field(unique=True, max_length=128)
    created_by: str = Field(max_length=200)
    created_at: datetime = _time(nullable=False)
    revoked_at: datetime | None = _time()
    last_used_at: datetime | None = _time()
    # Kept for databases made before token kinds; every such token is a service token now.
    allow_actor_header: bool = False
    kind: str = Field(default="service", max_length=16)
    person: str | None = Field(default=None, max_length=200)


class SeenSlackRequest(SQLModel, table=True):
    """A Slack request the server accepted, by its signed timestamp and signature, so that the same
    request sent again (a replay, or a retry of one already run) runs nothing. Rows older than the
    signature window are pruned by the server: a request that old is refused as stale anyway."""

    __tablename__ = "seen_slack_requests"
    model_config = DEFERRED
    __table_args__ = (UniqueConstraint("timestamp", "signature"),)
    seq: int | None = Field(default=None, primary_key=True)
    timestamp: int = Field(sa_type=BigInteger)  # X-Slack-Request-Timestamp, Unix seconds
    signature: str = Field(max_length=80)


class GovPipeline(SQLModel, table=True):
    """A long-lived governed pipeline (V2), e.g. one per repository workflow."""

    __tablename__ = "gov_pipelines"
    model_config = DEFERRED
    __table_args__ = (Index("ix_gov_pipelines_owner_status", "owner", "status"),)
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=200)
    owner: str = Field(max_length=200)
    name: str | None = None
    status: str = Field(max_length=16, index=True)
    created_at: datetime = _time(nullable=False)
    updated_at: datetime = _time(nullable=False)
    last_touched_at: datetime = _time(nullable=False)
    activated_at: datetime | None = _time()  # first activation (kept through pause and resume)
    archived_at: datetime | None = _time()


class GovRun(SQLModel, table=True):
    __tablename__ = "gov_runs"
    model_config = DEFERRED
    __table_args__ = (Index("ix_gov_runs_pipeline_status", "pipeline_id", "status"),)
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=200)
    pipeline_id: str = Field(foreign_key="gov_pipelines.id", max_length=200)
    trigger: str | None = None
    status: str = Field(max_length=16, index=True)
    reason: str | None = None
    created_at: datetime = _time(nullable=False)
    updated_at: datetime = _time(nullable=False)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()


class GovOwner(SQLModel, table=True):
    """A row per owner, locked while activating so concurrent activations respect the cap."""

    __tablename__ = "gov_owners"
    model_config = DEFERRED
    owner: str = Field(primary_key=True, max_length=200)


class Setting(SQLModel, table=True):
    """Persisted settings changed at run time (the V2 caps and thresholds)."""

    __tablename__ = "settings"
    model_config = DEFERRED
    key: str = Field(primary_key=True, max_length=100)
    value: str


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    model_config = DEFERRED
    id: int = Field(default=1, primary_key=True)
    version: int


class SeenGitHubDelivery(SQLModel, table=True):
    """A GitHub webhook delivery the server accepted (``X-GitHub-Delivery``), so a redelivery of the
    same one — GitHub's own retry, or a replay of a captured request — runs nothing."""

    __tablename__ = "seen_github_deliveries"
    model_config = DEFERRED
    seq: int | None = Field(default=None, primary_key=True)
    delivery: str = Field(unique=True, max_length=80)
    event: str = Field(max_length=64)
    received_at: datetime = _time(nullable=False, index=True)


class DeploymentRequest(SQLModel, table=True):
    """A GitHub deployment protection rule waiting on a pipeline's gates: the job is held by GitHub
    until ``callback_url`` is answered. Also the answer's outbox: ``answer`` is decided once (from
    the gates), then delivered with backoff until ``answered_at`` is set."""

    __tablename__ = "deployment_requests"
    model_config = DEFERRED
    seq: int | None = Field(default=None, primary_key=True)
    callback_url: str = Field(unique=True, max_length=500)
    pipeline_id: str = Field(index=True, max_length=32)
    installation_id: int = Field(sa_type=BigInteger)
    repository: str = Field(max_length=200)
    environment: str = Field(max_length=255)
    run_id: int = Field(sa_type=BigInteger)
    run_url: str = Field(max_length=500)
    ref: str | None = Field(default=None, max_length=255)
    sha: str | None = Field(default=None, max_length=64)
    requested_at: datetime = _time(nullable=False)
    answer: str | None = Field(default=None, max_length=16)  # approved | rejected
    comment: str | None = None
    decided_at: datetime | None = _time()
    answered_at: datetime | None = _time()
    attempts: int = 0
    next_attempt_at: datetime | None = _time(index=True)
    last_error: str | None = None
