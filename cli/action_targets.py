"""Where an Action step's records go: a team server (remote mode, `cli.remote.RemoteClient`) or a
database (direct mode, `core.dispatch.execute`), both run grammar commands by name with raw values;
and, with a github-token, GitHub (deploys mirrored as Deployments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainpipe.cli import action_report as show
from chainpipe.core.errors import InvalidInput

if TYPE_CHECKING:
    from chainpipe.cli.action_steps import Route, Run


def run_url(env) -> str | None:
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


class Direct:
    """Opens the database itself, like the `pipe` CLI: whoever holds the URL is trusted with it."""

    def __init__(self, database_url: str, actor, env):
        from chainpipe.core.config import load_settings

        self.settings = load_settings(dict(env) | {"PIPE_DATABASE_URL": database_url})
        self.actor = actor

    def run(self, command: str, values: dict):
        from chainpipe.core.dispatch import execute
        from chainpipe.core.grammar import get_command

        return execute(get_command(command), values, self.actor, self.settings)

    def close(self) -> None:
        pass


def server_timeout(env) -> float:
    """How long a remote step keeps trying the server (``PIPE_ACTION_SERVER_TIMEOUT`` seconds, 30)."""
    raw = env.get("PIPE_ACTION_SERVER_TIMEOUT") or "30"
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise InvalidInput(f"PIPE_ACTION_SERVER_TIMEOUT must be a number of seconds (up to 3600), got {raw!r}")
    return value


def connect(inputs: dict, env):
    """The backend the inputs name: a server (remote mode) or a database (direct mode)."""
    actor = "github:" + (env.get("GITHUB_ACTOR") or "unknown")
    url = run_url(env)
    if inputs["server-url"] and inputs["database-url"]:
        raise InvalidInput("give either server-url (with token) or database-url, not both")
    if inputs["server-url"]:
        if not inputs["token"]:
            raise InvalidInput("server-url needs a token (store it as a secret)")
        from chainpipe.cli.remote import RemoteClient

        headers = {"X-Pipe-Actor": actor, "X-Pipe-Surface": "github"} | ({"X-Pipe-Run-Url": url} if url else {})
        return RemoteClient(inputs["server-url"], inputs["token"], headers=headers,
                            timeout=server_timeout(env))
    if inputs["database-url"]:
        from chainpipe.core.actor import Actor

        return Direct(inputs["database-url"], Actor(actor, "github", url), env)
    raise InvalidInput("say where to record: server-url + token, or database-url")


def mirror(run: Run, route: Route, result: dict) -> dict:
    """With a github-token, deploys reach GitHub; the result gains a Deployment linked now. A mirror
    never fails the step: the record stands and the run gets a warning."""
    if not run.input("github-token"):
        return result
    try:
        done = mirror_deploys(run, route, result)
    except Exception as exc:  # noqa: BLE001 - a mirror failure must not fail what was recorded
        show.annotate("warning", f"deploys not mirrored to GitHub: {_reason(exc)}", title="GitHub deployment")
        return result
    show.mirror_notices(done)
    linked = {m.deploy_id: m.external_id for m in done if m.external_id}
    return (result | {"external_id": linked[result["id"]]}) if result.get("id") in linked else result


def _reason(exc: Exception) -> str:
    from chainpipe.core.errors import PipeError
    from chainpipe.gh.mirror import MirrorError

    if isinstance(exc, PipeError):
        return exc.message
    return str(exc) if isinstance(exc, MirrorError) else exc.__class__.__name__


def mirror_deploys(run: Run, route: Route, result: dict) -> list:
    """Direct mode drains the `github` outbox for the step's pipeline, which also mirrors deploys
    recorded from Slack or the CLI; remote mode has no database, so the deploys this step changed go
    through the same mapping."""
    from chainpipe.gh import outbox as github_outbox
    from chainpipe.gh.mirror import DeploymentMirror

    github = DeploymentMirror(run.inputs["github-token"], run.env.get("GITHUB_REPOSITORY", ""),
                              api_url=run.env.get("GITHUB_API_URL"), run_url=run.url)
    if isinstance(run.backend, Direct):
        return github_outbox.drain(run.backend.settings, github, run.backend.run, pipeline_id=route.pipeline(result))
    return [github_outbox.deliver(github, {"entity_id": deploy["id"], "action": action, "run_url": run.url},
                                  run.backend.run, deploy)
            for action, deploy in route.changes(result)]
