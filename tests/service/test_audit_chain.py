"""The audit hash chain: a clean log verifies; an edited, deleted, swapped or inserted row is found
at the right row; a truncated tail is caught by the head; exports verify offline and with a key."""

from __future__ import annotations

import json

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.db import get_engine
from chainpipe.core.services.audit import ChainBroken, verify_audit
from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.pipelines import advance_stage, pause_pipeline, resume_pipeline
from chainpipe.core.services.tokens import create_token, revoke_token
from sqlalchemy import text

from tests.service.helpers import race, running_pipeline


def busy_pipeline(run, alice, bob) -> str:
    pid = running_pipeline(run, alice)
    run(advance_stage, alice, pid, "review")
    run(pause_pipeline, alice, pid)
    run(resume_pipeline, alice, pid)
    run(approve_gate, bob, pid, "code-review")
    return pid


def seqs(settings, pid) -> list[int]:
    with get_engine(settings.database_url).connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT seq FROM audit_events WHERE chain = :c ORDER BY seq"),
                                           {"c": f"pipeline:{pid}"})]


def sql(settings, statement: str, **params) -> None:
    with get_engine(settings.database_url).begin() as conn:
        conn.execute(text(statement), params)


def test_a_clean_log_verifies_per_pipeline_and_in_full(run, settings, alice, bob):
    pid = busy_pipeline(run, alice, bob)
    run(create_token, alice, "ci")
    run(revoke_token, alice, "ci")
    one = verify_audit(settings, pipeline_id=pid)
    assert one["ok"] and one["chains"] == 1 and one["rows"] == len(seqs(settings, pid))
    full = verify_audit(settings, all=True)
    assert full["ok"] and full["chains"] == 2 and full["rows"] == one["rows"] + 2


def test_an_edited_field_is_found_at_its_row(run, settings, alice, bob):
    pid = busy_pipeline(run, alice, bob)
    target = seqs(settings, pid)[2]
    sql(settings, "UPDATE audit_events SET actor = 'mallory' WHERE seq = :s", s=target)
    with pytest.raises(ChainBroken, match=f"audit chain pipeline:{pid} is broken at row {target}: the row was edited"):
        verify_audit(settings, pipeline_id=pid)
    with pytest.raises(ChainBroken, match=f"row {target}"):
        verify_audit(settings, all=True)


def test_a_deleted_row_is_found_at_the_row_after_it(run, settings, alice, bob):
    pid = busy_pipeline(run, alice, bob)
    rows = seqs(settings, pid)
    sql(settings, "DELETE FROM audit_events WHERE seq = :s", s=rows[1])
    with pytest.raises(ChainBroken, match=f"broken at row {rows[2]}: a row before it was deleted"):
        verify_audit(settings, pipeline_id=pid)


def test_a_deleted_last_row_is_caught_by_the_chain_head(run, settings, alice, bob):
    pid = busy_pipeline(run, alice, bob)
    sql(settings, "DELETE FROM audit_events WHERE seq = :s", s=seqs(settings, pid)[-1])
    with pytest.raises(ChainBroken, match="broken at its head"):
        verify_audit(settings, pipeline_id=pid)


def test_two_swapped_rows_are_found(run, settings, alice, bob):
    pid = busy_pipeline(run, alice, bob)
    a, b = seqs(settings, pid)[1:3]
    columns = "actor, surface, entity, entity_id, action, from_state, to_state, reason, data, prev_hash, hash"
    with get_engine(settings.database_url).begin() as conn:
        ra = conn.execute(text(f"SELECT {columns} FROM audit_events WHERE seq = :s"), {"s": a}).one()._mapping
        rb = conn.execute(text(f"SELECT {columns} FROM audit_events WHERE seq = :s"), {"s": b}).one()._mapping
        sets = ", ".join(f"{c.strip()} = :{c.strip()}" for c in columns.split(","))
        conn.execute(text(f"UPDATE audit_events SET {sets} WHERE seq = :seq"), dict(rb) | {"seq": a})
        conn.execute(text(f"UPDATE audit_events SET {sets} WHERE seq = :seq"), dict(ra) | {"seq": b})
    with pytest.raises(ChainBroken, match=f"broken at row {a}"):
        verify_audit(settings, pipeline_id=pid)


def test_an_inserted_row_is_found(run, settings, alice, bob):
    pid = busy_pipeline(run, alice, bob)
    with get_engine(settings.database_url).begin() as conn:
        last = conn.execute(text("SELECT * FROM audit_events WHERE chain = :c ORDER BY seq DESC LIMIT 1"),
                            {"c": f"pipeline:{pid}"}).one()._mapping
        row = {k: v for k, v in last.items() if k != "seq"} | {"action": "approve", "actor": "mallory"}
        conn.execute(text(f"INSERT INTO audit_events ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"),
                     row)
    with pytest.raises(ChainBroken, match="broken at row"):
        verify_audit(settings, pipeline_id=pid)


