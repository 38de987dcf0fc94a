"""The V2 governance commands (SPEC §1.9), as grammar data. Importing this module adds them to
``core.grammar.COMMANDS``; ``core.grammar`` imports it at its end, so either import order works."""

from __future__ import annotations

from core.grammar import COMMANDS, Command, arg, opt

G = "core.services.governance:"
R = "core.services.governance_runs:"

GPID = arg("pipeline_id", "Governed pipeline id (your choice, e.g. org/repo:deploy)", "PIPELINE_ID")
RID = arg("run_id", "Run id", "RUN_ID")
REASON = arg("reason", "Why (recorded on the run and in the audit trail)", "REASON", required=False)
NOW = opt("now", "Evaluate as of this ISO-8601 time instead of the clock (reproducible sweeps)", metavar="TIME")
VALUE = arg("value", "A positive number; decimals are floored", "VALUE")


def _gov(name: str, help: str, handler: str, params=(), kind: str = "write", examples: tuple[str, ...] = ()):
    return Command(name, help, handler, tuple(params), kind=kind, group="governance", examples=examples)


V2_COMMANDS: tuple[Command, ...] = (
    _gov("enums-v2", "List V2 pipeline and run statuses, transitions and settings",
         "core.services.governance_enums:list_enums_v2", kind="catalogue"),
    _gov("config-v2", "Show the V2 caps and thresholds in force", G + "show_config_v2", kind="read"),
    _gov("set-max-active-pipelines-v2", "Set the cap of active governed pipelines per owner (default 10)",
         G + "set_max_active_pipelines_v2", (VALUE,), examples=("pipe set-max-active-pipelines-v2 12",)),
    _gov("set-max-pending-runs-v2", "Set the cap of queued + running runs per governed pipeline (default 20)",
         G + "set_max_pending_runs_v2", (VALUE,)),
    _gov("set-pipeline-idle-ms-v2", "Set after how many ms untouched an active pipeline is auto-paused",
         G + "set_pipeline_idle_ms_v2", (VALUE,), examples=("pipe set-pipeline-idle-ms-v2 86400000",)),
    _gov("set-run-stuck-ms-v2", "Set after how many ms running a run is auto-failed", G + "set_run_stuck_ms_v2",
         (VALUE,)),
    _gov("register-pipeline-v2", "Register a governed pipeline (status pending)", G + "register_pipeline_v2", (
        GPID, arg("owner", "Owner (person or team) the active-pipeline cap applies to", "OWNER"),
        opt("name", "Display name"),
    ), examples=('pipe register-pipeline-v2 web:deploy alice --name "web deploys"',)),
    _gov("activate-pipeline-v2", "Activate a pending or paused governed pipeline (owner cap applies to pending)",
         G + "activate_pipeline_v2", (GPID,)),
    _gov("pause-pipeline-v2", "Pause an active governed pipeline", G + "pause_pipeline_v2", (GPID,)),
    _gov("archive-pipeline-v2", "Archive a governed pipeline for good", G + "archive_pipeline_v2", (GPID,)),
    _gov("touch-pipeline-v2", "Record activity on a governed pipeline (resets its idle clock)",
         G + "touch_pipeline_v2", (GPID,)),
    _gov("get-pipeline-v2", "Show a governed pipeline and its run counts", G + "get_pipeline_v2", (GPID,),
         kind="read"),
    _gov("list-pipelines-v2", "List governed pipelines, newest first", G + "list_pipelines_v2", (
        opt("owner", "Only this owner"), opt("status", "pending, active, paused or archived"),
    ), kind="read"),
    _gov("create-run-v2", "Queue a run of an active governed pipeline (run cap applies)", R + "create_run_v2", (
        RID, arg("pipeline_id", "Governed pipeline id", "PIPELINE_ID"), opt("trigger", "What started it, e.g. push"),
    ), examples=("pipe create-run-v2 run-1 web:deploy --trigger push",)),
    _gov("start-run-v2", "Start a queued run", R + "start_run_v2", (RID,)),
    _gov("complete-run-v2", "Complete a running run", R + "complete_run_v2", (RID,)),
    _gov("fail-run-v2", "Fail a running run", R + "fail_run_v2", (RID, REASON)),
    _gov("cancel-run-v2", "Cancel a queued or running run", R + "cancel_run_v2", (RID, REASON)),
    _gov("get-run-v2", "Show a run", R + "get_run_v2", (RID,), kind="read"),
    _gov("list-runs-v2", "List runs, newest first", R + "list_runs_v2", (
        opt("pipeline", "Only runs of this governed pipeline"),
        opt("status", "queued, running, completed, failed or cancelled"),
    ), kind="read"),
    _gov("auto-pause-idle-v2", "Pause active pipelines untouched for at least the idle threshold",
         R + "auto_pause_idle_v2", (NOW,), examples=("pipe auto-pause-idle-v2 --now 2026-11-05T09:00:00Z",)),
    _gov("auto-fail-stuck-v2", "Fail runs running for at least the stuck threshold (reason auto-fail-stuck)",
         R + "auto_fail_stuck_v2", (NOW,)),
    _gov("gov-stats-v2", "Counts per status (zero-filled) and the caps in force", R + "gov_stats_v2", (
        opt("owner", "Counts for this owner, with its active pipelines against the cap"),
    ), kind="read"),
)

COMMANDS.update((c.name, c) for c in V2_COMMANDS)
