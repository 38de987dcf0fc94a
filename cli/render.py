"""Terminal rendering: `--json` prints the read model as is; humans get aligned plain-text tables.

Plain text on purpose: no rendering library to import on every command, output that pipes into
grep and less unchanged, and CJK names aligned by their display width. For people, times read
"3m ago" within the last day and as the local time to the second beyond it; numbers are rounded
(``core.numbers``); counts of zero are left out of summaries.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import datetime, timezone

from chainpipe.core.numbers import duration, number

DAY = 86400


def print_json(result) -> None:
    sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def when(text: str | None, now: datetime | None = None) -> str | None:
    """An ISO-8601 time for a person: "45s ago", "3m ago", "5h ago" within the last day, else the
    local time to the second ("2026-12-03 10:22:47")."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    age = ((now or datetime.now(timezone.utc)) - at).total_seconds()
    if -60 < age < DAY:  # a little in the future is clock skew between machines
        age = max(0, int(age))
        return f"{age}s ago" if age < 60 else f"{age // 60}m ago" if age < 3600 else f"{age // 3600}h ago"
    return stamp(text)


def stamp(text: str | None) -> str | None:
    """An ISO-8601 time as the local time to the second."""
    if not text:
        return None
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def is_time(key: str) -> bool:
    return key in ("at", "now", "since", "until") or key.endswith("_at")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("\n", " ")


def _field(key: str, value):
    """A field of a read model as shown: times through ``when``, the rest as is."""
    return when(value) if isinstance(value, str) and is_time(key) else value


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
    return "\n".join(f"{k}{' ' * (width - _width(k))}  {_cell(_field(k, data.get(k)))}" for k in keys)


def _pipeline_line(p: dict) -> str:
    stage = f"  stage {p['current_stage']}" if p.get("current_stage") else ""
    reason = f"  ({p['reason']})" if p.get("reason") else ""
    return f"{p['id']}  {p['name']}  [{p['template']}]  {p['status']}{stage}{reason}"


def _show(p: dict) -> list[str]:
    parts = [kv(p, ["id", "name", "template", "status", "current_stage", "created_by", "created_at", "reason"])]
    parts.append(table(["#", "stage", "status", "started", "finished"], [
        [s["position"] + 1, s["name"], s["status"], when(s["started_at"]), when(s["finished_at"])]
        for s in p["stages"]], "Stages"))
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
            [m["metric"], m["value"], m["unit"], m["deploy_id"], when(m["recorded_at"])] for m in p["metrics"]],
            "Metrics (latest value)"))
    return parts


def _artifacts(rows: list[dict], title: str | None = None) -> str:
    return table(["name", "version", "type", "stage", "digest", "size", "created"], [
        [a["name"], a["version"], a["type"], a["stage"], _short(a["digest"]), a["size"], when(a["created_at"])]
        for a in rows], title)


def _deploys(rows: list[dict], title: str | None = None) -> str:
    return table(["id", "strategy", "target", "status", "artifact", "created", "by"], [
        [d["id"], d["strategy"], d["target"], d["status"],
         f"{d['artifact']['name']}@{d['artifact']['version']}" if d["artifact"] else None,
         when(d["created_at"]), d["created_by"]] for d in rows], title)


def _short(digest: str | None) -> str | None:
    return digest[:19] + "…" if digest and len(digest) > 20 else digest


def _rows(rows: list[dict]) -> str:
    keys = [k for k, v in rows[0].items() if not isinstance(v, (dict, list))][:8]
    return table(keys, [[_field(k, r.get(k)) for k in keys] for r in rows])


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
    lines = [f"{e['id']}  {e['metric']}={_cell(e['value'])}{e['unit'] or ''}  deploy {e['deploy_id'] or '-'}"]
    v = e.get("verdict")
    if v and v["verdict"] != "unknown":
        change = f" (was {v['previous']})" if v["changed"] else ""
        lines.append(f"verdict: {v['verdict']}{change}: {v['reason']}")
        lines.append(f"regression: {'yes' if v['regression'] else 'no'}: {v['regression_reason']}")
    r = e.get("rollback")
    if r:
        lines.append(f"rolled back {r['id']} → {r['target']}: {r['rollback_reason']}")
    return ["\n".join(lines)]


def _monitor_events(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no metric events)"]
    return [table(["recorded", "metric", "value", "unit", "deploy", "by", "id"], [
        [when(e["recorded_at"]), e["metric"], e["value"], e["unit"], e["deploy_id"], e["actor"], e["id"]]
        for e in rows])]


def _audit(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no audit events)"]
    return [table(["#", "when", "actor", "via", "action", "of", "from", "to", "reason"], [
        [e["seq"], when(e["at"]), e["actor"], e["surface"], e["action"], f"{e['entity']} {e['entity_id']}",
         e["from"], e["to"], e["reason"]] for e in rows])]


def _stages(rows: list[dict]) -> list[str]:
    return [table(["#", "stage", "aliases", "description"], [
        [s["position"], s["id"], s["aliases"], s["description"]] for s in rows])]


