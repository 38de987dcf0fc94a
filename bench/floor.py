"""The raw-sqlite3 floor: the same writes as chainpipe's core operations, straight through Python's
sqlite3 module — the cost no layer above the driver can go under.

Each operation runs the statements chainpipe runs for it (core/services; `python -m bench.run
--statements` prints them), in one ``BEGIN IMMEDIATE`` transaction, on a database with chainpipe's
schema: the same reads, the same rows written (ids, JSON, the audit row hashed into its chain, the
chain head, the stats counters). What it leaves out is what a raw script can leave out: the state
machine, policies and input checks (it follows the benchmark's one happy path), SQLAlchemy, and the
JSON-ready views. Its database verifies with `pipe audit verify --all`, like chainpipe's.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

from chainpipe.core.clock import new_id
from chainpipe.core.rules.chain import link
from chainpipe.core.rules.evidence import Covered
from chainpipe.core.rules.metrics import DEFAULT_METRIC_RULES, judge, regression, verdict_reason
from chainpipe.core.services.monitoring import _BASELINE

PRINCIPAL = "os:bench"
PIPELINE_AND_HEAD = ("SELECT p.seq, p.status, p.current_stage, p.template, h.head_hash, h.length FROM pipelines p "
                     "LEFT JOIN audit_chains h ON h.chain = ? WHERE p.id = ?")
AUDIT = ("INSERT INTO audit_events (at, actor, surface, entity, entity_id, pipeline_id, action, from_state, to_state, "
         "reason, run_url, data, principal, on_behalf_of, chain, prev_hash, hash) "
         "VALUES (?, ?, 'cli', ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, ?, ?, ?)")
COUNT = ('INSERT INTO stat_counts (name, "key", n) VALUES (?, ?, ?) '
         'ON CONFLICT (name, "key") DO UPDATE SET n = stat_counts.n + excluded.n')
GATES_AND_DECISIONS = ("SELECT g.seq, g.id, g.name, g.stage, g.status, g.round, g.required_approvals, a.person, "
                       "a.round, a.decision, a.covered FROM gates g LEFT JOIN approvals a ON a.gate_id = g.id "
                       "WHERE g.pipeline_id = ? ORDER BY g.seq, a.seq")
BASELINE = str(_BASELINE)


def _stored(moment: datetime) -> str:
    """A time as chainpipe's SQLite columns hold it (UTC, no zone)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ")


