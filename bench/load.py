"""Bulk-load a realistic history (pipelines with stages and gates, deploys, monitor events)
straight through SQLAlchemy Core, in batches, for the benchmark's large-database phase."""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert

from core.catalogue import BUILTIN_TEMPLATES
from core.models import AuditEvent, Deploy, Gate, MonitorEvent, Pipeline, Stage

BATCH = 5000
STATUSES = ["created", "running", "paused", "completed", "failed", "cancelled"]
STRATEGIES = ["blue-green", "canary", "rolling", "recreate", "shadow", "dark-launch"]
DEPLOY_STATUSES = ["succeeded", "succeeded", "succeeded", "failed", "rolled-back", "in-progress"]
METRICS = ["error_rate", "latency_ms", "cpu", "memory", "throughput"]


def _hex() -> str:
    return secrets.token_hex(6)


def _flush(conn, table, rows: list) -> None:
    if rows:
        conn.execute(insert(table), rows)
        rows.clear()


def load_history(engine, pipelines: int, events: int, event_pipelines: int = 1000, seed: int = 7) -> list[str]:
    """Insert the history; return the ids of the pipelines that carry the monitor events."""
    rnd = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    names = list(BUILTIN_TEMPLATES)
    carriers: list[tuple[str, str]] = []
    buffers: dict = {Pipeline: [], Stage: [], Gate: [], Deploy: [], AuditEvent: []}
    with engine.begin() as conn:
        for i in range(pipelines):
            tpl = BUILTIN_TEMPLATES[names[i % len(names)]]
            pid = f"pipe-{_hex()}"
            created = start + timedelta(minutes=5 * i)
            status = STATUSES[rnd.randrange(len(STATUSES))]
            buffers[Pipeline].append(dict(
                id=pid, name=f"bulk {i}", template=tpl.name, status=status,
                current_stage=tpl.stages[0] if status != "created" else None, created_by="bulk",
                created_at=created, updated_at=created))
            for pos, stage in enumerate(tpl.stages):
                buffers[Stage].append(dict(id=f"stg-{_hex()}", pipeline_id=pid, name=stage, position=pos,
                                           status="pending"))
            for gate, stage in tpl.gates.items():
                buffers[Gate].append(dict(id=f"gate-{_hex()}", pipeline_id=pid, name=gate, stage=stage,
                                          status="pending", round=1, required_approvals=1))
            buffers[AuditEvent].append(dict(at=created, actor="bulk", surface="cli", entity="pipeline",
                                            entity_id=pid, pipeline_id=pid, action="create", to_state="created",
                                            data="{}"))
            if i % 2 == 0:
                did = f"dep-{_hex()}"
                at = created + timedelta(hours=rnd.randrange(1, 72))
                buffers[Deploy].append(dict(
                    id=did, pipeline_id=pid, strategy=STRATEGIES[rnd.randrange(6)],
                    target=("production", "staging")[i % 4 == 0], status=DEPLOY_STATUSES[rnd.randrange(6)],
                    created_by="bulk", surface="github", created_at=at, updated_at=at, finished_at=at))
                if len(carriers) < event_pipelines:
                    carriers.append((pid, did))
            if len(buffers[Stage]) >= BATCH:
                for table, rows in buffers.items():
                    _flush(conn, table, rows)
        for table, rows in buffers.items():
            _flush(conn, table, rows)
        rows = []
        for n in range(events):
            pid, did = carriers[n % len(carriers)]
            rows.append(dict(id=f"mon-{_hex()}", pipeline_id=pid, deploy_id=did, metric=METRICS[n % 5],
                             value=rnd.random(), actor="bulk", surface="github",
                             recorded_at=start + timedelta(seconds=n)))
            if len(rows) >= BATCH:
                _flush(conn, MonitorEvent, rows)
        _flush(conn, MonitorEvent, rows)
    return [pid for pid, _ in carriers]
