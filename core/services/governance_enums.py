"""V2 governance vocabulary: statuses, the persisted settings with their defaults and bounds.

Imports no database code, so `pipe enums-v2` answers from this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainpipe.core.config import Settings
from chainpipe.core.machine import PIPELINE_V2, RUN_V2

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class GovSetting:
    """One persisted V2 setting: stored under ``key`` in the ``settings`` table."""

    name: str
    key: str
    default: int
    maximum: int
    help: str


MAX_ACTIVE = GovSetting("max_active_pipelines_per_owner", "gov.max_active_pipelines_per_owner", 10, 1_000_000,
                        "active governed pipelines one owner may have (checked when activating from pending)")
MAX_PENDING_RUNS = GovSetting("max_pending_runs_per_pipeline", "gov.max_pending_runs_per_pipeline", 20, 1_000_000,
                              "queued + running runs one governed pipeline may have")
PIPELINE_IDLE_MS = GovSetting("pipeline_idle_ms", "gov.pipeline_idle_ms", 3 * DAY_MS, 100 * 365 * DAY_MS,
                              "an active pipeline untouched this long is auto-paused")
RUN_STUCK_MS = GovSetting("run_stuck_ms", "gov.run_stuck_ms", 10 * 60 * 1000, 100 * 365 * DAY_MS,
                          "a run running this long is auto-failed")

GOV_SETTINGS: tuple[GovSetting, ...] = (MAX_ACTIVE, MAX_PENDING_RUNS, PIPELINE_IDLE_MS, RUN_STUCK_MS)

AUTO_PAUSE_REASON = "auto-pause-idle"
AUTO_FAIL_REASON = "auto-fail-stuck"


def _rows(machine) -> list[dict]:
    return [{"from": src, "trigger": trig, "to": dst} for src, trig, dst in machine.rows]


def list_enums_v2(settings: Settings) -> dict:
    return {
        "pipeline_statuses": list(PIPELINE_V2.states),
        "pipeline_initial": PIPELINE_V2.initial,
        "pipeline_terminal": sorted(PIPELINE_V2.terminal),
        "pipeline_transitions": _rows(PIPELINE_V2),
        "run_statuses": list(RUN_V2.states),
        "run_initial": RUN_V2.initial,
        "run_terminal": sorted(RUN_V2.terminal),
        "run_transitions": _rows(RUN_V2),
        "settings": {s.name: {"default": s.default, "maximum": s.maximum, "help": s.help} for s in GOV_SETTINGS},
        "auto_fail_reason": AUTO_FAIL_REASON,
        "auto_pause_reason": AUTO_PAUSE_REASON,
    }
