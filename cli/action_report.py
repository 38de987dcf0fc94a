"""What an Action step shows the runner, in one place: workflow commands (annotations, masks), the
outputs written to ``$GITHUB_OUTPUT`` and the tables added to ``$GITHUB_STEP_SUMMARY``, rendered
from the grammar commands' results.
"""

from __future__ import annotations

import re
import uuid

from chainpipe.core.text import one_line

# --- workflow commands -------------------------------------------------------------------------


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotate(kind: str, message: str, title: str | None = None) -> None:
    """One annotation on one line: what a user typed can't add a line or a workflow command."""
    props = f" title={escape_property(one_line(title))}" if title else ""
    print(f"::{kind}{props}::{escape_data(one_line(message))}", flush=True)


def mask(secret: str) -> None:
    for line in secret.splitlines():
        if line.strip():
            print(f"::add-mask::{escape_data(line)}", flush=True)


def mask_url_password(url: str) -> None:
    match = re.match(r"^[a-z0-9+.-]+://[^:/@]*:([^@]+)@", url, re.IGNORECASE)
    if match:
        mask(match.group(1))


class Report:
    """Collects outputs and summary rows; writes them to the runner's files at the end."""

    def __init__(self, env):
        self.env = env
        self.outputs: dict[str, str] = {}
        self.lines: list[str] = []

    def output(self, name: str, value) -> None:
        if value is not None:
            self.outputs[name] = str(value)

    def section(self, heading: str, rows: list[tuple[str, object]]) -> None:
        self.lines += [f"### chainpipe: {heading}", "", "| | |", "|---|---|"]
        self.lines += [f"| {k} | {_cell(v)} |" for k, v in rows if v not in (None, "")]
        self.lines.append("")

    def flush(self) -> None:
        out = self.env.get("GITHUB_OUTPUT")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                for name, value in self.outputs.items():
                    delimiter = f"ghadelimiter_{uuid.uuid4()}"
                    fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            for name, value in self.outputs.items():
                print(f"{name}={value}")
        summary = self.env.get("GITHUB_STEP_SUMMARY")
        if summary and self.lines:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write("\n".join(self.lines) + "\n")


def _cell(value) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if re.fullmatch(r"(pipe|stg|gate|art|dep|mon)-[0-9a-f]{12}|sha256:[0-9a-f]+", text) else text


# --- results → outputs and summary --------------------------------------------------------------


def pipeline_created(report: Report, p: dict) -> None:
    report.output("pipeline-id", p["id"])
    report.output("status", p["status"])
    report.section("pipeline created", [("pipeline", p["id"]), ("name", p["name"]), ("template", p["template"]),
                                        ("stage", p["current_stage"])])


def pipeline_staged(report: Report, p: dict) -> None:
    report.output("pipeline-id", p["id"])
    report.output("status", p["status"])
    report.section("stage", [("pipeline", p["id"]), ("stage", p["current_stage"])])


def artifact_recorded(report: Report, art: dict) -> None:
    for key, value in (("pipeline-id", art["pipeline_id"]), ("artifact-id", art["id"]),
                       ("artifact-version", art["version"]), ("digest", art["digest"])):
        report.output(key, value)
    report.section("artifact recorded", [
        ("artifact", f"{art['name']} v{art['version']}"), ("id", art["id"]), ("type", art["type"]),
        ("digest", art["digest"]), ("size", f"{art['size']} bytes"), ("stage", art["stage"]),
        ("pipeline", art["pipeline_id"])])


def deploy_view(heading: str):
    def render(report: Report, dep: dict) -> None:
        for key, value in (("pipeline-id", dep["pipeline_id"]), ("deploy-id", dep["id"]), ("status", dep["status"])):
            report.output(key, value)
        art = dep.get("artifact") or {}
        report.section(heading, [
            ("deploy", dep["id"]), ("status", dep["status"]), ("strategy", dep["strategy"]),
            ("target", dep["target"]), ("ref", dep.get("ref")),
            ("artifact", f"{art['name']} v{art['version']}" if art else None),
            ("GitHub deployment", dep.get("external_id")), ("pipeline", dep["pipeline_id"])])

    return render


def metrics_recorded(report: Report, result: dict) -> None:
    rows = []
    for event in result["events"]:
        suffix = f" (deploy {event['deploy_id']})" if event["deploy_id"] else ""
        rows.append((event["metric"], f"{event['value']:g}{suffix}"))
        rolled = event.get("rollback")
        if rolled and rolled.get("changed"):
            # The metric tripped the auto_rollback policy: say so (GitHub follows through the mirror).
            annotate("warning", f"deploy {rolled['id']} rolled back: {rolled['rollback_reason']}",
                     title="automatic rollback")
            rows.append(("rolled back", f"{rolled['id']}: {rolled['rollback_reason']}"))
    report.output("pipeline-id", result["pipeline_id"])
    report.output("status", result["verdict"])
    report.section(f"{len(result['events'])} metric(s) recorded", [*rows, ("health", result["verdict"])])


def gate_awaited(report: Report, gate: dict) -> None:
    pid, name, outcome = gate["pipeline_id"], gate["name"], gate["outcome"]
    if outcome == "rejected":
        annotate("error", f"gate {name} of {pid} was rejected", title="gate rejected")
    elif outcome == "timeout":
        annotate("error", f"gate {name} of {pid} is still {gate['status']} after {gate['timeout']}; approve it "
                 f"with `pipe approve {pid} --gate {name}` or in Slack, then re-run this job",
                 title="gate approval timed out")
    elif gate["state"] == "closed":
        annotate("error", f"pipeline {pid} is {gate['pipeline_status']}; gate {name} is {gate['status']}",
                 title="gate can no longer be approved")
    report.output("pipeline-id", pid)
    report.output("status", outcome)
    report.section(f"gate {name}: {outcome}", [("pipeline", pid), ("gate", name)])


def mirror_notices(mirrored) -> None:
    """GitHub is a mirror: when it fails the record stands, and the run gets a warning."""
    for m in mirrored:
        if m.failed:
            annotate("warning", f"deploy {m.deploy_id} recorded, but not mirrored to GitHub: {m.outcome}",
                     title="GitHub deployment")
        elif m.missing:
            annotate("notice", f"deploy {m.deploy_id} has no GitHub deployment to update", title="GitHub deployment")