class Floor:
    def __init__(self, path: str, actor: str = "bench"):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self.actor = actor

    def close(self) -> None:
        self.db.close()

    # ---- what every write does -----------------------------------------------------------------

    def _begin(self):
        c = self.db.cursor()
        c.execute("BEGIN IMMEDIATE")
        return c

    def _commit(self) -> None:
        self.db.execute("COMMIT")

    def _lock(self, c, pid: str) -> list:
        """The pipeline row with its chain's head (what chainpipe reads first on SQLite)."""
        row = list(c.execute(PIPELINE_AND_HEAD, (f"pipeline:{pid}", pid)).fetchone())
        row[4] = row[4] or None
        return row

    def _audit(self, c, head: list, pid: str, now: datetime, entity: str, entity_id: str, action: str,
               from_state=None, to_state=None, reason=None, data=None) -> None:
        """Append a row to the pipeline's chain; ``head`` is [hash, length] and moves along."""
        row = {"chain": f"pipeline:{pid}", "at": now, "actor": self.actor, "principal": PRINCIPAL,
               "on_behalf_of": None, "surface": "cli", "entity": entity, "entity_id": entity_id, "pipeline_id": pid,
               "action": action, "from_state": from_state, "to_state": to_state, "reason": reason, "run_url": None,
               "data": json.dumps(data or {}, ensure_ascii=False, sort_keys=True)}
        digest = link(head[0], row)
        c.execute(AUDIT, (_stored(now), self.actor, entity, entity_id, pid, action, from_state, to_state, reason,
                          row["data"], PRINCIPAL, row["chain"], head[0], digest))
        head[0], head[1] = digest, head[1] + 1

    def _head(self, c, pid: str, head: list) -> None:
        c.execute("UPDATE audit_chains SET head_hash = ?, length = ? WHERE chain = ?", (head[0], head[1],
                                                                                      f"pipeline:{pid}"))

    # ---- the operations ------------------------------------------------------------------------

    def create(self, template: str = "feature", stages=(), gates=()) -> str:
        now, pid = datetime.now(timezone.utc), new_id("pipe")
        c = self._begin()
        c.execute("INSERT INTO pipelines (id, name, template, status, created_by, created_at, updated_at) "
                  "VALUES (?, 'bench', ?, 'created', ?, ?, ?)", (pid, template, self.actor, _stored(now), _stored(now)))
        c.executemany("INSERT INTO stages (id, pipeline_id, name, position, status) VALUES (?, ?, ?, ?, 'pending')",
                      [(new_id("stg"), pid, s, i) for i, s in enumerate(stages)])
        c.executemany("INSERT INTO gates (id, pipeline_id, name, stage, status, round, required_approvals) "
                      "VALUES (?, ?, ?, ?, 'pending', 1, 1)", [(new_id("gate"), pid, g, s) for g, s in gates])
        head = [None, 0]
        self._audit(c, head, pid, now, "pipeline", pid, "create", to_state="created",
                    data={"name": "bench", "template": template})
        c.execute("INSERT INTO audit_chains (chain, head_hash, length) VALUES (?, ?, ?)",
                  (f"pipeline:{pid}", head[0], head[1]))
        c.executemany(COUNT, [("pipelines.status", "created", 1), ("pipelines.template", template, 1)])
        self._commit()
        return pid

    def start(self, pid: str) -> None:
        now = datetime.now(timezone.utc)
        c = self._begin()
        seq, _, _, _, *head = self._lock(c, pid)
        self._audit(c, head, pid, now, "pipeline", pid, "start", "created", "running")
        stage_seq, name, _ = c.execute("SELECT seq, name, status FROM stages WHERE pipeline_id = ? "
                                       "ORDER BY position LIMIT 1", (pid,)).fetchone()
        c.execute("UPDATE pipelines SET status = 'running', current_stage = ?, updated_at = ?, started_at = ? "
                  "WHERE seq = ?", (name, _stored(now), _stored(now), seq))
        c.execute("UPDATE stages SET status = 'running', started_at = ? WHERE seq = ?", (_stored(now), stage_seq))
        self._head(c, pid, head)
        c.executemany(COUNT, [("pipelines.status", "created", -1), ("pipelines.status", "running", 1)])
        self._commit()

    def stage(self, pid: str, target: str) -> None:
        now = datetime.now(timezone.utc)
        c = self._begin()
        seq, _, current, _, *head = self._lock(c, pid)
        stages = c.execute("SELECT seq, name, position, status FROM stages WHERE pipeline_id = ? ORDER BY position",
                           (pid,)).fetchall()
        gates = c.execute("SELECT name, stage, status FROM gates WHERE pipeline_id = ?", (pid,)).fetchall()
        self._move(c, head, pid, now, stages, gates, current, target)
        c.execute("UPDATE pipelines SET current_stage = ?, updated_at = ? WHERE seq = ?", (target, _stored(now), seq))
        self._head(c, pid, head)
        self._commit()

    def _move(self, c, head, pid, now, stages, gates, current, target) -> None:
        at = {name: position for _, name, position, _ in stages}
        left = [(s, name) for s, name, position, _ in stages if at[current] <= position < at[target]]
        names = {name for _, name in left}
        assert all(status == "approved" for _, stage, status in gates if stage in names), "gate not approved"
        c.executemany("UPDATE stages SET status = ?, finished_at = ? WHERE seq = ?",
                      [("completed" if name == current else "skipped", _stored(now), s) for s, name in left])
        dest = next(s for s, name, _, _ in stages if name == target)
        c.execute("UPDATE stages SET status = 'running', started_at = ? WHERE seq = ?", (_stored(now), dest))
        self._audit(c, head, pid, now, "pipeline", pid, "stage", current, target)

    def _gates(self, c, pid: str) -> tuple[dict, list]:
        """Gates by name, and the current-round approvals as (gate name, person, covered)."""
        gates, approved = {}, []
        for seq, gid, name, stage, status, round_, required, person, a_round, decision, covered in c.execute(
                GATES_AND_DECISIONS, (pid,)):
            gates.setdefault(name, (seq, gid, stage, status, round_, required))
            if decision == "approved" and a_round == round_:
                approved.append((name, person, covered))
        return gates, approved

    def _latest(self, c, pid: str) -> list[Covered]:
        latest = {}
        for name, version, digest in c.execute("SELECT name, version, digest FROM artifacts WHERE pipeline_id = ? "
                                               "ORDER BY seq", (pid,)):
            latest[name] = Covered(name, version, digest)
        return list(latest.values())

    def approve(self, pid: str, gate: str) -> None:
        now = datetime.now(timezone.utc)
        c = self._begin()
        _, _, _, _, *head = self._lock(c, pid)
        gates, _ = self._gates(c, pid)
        seq, gid, _, status, round_, required = gates[gate]
        covered = json.dumps([a.as_dict() for a in self._latest(c, pid)], sort_keys=True)
        c.execute("INSERT INTO approvals (gate_id, pipeline_id, round, decision, actor, person, surface, created_at, "
                  "principal, covered) VALUES (?, ?, ?, 'approved', ?, ?, 'cli', ?, ?, ?)",
                  (gid, pid, round_, self.actor, self.actor, _stored(now), PRINCIPAL, covered))
        self._audit(c, head, pid, now, "gate", gid, "approve", status, "approved",
                    data={"gate": gate, "approvals": 1, "required": required})
        c.execute("UPDATE gates SET status = 'approved', decided_at = ?, decided_by = ? WHERE seq = ?",
                  (_stored(now), self.actor, seq))
        self._head(c, pid, head)
        c.execute(COUNT, ("approvals.decision", "approved", 1))
        self._commit()

    def artifact_add(self, pid: str, name: str, type_: str, digest: str, uri: str) -> None:
        now, aid = datetime.now(timezone.utc), new_id("art")
        c = self._begin()
        _, _, current, _, *head = self._lock(c, pid)
        latest = c.execute("SELECT MAX(version) FROM artifacts WHERE pipeline_id = ? AND name = ?",
                           (pid, name)).fetchone()[0]
        version = (latest or 0) + 1
        c.execute("INSERT INTO artifacts (id, pipeline_id, name, version, type, stage, uri, digest, created_by, "
                  "surface, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'cli', ?)",
                  (aid, pid, name, version, type_, current, uri, digest, self.actor, _stored(now)))
        self._audit(c, head, pid, now, "artifact", aid, "add", to_state=f"v{version}",
                    data={"name": name, "version": version, "digest": digest})
        self._head(c, pid, head)
        c.execute(COUNT, ("artifacts", "", 1))
        self._commit()

    def deploy(self, pid: str, strategy: str, target: str) -> str:
        now, did = datetime.now(timezone.utc), new_id("dep")
        c = self._begin()
        seq, _, current, _, *head = self._lock(c, pid)
        gates, approved = self._gates(c, pid)
        reviewed = {}
        for gate, _, covered in approved:
            for item in json.loads(covered):
                reviewed.setdefault(item["name"], (item["version"], gate))
        labels = [Covered(i["name"], i["version"], i.get("digest")).label()
                  for _, _, covered in approved for i in json.loads(covered)]
        after = [a.label() for a in self._latest(c, pid) if a.name not in reviewed]
        stages = c.execute("SELECT seq, name, position, status FROM stages WHERE pipeline_id = ? ORDER BY position",
                           (pid,)).fetchall()
        self._move(c, head, pid, now, stages, [(g, s[2], s[3]) for g, s in gates.items()], current, "deploy")
        c.execute("INSERT INTO deploys (id, pipeline_id, strategy, target, status, created_by, surface, created_at, "
                  "updated_at, evidence) VALUES (?, ?, ?, ?, 'in-progress', ?, 'cli', ?, ?, ?)",
                  (did, pid, strategy, target, self.actor, _stored(now), _stored(now),
                   json.dumps({"reviewed": labels, "built_after_review": after}, sort_keys=True)))
        self._audit(c, head, pid, now, "deploy", did, "record", to_state="in-progress",
                    data={"strategy": strategy, "target": target, "ref": None, "artifact": None})
        c.execute("UPDATE pipelines SET current_stage = 'deploy', updated_at = ? WHERE seq = ?", (_stored(now), seq))
        self._head(c, pid, head)
        c.executemany(COUNT, [("deploys.status", "in-progress", 1), ("deploys.strategy", strategy, 1)])
        self._commit()
        return did

    def monitor_record(self, pid: str, metric: str, value: float) -> None:
        now, mid, rule = datetime.now(timezone.utc), new_id("mon"), DEFAULT_METRIC_RULES[metric]
        c = self._begin()
        _, _, _, _, *head = self._lock(c, pid)
        did, dseq, target, created = c.execute(
            "SELECT id, seq, target, created_at FROM deploys WHERE pipeline_id = ? ORDER BY seq DESC LIMIT 1",
            (pid,)).fetchone()
        c.execute("INSERT INTO monitor_events (id, pipeline_id, deploy_id, metric, value, actor, surface, "
                  "recorded_at) VALUES (?, ?, ?, ?, ?, ?, 'cli', ?)", (mid, pid, did, metric, value, self.actor,
                                                                       _stored(now)))
        rows = c.execute(BASELINE, {"p": pid, "m": metric, "d": did, "first": None, "created": created,
                                    "n": rule.baseline_window, "t": target, "dseq": dseq, "max": 2**31 - 1}).fetchall()
        pipeline_rows = [r for r in rows if r[0] == "pipeline"]
        rows = pipeline_rows or rows
        baseline = sum(r[4] for r in rows) / len(rows) if rows else None
        previous = c.execute("SELECT verdict FROM verdict_events WHERE pipeline_id = ? AND metric = ? "
                             "AND deploy_id = ? ORDER BY seq DESC LIMIT 1", (pid, metric, did)).fetchone()
        previous = previous[0] if previous else "unknown"
        verdict = judge(rule, value)
        if verdict != previous:
            vid, evidence = new_id("vrd"), [mid] + [r[2] for r in rows][:19]
            flag, why = regression(rule, value, baseline)
            reason = f"{metric}: {verdict_reason(rule, value, verdict)}; {why}"
            c.execute("INSERT INTO verdict_events (id, pipeline_id, deploy_id, metric, previous, verdict, regression, "
                      "reason, evidence, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (vid, pid, did, metric, previous, verdict, flag, reason, json.dumps(evidence), _stored(now)))
            self._audit(c, head, pid, now, "verdict", vid, verdict, previous, verdict, reason,
                        data={"metric": metric, "deploy_id": did, "value": value, "baseline": baseline,
                              "regression": flag, "evidence": evidence})
            self._head(c, pid, head)
        c.execute(COUNT, ("monitor_events", "", 1))
        self._commit()
