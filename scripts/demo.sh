#!/usr/bin/env bash
# The seed walkthrough, verbatim, against a fresh SQLite file under ./demo.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf demo && mkdir -p demo/dist
export PIPE_DATA_DIR="$PWD/demo/data"
unset PIPE_DATABASE_URL PIPE_CONFIG
cd demo
printf 'chainpipe demo build\n' > dist/build.zip
json_id() { if command -v jq >/dev/null; then jq -r .id; else python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; fi; }
step() { printf '\n$ %s\n' "$*"; "$@"; }

echo "# 1. create from a template, start"
pid=$(pipe create --name "用户认证" --template feature --json | json_id)
echo "pipeline: $pid"
step pipe start "$pid"

echo; echo "# 2. stages and the approval gate"
step pipe stage "$pid" code
step pipe stage "$pid" review
step pipe approve "$pid" --gate code-review

echo; echo "# 3. artifact and a canary deploy"
step pipe artifact-add "$pid" --name build.zip --type binary --path ./dist/build.zip
deploy_id=$(pipe deploy "$pid" --strategy canary --target production --json | json_id)
echo "deploy: $deploy_id"

echo; echo "# 4. monitoring and rollback"
step pipe monitor-record "$pid" --metric error_rate --value 0.02
step pipe rollback "$deploy_id"

echo; echo "# 5. stats"
step pipe stats --json
step pipe show "$pid"

# The walkthrough's data lives in ./demo/data, not in your own data directory: demo/env.sh points
# a shell at it (and at this checkout's pipe), so the next commands continue where this left off.
printf 'export PIPE_DATA_DIR=%q\nexport PATH=%q:"$PATH"\n' "$PIPE_DATA_DIR" "$(dirname "$(command -v pipe)")" > env.sh
echo
echo "demo database: $PIPE_DATA_DIR/pipe.db"
echo "continue where the demo left off:"
echo "  source demo/env.sh && pipe list && pipe audit $pid"
