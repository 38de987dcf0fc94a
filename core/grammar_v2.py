"""The governance (V2) commands, as grammar data: governed pipelines and their runs
(docs/governance.md). Importing this module adds them to ``core.grammar.COMMANDS``;
``core.grammar`` imports it at its end, so either import order works."""

from __future__ import annotations

from chainpipe.core.grammar import COMMANDS, Command, arg, opt

GOV = "chainpipe.core.services.governance:"
RUNS = "chainpipe.core.services.governance_runs:"

GOV_PIPELINE_ID = arg("pipeline_id", "Governed pipeline id (your choice, e.g. org/repo:deploy)", "PIPELINE_ID")
RUN_ID = arg("run_id", "Run id", "RUN_ID")
REASON = arg("reason", "Why (recorded on the run and in the audit trail)", "REASON", required=False,
             multiline=True, max_length=2000)
NOW = opt("now", "Evaluate as of this ISO-8601 time instead of the clock (reproducible sweeps)", metavar="TIME",
          max_length=64)
VALUE = arg("value", "A positive number; decimals are floored", "VALUE", max_length=64)


def _gov(name: str, help: str, handler: str, params=(), kind: str = "write", examples: tuple[str, ...] = ()):
    return Command(name, help, handler, tuple(params), kind=kind, group="governance", examples=examples)


V2_COMMANDS: tuple[Command, ...] = (
    _gov("enums-v2", "List V2 pipeline and run statuses, transitions and settings",
         "chainpipe.core.services.governance_enums:list_enums_v2", kind="catalogue"),
    _gov("config-v2", "Show the V2 caps and thresholds in force", GOV + "show_config_v2", kind="read"),
    _gov("set-max-active-pipelines-v2", "Set the cap of active governed pipelines per owner (default 10)",
         GOV + "set_max_active_pipelines_v2", (VALUE,), examples=("pipe set-max-active-pipelines-v2 12",)),
    _gov("set-max-pending-runs-v2", "Set the cap of queued + running runs per governed pipeline (default 20)",
         GOV + "set_max_pending_runs_v2", (VALUE,)),
    _gov("set-pipeline-idle-ms-v2", "Set after how many ms untouched an active pipeline is auto-paused",
         GOV + "set_pipeline_idle_ms_v2", (VALUE,), examples=("pipe set-pipeline-idle-ms-v2 86400000",)),
    _gov("set-run-stuck-ms-v2", "Set after how many ms running a run is auto-failed", GOV + "set_run_stuck_ms_v2",
         (VALUE,)),
    _gov("register-pipeline-v2", "Register a governed pipeline (status pending)", GOV + "register_pipeline_v2", (
        GOV_PIPELINE_ID, arg("owner", "Owner (person or team) the active-pipeline cap applies to", "OWNER"),
        opt("name", "Display name"),
    ), examples=('pipe register-pipeline-v2 web:deploy alice --name "web deploys"',)),
    _gov("activate-pipeline-v2", "Activate a pending or paused governed pipeline (owner cap applies to pending)",
         GOV + "activate_pipeline_v2", (GOV_PIPELINE_ID,)),
    _gov("pause-pipeline-v2", "Pause an active governed pipeline", GOV + "pause_pipeline_v2", (GOV_PIPELINE_ID,)),
    _gov("archive-pipeline-v2", "Archive a governed pipeline for good", GOV + "archive_pipeline_v2",
         (GOV_PIPELINE_ID,)),
    _gov("touch-pipeline-v2", "Record activity on a governed pipeline (resets its idle clock)",
         GOV + "touch_pipeline_v2", (GOV_PIPELINE_ID,)),
    _gov("get-pipeline-v2", "Show a governed pipeline and its run counts", GOV + "get_pipeline_v2", (GOV_PIPELINE_ID,),
         kind="read"),
    _gov("list-pipelines-v2", "List governed pipelines, newest first", GOV + "list_pipelines_v2", (
        opt("owner", "Only this owner"), opt("status", "pending, active, paused or archived"),
    ), kind="read"),
    _gov("create-run-v2", "Queue a run of an active governed pipeline (run cap applies)", RUNS + "create_run_v2", (
        RUN_ID, arg("pipeline_id", "Governed pipeline id", "PIPELINE_ID"), opt("trigger", "What started it, e.g. push"),
    ), examples=("pipe create-run-v2 run-1 web:deploy --trigger push",)),
    _gov("start-run-v2", "Start a queued run", RUNS + "start_run_v2", (RUN_ID,)),
    _gov("complete-run-v2", "Complete a running run", RUNS + "complete_run_v2", (RUN_ID,)),
    _gov("fail-run-v2", "Fail a running run", RUNS + "fail_run_v2", (RUN_ID, REASON)),
    _gov("cancel-run-v2", "Cancel a queued or running run", RUNS + "cancel_run_v2", (RUN_ID, REASON)),
    _gov("get-run-v2", "Show a run", RUNS + "get_run_v2", (RUN_ID,), kind="read"),
    _gov("list-runs-v2", "List runs, newest first", RUNS + "list_runs_v2", (
        opt("pipeline", "Only runs of this governed pipeline"),
        opt("status", "queued, running, completed, failed or cancelled"),
    ), kind="read"),
    _gov("auto-pause-idle-v2", "Pause active pipelines untouched for at least the idle threshold",
         RUNS + "auto_pause_idle_v2", (NOW,), examples=("pipe auto-pause-idle-v2 --now 2026-11-05T09:00:00Z",)),
    _gov("auto-fail-stuck-v2", "Fail runs running for at least the stuck threshold (reason auto-fail-stuck)",
         RUNS + "auto_fail_stuck_v2", (NOW,)),
    _gov("gov-stats-v2", "Counts per status (zero-filled) and the caps in force", RUNS + "gov_stats_v2", (
        opt("owner", "Counts for this owner, with its active pipelines against the cap"),
    ), kind="read"),
)

COMMANDS.update((c.name, c) for c in V2_COMMANDS)
