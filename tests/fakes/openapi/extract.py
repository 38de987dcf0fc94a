"""Regenerate the subsets of GitHub's published descriptions kept here (run by hand when GitHub's
API changes; the fake GitHub validates against the files, not against this script):

    npm pack @octokit/openapi @octokit/openapi-webhooks     (then untar each into a folder)
    python tests/fakes/openapi/extract.py <openapi folder> <openapi-webhooks folder>

rest.json      the operations chainpipe calls: parameters, request body schema, success status
webhooks.json  the payload schema of the webhooks the server handles, with $refs resolved
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
OPERATIONS = {
    "/repos/{owner}/{repo}/deployments": ("get", "post"),
    "/repos/{owner}/{repo}/deployments/{deployment_id}": ("get",),
    "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses": ("get", "post"),
    "/repos/{owner}/{repo}/installation": ("get",),
    "/app/installations/{installation_id}/access_tokens": ("post",),
    "/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule": ("post",),
}
WEBHOOKS = {"deployment_protection_rule.requested": "webhook-deployment-protection-rule-requested"}


def _resolve(node, components, depth=0):
    if depth > 6:  # deep nesting (pull requests inside repositories…) is not what the fake checks
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            return _resolve(components[name], components, depth + 1)
        return {k: _resolve(v, components, depth) for k, v in node.items() if k not in ("examples", "example")}
    if isinstance(node, list):
        return [_resolve(v, components, depth) for v in node]
    return node


def rest(spec: dict) -> dict:
    out = {}
    for path, methods in OPERATIONS.items():
        for method in methods:
            op = spec["paths"][path][method]
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
            out.setdefault(path, {})[method] = {
                "operationId": op["operationId"],
                "parameters": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                                "schema": p.get("schema", {})} for p in op.get("parameters", [])],
                "requestBody": body,
                "requestBodyRequired": bool((op.get("requestBody") or {}).get("required")),
                "success": sorted(c for c in op["responses"] if c.startswith("2")),
            }
    return out


def webhooks(spec: dict) -> dict:
    components = spec["components"]["schemas"]
    return {name: _resolve(components[schema], components) for name, schema in WEBHOOKS.items()}


def main(openapi: str, openapi_webhooks: str) -> None:
    spec = json.loads((Path(openapi) / "generated" / "api.github.com.deref.json").read_text())
    (HERE / "rest.json").write_text(json.dumps(rest(spec), indent=1, sort_keys=True) + "\n")
    hooks = json.loads((Path(openapi_webhooks) / "generated" / "api.github.com.json").read_text())
    (HERE / "webhooks.json").write_text(json.dumps(webhooks(hooks), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
