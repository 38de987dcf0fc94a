"""Bulk-load a realistic history (pipelines with stages and gates, deploys, monitor events) straight
through SQLAlchemy Core, in batches, for the benchmark's large-database phase.

The history is what chainpipe itself would have left: each pipeline's audit row is linked into its
chain with the chain's head stored (so `pipe audit verify --all` passes on the loaded database), and
the stats aggregates are filled at the end by the same function the migration that introduced them
runs (core.aggregates.fill_all), which the benchmark times too.
"""

from __future__ import annotations

import random
import secrets
import time
from datetime import datetime, timedelta, timezone

from chainpipe.core.aggregates import fill_all
from chainpipe.core.catalogue import BUILTIN_TEMPLATES
from chainpipe.core.models import AuditChain, AuditEvent, Deploy, Gate, MonitorEvent, Pipeline, Stage
from chainpipe.core.rules.chain import link
from sqlalchemy import insert

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


def _created(pid: str, tpl: str, at: datetime) -> tuple[dict, dict]:
    """The pipeline's first audit row, linked as the head of its chain, and that head."""
    row = dict(at=at, actor="bulk", principal="os:bulk", on_behalf_of=None, surface="cli", entity="pipeline",
               entity_id=pid, pipeline_id=pid, action="create", from_state=None, to_state="created", reason=None,
               run_url=None, data='{"name": "bulk", "template": "' + tpl + '"}', chain=f"pipeline:{pid}",
               prev_hash=None)
    row["hash"] = link(None, row)
    return row, dict(chain=row["chain"], head_hash=row["hash"], length=1)


def load_history(engine, pipelines: int, events: int, event_pipelines: int = 1000, seed: int = 7) -> dict:
    """Insert the history and fill the aggregates. Returns the pipelines that carry the monitor events
    and how long the aggregates took to fill."""
    rnd = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    names = list(BUILTIN_TEMPLATES)
    carriers: list[tuple[str, str]] = []
    buffers: dict = {Pipeline: [], Stage: [], Gate: [], Deploy: [], AuditEvent: [], AuditChain: []}
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
            audit, head = _created(pid, tpl.name, created)
            buffers[AuditEvent].append(audit)
            buffers[AuditChain].append(head)
            if i % 2 == 0:
                did = f"dep-{_hex()}"
                at = created + timedelta(hours=rnd.randrange(1, 72))
                deploy_status = DEPLOY_STATUSES[rnd.randrange(6)]
                buffers[Deploy].append(dict(
                    id=did, pipeline_id=pid, strategy=STRATEGIES[rnd.randrange(6)],
                    target=("production", "staging")[i % 4 == 0], status=deploy_status,
                    created_by="bulk", surface="github", created_at=at, updated_at=at, finished_at=at,
                    rolled_back_at=at + timedelta(minutes=30) if deploy_status == "rolled-back" else None))
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
        t0 = time.perf_counter()
        fill_all(conn)
        fill_s = time.perf_counter() - t0
    return {"carriers": [pid for pid, _ in carriers], "fill_s": fill_s}
