"""`pipe audit verify --all` over a large log: time and peak memory.

    python -m bench.audit_verify [--rows 1000000] [--pipelines 100000] [--url sqlite:///…]

Writes ROWS audit rows spread over PIPELINES pipeline chains, correctly linked (as the unit of
work links them), then verifies every chain and prints wall time, CPU time and peak RSS before
and after, so a verify that loaded the log into memory would show.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(url: str, rows: int, pipelines: int) -> None:
    from chainpipe.core.db import get_engine
    from chainpipe.core.models import AuditChain, AuditEvent
    from chainpipe.core.rules.chain import link

    engine = get_engine(url)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    heads: dict[str, tuple[str | None, int]] = {}
    batch = []
    table = AuditEvent.__table__
    with engine.begin() as conn:
        for i in range(rows):
            pid = f"pipe-{i % pipelines:012x}"
            chain = f"pipeline:{pid}"
            row = {"chain": chain, "at": start + timedelta(seconds=i), "actor": "bench", "principal": "os:bench",
                   "on_behalf_of": None, "surface": "cli", "entity": "pipeline", "entity_id": pid,
                   "pipeline_id": pid, "action": "stage", "from_state": "code", "to_state": "review",
                   "reason": None, "run_url": None, "data": json.dumps({"i": i})}
            prev, length = heads.get(chain, (None, 0))
            row["prev_hash"], row["hash"] = prev, link(prev, row)
            heads[chain] = (row["hash"], length + 1)
            batch.append(row)
            if len(batch) == 20_000:
                conn.execute(table.insert(), batch)
                batch.clear()
        if batch:
            conn.execute(table.insert(), batch)
        conn.execute(AuditChain.__table__.insert(),
                     [{"chain": c, "head_hash": h, "length": n} for c, (h, n) in heads.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pipelines", type=int, default=100_000)
    parser.add_argument("--url")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/audit.db"
    from chainpipe.core.config import load_settings
    from chainpipe.core.services.audit import verify_audit

    t0 = time.perf_counter()
    load(url, args.rows, args.pipelines)
    print(f"loaded {args.rows:,} rows in {args.pipelines:,} chains in {time.perf_counter() - t0:.1f} s; "
          f"peak RSS {rss_mb():.0f} MB; load {os.getloadavg()[0]:.1f}")
    settings = load_settings({"PIPE_DATABASE_URL": url, "PIPE_DATA_DIR": tempfile.mkdtemp()})
    before = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    report = verify_audit(settings, all=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"verify --all: {report['rows']:,} rows, {report['chains']:,} chains, ok={report['ok']}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU; peak RSS {before:.0f} MB before, {rss_mb():.0f} MB after; "
          f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
