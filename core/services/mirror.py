"""Links between a deploy and its mirror elsewhere (today: a GitHub Deployment).

The external system is driven by an adapter; the core only remembers the link so later status
reports (from any run, any surface) reach the same external record.
"""

from __future__ import annotations

from chainpipe.core.errors import Conflict, InvalidInput
from chainpipe.core.uow import Actor, UnitOfWork
from chainpipe.core.views import deploy_view

MAX_EXTERNAL_ID = 200


def link_deploy(uow: UnitOfWork, actor: Actor, deploy_id: str, external_id: str) -> dict:
    """Store ``external_id`` on the deploy. Idempotent for the same id; a different id is a conflict."""
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > MAX_EXTERNAL_ID:
        raise InvalidInput(f"--external-id must be 1-{MAX_EXTERNAL_ID} characters")
    row = uow.get_deploy(deploy_id, lock=True)
    if row.external_id == external_id:
        return deploy_view(row) | {"changed": False}
    if row.external_id:
        raise Conflict(f"deploy {row.id} is already linked to {row.external_id}")
    row.external_id = external_id
    uow.audit(actor, "deploy", row.id, "link", pipeline_id=row.pipeline_id, data={"external_id": external_id})
    view = deploy_view(row) | {"changed": True}
    uow.commit()
    return view
