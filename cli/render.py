"""Terminal rendering: `--json` prints the read model as is; humans get aligned plain-text tables.

Plain text on purpose: no rendering library to import on every command, output that pipes into
grep and less unchanged, and CJK names aligned by their display width.
"""

from __future__ import annotations

import json
import sys
import unicodedata


def print_json(result) -> None:
    sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("\n", " ")


def table(columns: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([_width(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [title] if title else []
    out.append(line(columns))
    out += [line(r) for r in cells]
    return "\n".join(out)


def kv(data: dict, keys: list[str] | None = None) -> str:
    keys = keys or [k for k, v in data.items() if not isinstance(v, (dict, list))]
    width = max(_width(k) for k in keys)
    return "\n".join(f"{k}{' ' * (width - _width(k))}  {_cell(data.get(k))}" for k in keys)


def _pipeline_line(p: dict) -> str:
    stage = f"  stage {p['current_stage']}" if p.get("current_stage") else ""
    reason = f"  ({p['reason']})" if p.get("reason") else ""
    return f"{p['id']}  {p['name']}  [{p['template']}]  {p['status']}{stage}{reason}"


def _show(p: dict) -> list[str]:
    parts = [kv(p, ["id", "name", "template", "status", "current_stage", "created_by", "created_at", "reason"])]
    parts.append(table(["#", "stage", "status", "started", "finished"], [
        [s["position"] + 1, s["name"], s["status"], s["started_at"], s["finished_at"]] for s in p["stages"]],
        "Stages"))
    if p["gates"]:
        parts.append(table(["gate", "guards", "status", "approvals", "decided by", "reason"], [
            [g["name"], g["stage"], g["status"], f"{len(g.get('approvals', []))}/{g['required_approvals']}",
             g["decided_by"], g["reason"]] for g in p["gates"]], "Gates"))
    if p.get("artifacts"):
        parts.append(_artifacts(p["artifacts"], "Artifacts (latest versions)"))
    if p.get("recent_deploys"):
        parts.append(_deploys(p["recent_deploys"], "Recent deploys"))
    if p.get("metrics"):
        parts.append(table(["metric", "latest", "unit", "deploy", "recorded"], [
            [m["metric"], m["value"], m["unit"], m["deploy_id"], m["recorded_at"]] for m in p["metrics"]],
            "Metrics (latest value)"))
    return parts


def _artifacts(rows: list[dict], title: str | None = None) -> str:
    return table(["name", "version", "type", "stage", "digest", "size", "created"], [
        [a["name"], a["version"], a["type"], a["stage"], _short(a["digest"]), a["size"], a["created_at"]]
        for a in rows], title)


def _deploys(rows: list[dict], title: str | None = None) -> str:
    return table(["id", "strategy", "target", "status", "artifact", "created", "by"], [
        [d["id"], d["strategy"], d["target"], d["status"],
         f"{d['artifact']['name']}@{d['artifact']['version']}" if d["artifact"] else None,
         d["created_at"], d["created_by"]] for d in rows], title)


def _short(digest: str | None) -> str | None:
    return digest[:19] + "…" if digest and len(digest) > 20 else digest


def _rows(rows: list[dict]) -> str:
    keys = [k for k, v in rows[0].items() if not isinstance(v, (dict, list))][:8]
    return table(keys, [[r.get(k) for k in keys] for r in rows])


def _pct(value) -> str | None:
    return None if value is None else f"{value:+.0%}"


def _monitor_status(result: dict) -> list[str]:
    rows = [[m["metric"], m["latest"], m.get("unit"), m.get("baseline"), _pct(m["change"]["relative"]),
             m["verdict"], m.get("regression"), m.get("trend")] for m in result["metrics"]]
    scope = f"deploy {result['deploy_id']} → {result['target']} ({result['deploy_status']})" \
        if result.get("deploy_id") else "no deploy yet"
    head = f"overall: {result['verdict']}" + (f"  ({result['reason']})" if result.get("reason") else "")
    if not rows:
        return [f"{head}\n{scope}", "(no metric events)"]
    why = [f"{m['metric']}: {m['verdict']}: {m['reason']}; regression {'yes' if m['regression'] else 'no'}: "
           f"{m['regression_reason']}" for m in result["metrics"]]
    cols = ["metric", "latest", "unit", "baseline", "change", "verdict", "regression", "trend"]
    return [f"{head}\n{scope}", table(cols, rows), "\n".join(why)]


def _monitor_record(e: dict) -> list[str]:
    lines = [f"{e['id']}  {e['metric']}={e['value']}{e['unit'] or ''}  deploy {e['deploy_id'] or '-'}"]
    v = e.get("verdict")
    if v and v["verdict"] != "unknown":
        change = f" (was {v['previous']})" if v["changed"] else ""
        lines.append(f"verdict: {v['verdict']}{change}: {v['reason']}")
        lines.append(f"regression: {'yes' if v['regression'] else 'no'}: {v['regression_reason']}")
    r = e.get("rollback")
    if r:
        lines.append(f"rolled back {r['id']} → {r['target']}: {r['rollback_reason']}")
    return ["\n".join(lines)]


def _hours(seconds) -> str | None:
    return None if seconds is None else f"{seconds / 3600:.1f} h"


def _stats(result: dict) -> list[str]:
    d = result["dora"]
    counts = {k: v for k, v in result.items() if k != "dora"}
    lt, cfr, ttr = d["lead_time"], d["change_failure_rate"], d["time_to_restore"]
    rate = None if cfr["rate"] is None else f"{cfr['rate']:.0%} ({cfr['failures']}/{cfr['deployments']})"
    dora = table(["figure", "value"], [
        ["deployment frequency", f"{d['deployment_frequency']['per_day']} / day "
                                 f"({d['deployment_frequency']['succeeded_deploys']} succeeded)"],
        ["lead time median", _hours(lt["median_seconds"])],
        ["lead time p90", _hours(lt["p90_seconds"])],
        ["change-failure rate", rate],
        ["time to restore median", _hours(ttr["median_seconds"])],
        ["unrestored failures", ttr["unrestored"]],
    ], f"DORA {d['since']} → {d['until']}" + (f"  target {d['target']}" if d["target"] else ""))
    parts = [_nested(counts), dora]
    if d.get("definitions"):
        parts.append("\n\n".join(d["definitions"].values()))
    return parts


def _gate(g: dict) -> list[str]:
    count = f"{len(g.get('approvals', []))}/{g['required_approvals']}"
    note = "" if g.get("changed", True) else "  (unchanged)"
    return [f"gate {g['name']} of {g['pipeline_id']}: {g['status']} ({count} approvals){note}"]


def _deploy(d: dict) -> list[str]:
    note = "" if d.get("changed", True) else "  (unchanged)"
    return [f"{d['id']}  {d['strategy']} → {d['target']}: {d['status']}{note}"]


PIPELINE_MUTATIONS = ("create", "start", "pause", "resume", "cancel", "complete", "fail", "retry", "stage")
RENDERERS = {
    "show": _show,
    "artifacts": lambda r: [_artifacts(r)] if r else ["(no artifacts)"],
    "deploys": lambda r: [_deploys(r)] if r else ["(no deploys)"],
    "list": lambda r: [table(["id", "name", "template", "status", "stage", "created"], [
        [p["id"], p["name"], p["template"], p["status"], p["current_stage"], p["created_at"]] for p in r])]
    if r else ["(no pipelines)"],
    "monitor-status": _monitor_status,
    "approve": _gate,
    "reject": _gate,
    "deploy": _deploy,
    "deploy-update": _deploy,
    "rollback": _deploy,
    "artifact-add": lambda a: [f"{a['id']}  {a['name']} v{a['version']}  {a['type']}  {a['digest'] or '-'}"
                               + (f"  {a['size']} bytes" if a["size"] is not None else "")],
    "monitor-record": _monitor_record,
    "stats": _stats,
    **{name: lambda p: [_pipeline_line(p)] for name in PIPELINE_MUTATIONS},
}


def _gov_pipeline_line(p: dict) -> str:
    name = f"  ({p['name']})" if p.get("name") else ""
    return f"{p['id']}  owner {p['owner']}  {p['status']}{name}  touched {p['last_touched_at']}"


def _gov_run_line(r: dict) -> str:
    reason = f"  ({r['reason']})" if r.get("reason") else ""
    return f"{r['id']}  pipeline {r['pipeline_id']}  {r['status']}{reason}"


def _gov_sweep(key: str, line):
    def render(result: dict) -> list[str]:
        head = f"{key} {result['count']} as of {result['now']} (threshold {result['threshold_ms']} ms)"
        return ["\n".join([head] + [line(row) for row in result[key]])]
    return render


def _gov_enums(e: dict) -> list[str]:
    rows = [[kind, s, ", ".join(f"{t}→{d}" for f, t, d in ((r["from"], r["trigger"], r["to"])
                                                      for r in e[kind + "_transitions"]) if f == s)]
            for kind in ("pipeline", "run") for s in e[kind + "_statuses"]]
    settings = [[k, v["default"], v["help"]] for k, v in e["settings"].items()]
    return [table(["of", "status", "transitions"], rows), table(["setting", "default", "meaning"], settings)]


RENDERERS.update({
    **{f"{verb}-pipeline-v2": lambda p: [_gov_pipeline_line(p)]
       for verb in ("register", "activate", "pause", "archive", "touch")},
    **{f"{verb}-run-v2": lambda r: [_gov_run_line(r)] for verb in ("create", "start", "complete", "fail", "cancel")},
    **{f"set-{name}-v2": lambda s: [f"{s['setting']}: {s['previous']} → {s['value']}"]
       for name in ("max-active-pipelines", "max-pending-runs", "pipeline-idle-ms", "run-stuck-ms")},
    "auto-pause-idle-v2": _gov_sweep("paused", _gov_pipeline_line),
    "auto-fail-stuck-v2": _gov_sweep("failed", _gov_run_line),
    "enums-v2": _gov_enums,
})


def human(command: str, result) -> None:
    if isinstance(result, str):
        sys.stdout.write(result if result.endswith("\n") else result + "\n")
        return
    renderer = RENDERERS.get(command)
    if renderer:
        parts = renderer(result)
    elif isinstance(result, list):
        parts = [_rows(result)] if result else ["(none)"]
    else:
        parts = [_nested(result)]
    sys.stdout.write("\n\n".join(parts) + "\n")


def _flatten(data: dict, prefix: str = "") -> list[list]:
    rows = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append([f"{prefix}{key}", value])
    return rows


def _nested(data: dict) -> str:
    return table(["field", "value"], _flatten(data))
