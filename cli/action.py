"""The GitHub Action entrypoint (`pipe-action`), run by action.yml's last step.

Inputs arrive as ``PIPE_ACTION_<INPUT>`` environment variables mapped in action.yml's ``env:``
(composite actions get no ``INPUT_*`` on the real runner); ``INPUT_<INPUT>`` is a fallback for
runners that set it. A step is one route of `cli.action_steps.ROUTES`: grammar commands with raw
values, run where the inputs say (`cli.action_targets`), deploys mirrored to GitHub with a
github-token, results rendered by `cli.action_report`. Errors become one ``::error`` annotation
and a non-zero exit (1 refused, 2 bad input or configuration, 3 crash).
"""

from __future__ import annotations

import os
import sys
import traceback

from chainpipe.cli.action_report import Report, annotate, mask, mask_url_password
from chainpipe.core.errors import InvalidInput, PipeError

INPUTS = (
    "command", "pipeline-id", "template", "name", "stage", "type", "path", "strategy", "target", "ref",
    "deploy-id", "status", "metric", "value", "metrics", "gate", "timeout", "poll-interval", "server-url",
    "token", "database-url", "github-token",
)
OUTPUTS = ("pipeline-id", "artifact-id", "artifact-version", "digest", "deploy-id", "status")
SECRETS = ("token", "github-token", "database-url")
INTERNAL_ERROR = 3


def env_name(name: str) -> str:
    return "PIPE_ACTION_" + name.upper().replace("-", "_")


def read_inputs(env) -> dict[str, str]:
    values = {}
    for name in INPUTS:
        value = env.get(env_name(name)) or env.get("INPUT_" + name.upper()) \
            or env.get("INPUT_" + name.upper().replace("-", "_")) or ""
        values[name] = value.strip() if name != "metrics" else value
    return values


def run_step(inputs: dict[str, str], env, report: Report) -> int:
    from chainpipe.cli.action_steps import ROUTES, Run
    from chainpipe.cli.action_targets import connect, mirror

    route = ROUTES.get(inputs["command"])
    if route is None:
        raise InvalidInput(f"unknown command {inputs['command']!r}; allowed: {', '.join(ROUTES)}")
    backend = None
    try:
        backend = connect(inputs, env)
        run = Run(inputs["command"], inputs, env, backend)
        result = mirror(run, route, route.steps(run, route.calls))
        route.render(report, result)
        return route.exit_code(result)
    finally:  # outputs so far are written even when the step fails
        if backend is not None:
            backend.close()
        report.flush()


# --- the one place errors become annotations ---------------------------------------------------

def main(env=None) -> int:
    env = os.environ if env is None else env
    inputs = read_inputs(env)
    for name in SECRETS:
        if inputs[name]:
            mask(inputs[name])
    if inputs["database-url"]:
        mask_url_password(inputs["database-url"])
    try:
        return run_step(inputs, env, Report(env))
    except PipeError as exc:
        annotate("error", exc.message, title=f"chainpipe {inputs['command'] or 'action'}: {exc.title}")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - crashes become a short annotation, never a traceback
        from chainpipe.core.crash import crash_line, crash_reference

        ref = crash_reference()
        annotate("error", crash_line(ref, exc, "re-run with debug logging for details"),
                 title="chainpipe internal error")
        if env.get("RUNNER_DEBUG") == "1":
            print(f"--- {ref}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        return INTERNAL_ERROR


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
