"""What a gate message shows of the environments GitHub holds on its pipeline (protection rules)."""

from __future__ import annotations


def held_blocks(requests: list[dict]) -> list[dict]:
    """One context line per environment GitHub holds (or held) on the pipeline: environment, ref,
    sha and a link to the run, and what it was told."""
    lines = []
    for r in requests:
        at = " ".join(f"`{v}`" for v in (r["ref"], (r["sha"] or "")[:7]) if v)
        lines.append(f":rocket: GitHub holds *{r['environment']}* of {r['repository']} {at} — "
                     f"<{r['run_url']}|workflow run {r['run_id']}>: {_held_state(r)}")
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": line}]} for line in lines]


def _held_state(r: dict) -> str:
    if r["answer"] is None:
        return "waiting for the gates"
    if not r["answered"]:
        return f"{r['answer']}, telling GitHub"
    return f"GitHub was told: {r['answer']}" if not r["last_error"] else f"not answered: {r['last_error']}"
