"""Markdown rendering of an exported pipeline (pure text, shared by every surface).

A document is read elsewhere and later, so times are absolute and in UTC, to the second.
"""

from __future__ import annotations

from chainpipe.core.numbers import tidy


def _time(text: str | None) -> str | None:
    """``2026-12-03T09:22:47.111765Z`` → ``2026-12-03 09:22:47 UTC``."""
    return f"{text[:19].replace('T', ' ')} UTC" if text else None


def _table(headers: list[str], rows: list[list]) -> list[str]:
    def cell(v) -> str:
        return "" if v is None else str(tidy(v)).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def pipeline_markdown(data: dict) -> str:
    lines = [
        f"# Pipeline {data['name']}",
        "",
        f"- **id**: `{data['id']}`",
        f"- **template**: {data['template']}",
        f"- **status**: {data['status']}" + (f" — {data['reason']}" if data.get("reason") else ""),
        f"- **current stage**: {data['current_stage'] or '—'}",
        f"- **created**: {_time(data['created_at'])} by {data['created_by']}",
        f"- **exported**: {_time(data['exported_at'])}",
        "",
        "## Stages",
        "",
        *_table(["#", "stage", "status", "started", "finished"],
                [[s["position"] + 1, s["name"], s["status"], _time(s["started_at"]), _time(s["finished_at"])]
                 for s in data["stages"]]),
        "",
        "## Gates",
        "",
        *_table(["gate", "guards", "status", "decided by", "reason"],
                [[g["name"], g["stage"], g["status"], g["decided_by"], g["reason"]] for g in data["gates"]]),
    ]
    decisions = [(g["name"], d) for g in data["gates"] for d in g.get("decisions", [])]
    if decisions:
        lines += ["", "### Decisions", "", *_table(
            ["gate", "decision", "by", "from", "at", "reason"],
            [[n, d["decision"], d["person"], d["surface"], _time(d["at"]), d["reason"]] for n, d in decisions])]
    lines += ["", "## Artifacts", "", *_table(
        ["name", "version", "type", "stage", "digest", "size"],
        [[a["name"], a["version"], a["type"], a["stage"], a["digest"], a["size"]] for a in data["artifacts"]])]
    lines += ["", "## Deploys", "", *_table(
        ["id", "strategy", "target", "status", "created", "rolled back"],
        [[d["id"], d["strategy"], d["target"], d["status"], _time(d["created_at"]), _time(d["rolled_back_at"])]
         for d in data["deploys"]])]
    lines += ["", "## Monitor events", "", *_table(
        ["at", "metric", "value", "unit", "deploy"],
        [[_time(e["recorded_at"]), e["metric"], e["value"], e["unit"], e["deploy_id"]]
         for e in data["monitor_events"]])]
    return "\n".join(lines) + "\n"
