"""Verifying the audit chains (core/rules/chain.py), in the database or in an export, and signing
an exported chain's head with the team's Ed25519 key (``[audit] signing_key``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from chainpipe.core.config import Settings
from chainpipe.core.errors import InvalidInput, NotFound, PipeError
from chainpipe.core.models import AuditChain, AuditEvent, GovPipeline, Pipeline
from chainpipe.core.rules.chain import FIELDS, Report, _moment, verify_rows
from chainpipe.core.uow import UnitOfWork
from sqlalchemy import func, select

SIGNED_PREFIX = "chainpipe-audit-head"


class ChainBroken(PipeError):
    """An audit chain does not verify: a row was edited, deleted, inserted or reordered."""

    title = "audit chain broken"
    http_status = 409


def chain_for(uow: UnitOfWork, some_id: str) -> str:
    """The chain of a pipeline or a governed pipeline id."""
    if uow.session.execute(select(Pipeline.id).where(Pipeline.id == some_id)).first():
        return f"pipeline:{some_id}"
    if uow.session.execute(select(GovPipeline.id).where(GovPipeline.id == some_id)).first():
        return f"gov:{some_id}"
    raise NotFound(f"pipeline not found: {some_id}")


COLUMNS = ("seq", *FIELDS, "prev_hash", "hash")


def _canonical_time(dialect: str, column):
    """The row's time as the chain's canonical text, formatted by the database (no per-row parsing)."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', always with microseconds, in UTC
        return (func.replace(column, " ", "T") + "Z").label("at")
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"').label("at")
    return column


def stream_rows(uow: UnitOfWork, chain: str | None, newest: int | None = None):
    """Rows ordered by (chain, seq), fetched in batches: memory stays flat however long the log.
    With ``newest`` (and a chain): only that many of the chain's last rows, in one fetch."""
    table = AuditEvent.__table__
    columns = [_canonical_time(uow.dialect, table.c.at) if c == "at" else table.c[c] for c in COLUMNS]
    stmt = select(*columns)
    if chain is not None:
        stmt = stmt.where(table.c.chain == chain)
    if newest is not None:  # a range at the end of the (chain, seq) index, read backwards
        last = stmt.order_by(table.c.seq.desc()).limit(newest).subquery()
        result = uow.session.execute(select(*last.c).order_by(last.c.seq))
    else:
        result = uow.session.connection().execution_options(stream_results=True, yield_per=5000).execute(
            stmt.order_by(table.c.chain, table.c.seq))
    for values in result:
        row = dict(zip(COLUMNS, values, strict=True))
        row["at"] = _moment(row["at"])
        yield row


def heads(uow: UnitOfWork, chain: str | None) -> dict[str, tuple[str, int]]:
    stmt = select(AuditChain.chain, AuditChain.head_hash, AuditChain.length)
    if chain is not None:
        stmt = stmt.where(AuditChain.chain == chain)
    return {c: (h or None, n) for c, h, n in uow.session.execute(stmt)}


def export_chain(uow: UnitOfWork, chain: str) -> dict:
    """A chain as an export carries it: every row as hashed, the head, and a signature when configured."""
    rows = [{k: r[k] for k in ("seq", *FIELDS, "prev_hash", "hash")} for r in stream_rows(uow, chain)]
    head, length = heads(uow, chain).get(chain, (None, 0))
    out = {"chain": chain, "head": {"hash": head, "length": length}, "rows": rows}
    key = uow.settings.audit_signing_key
    if key is not None:
        out["signature"] = sign_head(key, chain, head, length)
    return out


def _message(chain: str, head: str | None, length: int) -> bytes:
    return f"{SIGNED_PREFIX}\n{chain}\n{length}\n{head or ''}".encode()


def sign_head(key_path: Path, chain: str, head: str | None, length: int) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = _load_key(key_path, serialization.load_pem_private_key, "private")
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{key_path} is not an Ed25519 private key")
    return {"algorithm": "ed25519", "value": base64.b64encode(key.sign(_message(chain, head, length))).decode()}


def _load_key(path: Path, loader, kind: str):
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {kind} key {path}: {exc.strerror}") from None
    try:
        return loader(data, None) if kind == "private" else loader(data)
    except (ValueError, TypeError):
        raise InvalidInput(f"{path} is not a PEM {kind} key") from None


def check_signature(public_key: str, export: dict) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = _load_key(Path(public_key), serialization.load_pem_public_key, "public")
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{public_key} is not an Ed25519 public key")
    signature = export.get("signature")
    if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
        raise ChainBroken("the export carries no signature to check (was [audit] signing_key set?)")
    head = export.get("head") or {}
    try:
        key.verify(base64.b64decode(signature["value"], validate=True),
                   _message(export.get("chain", ""), head.get("hash"), int(head.get("length", 0))))
    except (InvalidSignature, ValueError, TypeError):
        raise ChainBroken("the signature does not match the chain head (wrong key, or the export was "
                          "changed)") from None


def _from_file(path: str) -> dict:
    try:
        document = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChainBroken(f"{path} is not a readable export: {exc.__class__.__name__}") from None
    chain = document.get("audit_chain") if isinstance(document, dict) else None
    if not isinstance(chain, dict) or not isinstance(chain.get("rows"), list):
        raise ChainBroken(f"{path} holds no audit chain (export it with `pipe export ID --format json`)")
    return chain


def _verify_export(chain: dict) -> Report:
    rows = [r for r in chain["rows"] if isinstance(r, dict)]
    if len(rows) != len(chain["rows"]) or any(r.get("chain") != chain.get("chain") for r in rows):
        raise ChainBroken("the export's rows are malformed or belong to another chain")
    head = chain.get("head") or {}
    try:
        recorded = {chain["chain"]: (head.get("hash"), int(head.get("length", -1)))}
    except (TypeError, ValueError):
        raise ChainBroken("the export's chain head is malformed") from None
    return verify_rows(sorted(rows, key=lambda r: (r.get("seq") or 0)), recorded)


def verify_audit(settings: Settings, pipeline_id: str | None = None, all: bool = False, file: str | None = None,
                 public_key: str | None = None) -> dict:
    """Recompute the chains: of one pipeline, of all (``all``), or of an export ``file`` offline."""
    if sum(bool(x) for x in (pipeline_id, all, file)) != 1:
        raise InvalidInput("say what to verify: a pipeline id, --all, or --file EXPORT.json")
    if public_key and not file:
        raise InvalidInput("--public-key checks the signature of an export: give --file too")
    if file:
        chain = _from_file(file)
        if public_key:
            check_signature(public_key, chain)
        report = _verify_export(chain)
        source = {"file": file, "signature": "valid" if public_key else "not checked"}
    else:
        with UnitOfWork(settings, write=False) as uow:
            chain = chain_for(uow, pipeline_id) if pipeline_id else None
            report = verify_rows(stream_rows(uow, chain), heads(uow, chain))
        source = {"database": "all chains" if all else chain}
    if not report.ok:
        raise ChainBroken(report.broken.line())
    return report.as_dict() | source
