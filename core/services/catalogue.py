"""Catalogue use cases. They read settings only, never the database."""

from __future__ import annotations

from chainpipe.core import catalogue as cat
from chainpipe.core.config import Settings


def show_config(settings: Settings) -> dict:
    return settings.public() | {
        "stages": list(cat.STAGES),
        "deploy_strategies": list(cat.DEPLOY_STRATEGIES),
        "artifact_types": list(cat.ARTIFACT_TYPES),
        "statuses": list(cat.PIPELINE_STATUSES),
    }


def list_templates(settings: Settings) -> list[dict]:
    return [t.as_dict() for t in settings.templates.values()]


def list_stages(settings: Settings) -> list[dict]:
    return [
        {"id": s, "position": i + 1, "aliases": list(cat.STAGE_ALIASES[s]), "description": cat.STAGE_DESCRIPTIONS[s]}
        for i, s in enumerate(cat.STAGES)
    ]


def list_strategies(settings: Settings) -> list[dict]:
    return [{"id": k, "description": v} for k, v in cat.DEPLOY_STRATEGIES.items()]


def list_statuses(settings: Settings) -> dict:
    from chainpipe.core.machine import PIPELINE

    return {
        "pipeline": list(cat.PIPELINE_STATUSES),
        "terminal": sorted(PIPELINE.terminal),
        "stage": list(cat.STAGE_STATUSES),
        "gate": list(cat.GATE_STATUSES),
        "deploy": list(cat.DEPLOY_STATUSES),
        "artifact_types": list(cat.ARTIFACT_TYPES),
        "health": list(cat.HEALTH_VERDICTS),
    }