def test_verify_needs_one_thing_to_check(settings):
    from chainpipe.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="say what to verify"):
        verify_audit(settings)


def _export(run, alice, pid, path) -> dict:
    from chainpipe.core.services.queries import export_pipeline

    data = run(export_pipeline, alice, pid, "json")
    path.write_text(json.dumps(data), encoding="utf-8")
    return data


def test_an_export_verifies_offline_and_one_changed_byte_fails(run, settings, alice, bob, tmp_path):
    pid = busy_pipeline(run, alice, bob)
    path = tmp_path / "export.json"
    data = _export(run, alice, pid, path)
    assert data["audit_chain"]["head"]["length"] == len(seqs(settings, pid))
    assert verify_audit(settings, file=str(path))["ok"]
    text_ = path.read_text(encoding="utf-8")
    at = text_.index('"actor": "bob"', text_.index('"audit_chain"'))
    path.write_text(text_[:at] + '"actor": "bot"' + text_[at + len('"actor": "bob"'):], encoding="utf-8")
    with pytest.raises(ChainBroken, match="the row was edited"):
        verify_audit(settings, file=str(path))
    path.write_text(text_[: len(text_) // 2], encoding="utf-8")
    with pytest.raises(ChainBroken, match="is not a readable export"):
        verify_audit(settings, file=str(path))


def _keypair(tmp_path, name):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_a_signed_export_verifies_with_the_right_key_only(run, env, config_file, alice, bob, tmp_path):
    private, public = _keypair(tmp_path, "team")
    _, other = _keypair(tmp_path, "other")
    config_file(f'[audit]\nsigning_key = "{private}"\n')
    run.reload(env)
    pid = busy_pipeline(run, alice, bob)
    path = tmp_path / "export.json"
    data = _export(run, alice, pid, path)
    assert data["audit_chain"]["signature"]["algorithm"] == "ed25519"
    assert verify_audit(run.settings, file=str(path), public_key=str(public))["signature"] == "valid"
    with pytest.raises(ChainBroken, match="the signature does not match"):
        verify_audit(run.settings, file=str(path), public_key=str(other))
    # A forger who rewrites a row and recomputes the whole chain still cannot re-sign its head.
    from chainpipe.core.rules.chain import link

    chain = data["audit_chain"]
    chain["rows"][0]["actor"] = "mallory"
    prev = None
    for row in chain["rows"]:
        row["prev_hash"], row["hash"] = prev, link(prev, row)
        prev = row["hash"]
    chain["head"]["hash"] = prev
    path.write_text(json.dumps(data), encoding="utf-8")
    assert verify_audit(run.settings, file=str(path))["ok"]  # consistent, unsigned check passes
    with pytest.raises(ChainBroken, match="the signature does not match"):
        verify_audit(run.settings, file=str(path), public_key=str(public))


OPS = 170  # per process: 6 x 170 > 1,000 operations


def _random_writer(env, pids, person, barrier, out):
    import random

    from chainpipe.core.config import load_settings
    from chainpipe.core.services.artifacts import add_artifact
    from chainpipe.core.services.monitoring import record_metric
    from chainpipe.core.services.tokens import create_token as make_token
    from chainpipe.core.uow import UnitOfWork

    settings, actor, rng = load_settings(env), Actor(person), random.Random(person)
    barrier.wait()
    errors = []
    for i in range(OPS):
        pid = rng.choice(pids)
        op = rng.random()
        try:
            with UnitOfWork(settings) as uow:
                if op < 0.45:
                    add_artifact(uow, actor, pid, name=f"a{i % 3}", type="log", uri=f"s3://x/{person}/{i}")
                elif op < 0.9:
                    record_metric(uow, actor, pid, metric="cpu", value=str(rng.random() * 90))
                else:
                    make_token(uow, actor, f"{person}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported to the parent test
            errors.append(f"{exc.__class__.__name__}: {exc}")
    out.put(errors)


@pytest.mark.slow
def test_a_thousand_concurrent_writes_from_six_processes_leave_clean_chains(run, env, settings, alice):
    pids = [running_pipeline(run, alice) for _ in range(3)]
    errors = race(_random_writer, [(env, pids, f"w{n}") for n in range(6)])
    assert [e for batch in errors for e in batch] == []
    report = verify_audit(settings, all=True)
    with get_engine(settings.database_url).connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*) FROM audit_events")).scalar()
    assert report["ok"] and report["rows"] == stored > 500 and report["chains"] == 4
