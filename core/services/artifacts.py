"""Artifacts are append-only: adding a name that exists creates version n+1; nothing is updated."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chainpipe.core.catalogue import ARTIFACT_TYPES, check_choice
from chainpipe.core.clock import new_id
from chainpipe.core.digest import file_digest
from chainpipe.core.errors import InvalidInput
from chainpipe.core.machine import PIPELINE, fire
from chainpipe.core.models import Artifact
from chainpipe.core.rules.evidence import covered_from, stale_by
from chainpipe.core.services.common import ARTIFACT_T, current_approvals, reopen_gate, template_stage
from chainpipe.core.uow import PIPELINES, Actor, Also, UnitOfWork
from chainpipe.core.views import artifact_view
from sqlalchemy import bindparam, func
from sqlmodel import select

# What artifact-add reads after locking the pipeline: the latest version of the name (:name).
LATEST_VERSION = Also((select(func.max(ARTIFACT_T.c.version)).where(
    ARTIFACT_T.c.pipeline_id == PIPELINES.c.id, ARTIFACT_T.c.name == bindparam("name"))
    .correlate(PIPELINES).scalar_subquery(),))

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_digest(digest: str) -> str:
    digest = digest.strip().lower()
    if not DIGEST_RE.match(digest):
        raise InvalidInput(f"digest must look like sha256:<64 hex digits>, got {digest}")
    return digest


def add_artifact(
    uow: UnitOfWork, actor: Actor, pipeline_id: str, name: str, type: str,
    path: str | None = None, uri: str | None = None, digest: str | None = None, stage: str | None = None,
    size: int | None = None,
) -> dict:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("an artifact needs a non-empty --name")
    check_choice("artifact type", type, ARTIFACT_TYPES)
    if path and uri:
        raise InvalidInput("give either --path or --uri, not both")
    if not (path or uri or digest):
        raise InvalidInput("say what the artifact is: --path FILE (hashed), --uri URI, or --digest sha256:… "
                           "with --size")
    digest = _check_digest(digest) if digest else None
    if uri and type == "docker-image" and "@sha256:" in uri:
        embedded = _check_digest(uri.rsplit("@", 1)[1])
        if digest and digest != embedded:
            raise InvalidInput(f"--digest {digest} does not match the image reference's {embedded}")
        digest = embedded
    if path:
        # Hash before the first statement: the write transaction starts only then.
        computed, size = file_digest(path)
        if digest and digest != computed:
            raise InvalidInput(f"--digest {digest} does not match the file's {computed}")
        digest, path = computed, str(Path(path).expanduser().resolve())
    pipeline, [(latest,)] = uow.get_pipeline_with(pipeline_id, LATEST_VERSION, name=name)
    fire(PIPELINE, pipeline, "add-artifact")
    stage = template_stage(uow, pipeline, stage) if stage else pipeline.current_stage
    row = uow.insert(ARTIFACT_T, {
        "id": new_id("art"), "pipeline_id": pipeline.id, "name": name, "version": (latest or 0) + 1, "type": type,
        "stage": stage, "path": path, "uri": uri, "digest": digest, "size": size,
        "created_by": uow.settings.person(actor.name), "surface": actor.surface, "run_url": actor.run_url,
        "created_at": uow.now(),
    })
    uow.audit(actor, "artifact", row.id, "add", pipeline_id=pipeline.id, to_state=f"v{row.version}",
              data={"name": name, "version": row.version, "digest": digest})
    if row.version > 1:
        _reopen_stale_approvals(uow, actor, pipeline.id, name, row.version)
    view = artifact_view(row)
    uow.commit()
    return view


def list_artifacts(uow: UnitOfWork, actor: Actor, pipeline_id: str, all_versions: bool = False) -> list[dict]:
    uow.get_pipeline(pipeline_id)
    stmt = select(Artifact).where(Artifact.pipeline_id == pipeline_id)
    if not all_versions:
        latest = (
            select(Artifact.name, func.max(Artifact.version).label("v"))
            .where(Artifact.pipeline_id == pipeline_id)
            .group_by(Artifact.name)
            .subquery()
        )
        stmt = stmt.join(latest, (Artifact.name == latest.c.name) & (Artifact.version == latest.c.v))
    rows = uow.session.exec(stmt.order_by(Artifact.name, Artifact.version))
    return [artifact_view(a) for a in rows]


_ARTIFACT_LATEST = (select(ARTIFACT_T).where(ARTIFACT_T.c.pipeline_id == bindparam("p"),
                                             ARTIFACT_T.c.name == bindparam("name"))
                    .order_by(ARTIFACT_T.c.version.desc()).limit(1))
_ARTIFACT_VERSION = _ARTIFACT_LATEST.where(ARTIFACT_T.c.version == bindparam("v"))


def get_artifact(uow: UnitOfWork, pipeline_id: str, ref: str) -> Artifact:
    """``NAME`` (latest version) or ``NAME@VERSION``."""
    from chainpipe.core.errors import NotFound

    name, _, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
    if version and not version.isdigit():
        raise InvalidInput(f"artifact version must be a number: {ref}")
    params = {"p": pipeline_id, "name": name} | ({"v": int(version)} if version else {})
    row = uow.record(ARTIFACT_T, _ARTIFACT_VERSION if version else _ARTIFACT_LATEST, params)
    if row is None:
        raise NotFound(f"artifact not found in pipeline {pipeline_id}: {ref}")
    return row


def _reopen_stale_approvals(uow: UnitOfWork, actor: Actor, pipeline_id: str, name: str, version: int) -> None:
    """A new version of an artifact an approval covered re-opens that approval's gate (the policy's
    ``reopen_on_new_artifact``), so the new version gets reviewed: like a push resetting approvals."""
    stale: dict[str, tuple] = {}
    for gate, approval in current_approvals(uow, pipeline_id):
        old = stale_by(covered_from(json.loads(approval.covered or "[]")), name, version)
        if old is not None and gate.status in ("approved", "pending") and gate.id not in stale:
            stale[gate.id] = (gate, old)
    for gate, old in stale.values():
        if uow.settings.policy(gate.name).reopen_on_new_artifact:
            reopen_gate(uow, actor, gate, f"artifact {name} changed from v{old.version} to v{version} after approval")