def _templates(rows: list[dict]) -> list[str]:
    return [table(["template", "stages", "gates", "description"], [
        [t["name"], " → ".join(t["stages"]), [f"{g} (at {s})" for g, s in t["gates"].items()],
         t["description"] + ("" if t["builtin"] else " (custom)")] for t in rows])]


def _counts(counts: dict) -> str:
    """``{"running": 2, "failed": 0, "paused": 1}`` → "2 running, 1 paused" (zeros left out)."""
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kn: -kn[1]) if n)


def _stats(result: dict) -> list[str]:
    p, d = result["pipelines"], result["deploys"]
    rows = [["pipelines", f"{p['total']}: {_counts(p['by_status'])}" if p["total"] else "none"]]
    if p["total"]:
        rows.append(["", f"by template: {_counts(p['by_template'])}"])
    rows.append(["deploys", f"{d['total']}: {_counts(d['by_status'])}" if d["total"] else "none"])
    if d["total"]:
        rows.append(["", f"by strategy: {_counts(d['by_strategy'])}"])
    rows += [[label, text] for label, text in (
        ("gates", _counts(result["gate_decisions"])),
        ("artifacts", _counts({"recorded": result["artifacts"]})),
        ("metrics", _counts({"events": result["monitor_events"]}))) if text]
    parts = [_aligned(rows), _dora(result["dora"])]
    if result["dora"].get("definitions"):
        parts.append("\n\n".join(result["dora"]["definitions"].values()))
    return parts


def _dora(d: dict) -> str:
    head = f"DORA  {stamp(d['since'])} → {stamp(d['until'])}" + (f"  target {d['target']}" if d["target"] else "")
    freq, lt, cfr, ttr = d["deployment_frequency"], d["lead_time"], d["change_failure_rate"], d["time_to_restore"]
    if not cfr["deployments"]:
        return f"{head}\nno deploy went out in this window"
    lead = ", ".join(f"{k} {duration(v)}" for k, v in (("median", lt["median_seconds"]), ("p90", lt["p90_seconds"]))
                     if v is not None)
    restore = ", ".join(part for part in (
        f"median {duration(ttr['median_seconds'])}" if ttr["median_seconds"] is not None else "",
        f"{ttr['unrestored']} not restored yet" if ttr["unrestored"] else "") if part)
    rows = [["deployment frequency", f"{_cell(freq['per_day'])} / day ({freq['succeeded_deploys']} succeeded)"],
            ["lead time", lead],
            ["change-failure rate", f"{cfr['rate']:.0%} ({cfr['failures']}/{cfr['deployments']})"],
            ["time to restore", restore]]
    return head + "\n" + _aligned([r for r in rows if r[1]])


def _aligned(rows: list[list[str]]) -> str:
    """Label/value lines without a header row."""
    return table(["", ""], rows).split("\n", 1)[1]


def _gate(g: dict) -> list[str]:
    count = f"{len(g.get('approvals', []))}/{g['required_approvals']}"
    note = "" if g.get("changed", True) else "  (unchanged)"
    return [f"gate {g['name']} of {g['pipeline_id']}: {g['status']} ({count} approvals){note}"]


def _deploy(d: dict) -> list[str]:
    note = "" if d.get("changed", True) else "  (unchanged)"
    return [f"{d['id']}  {d['strategy']} → {d['target']}: {d['status']}{note}"]


def _export(result) -> list[str]:
    # `--format json` asks for the document itself, as `--format markdown` gets markdown.
    return [json.dumps(result, ensure_ascii=False, indent=2)]


PIPELINE_MUTATIONS = ("create", "start", "pause", "resume", "cancel", "complete", "fail", "retry", "stage")
RENDERERS = {
    "show": _show,
    "artifacts": lambda r: [_artifacts(r)] if r else ["(no artifacts)"],
    "deploys": lambda r: [_deploys(r)] if r else ["(no deploys)"],
    "list": lambda r: [table(["id", "name", "template", "status", "stage", "created"], [
        [p["id"], p["name"], p["template"], p["status"], p["current_stage"], when(p["created_at"])] for p in r])]
    if r else ["(no pipelines)"],
    "monitor-status": _monitor_status,
    "monitor-events": _monitor_events,
    "audit": _audit,
    "stages": _stages,
    "templates": _templates,
    "export": _export,
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
    return f"{p['id']}  owner {p['owner']}  {p['status']}{name}  touched {when(p['last_touched_at'])}"


def _gov_run_line(r: dict) -> str:
    reason = f"  ({r['reason']})" if r.get("reason") else ""
    return f"{r['id']}  pipeline {r['pipeline_id']}  {r['status']}{reason}"


def _gov_sweep(key: str, line):
    def render(result: dict) -> list[str]:
        head = f"{key} {result['count']} as of {stamp(result['now'])} (threshold {result['threshold_ms']} ms)"
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
            rows.append([f"{prefix}{key}", _field(key, value)])
    return rows


def _nested(data: dict) -> str:
    return table(["field", "value"], _flatten(data))
