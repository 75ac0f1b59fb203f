#!/usr/bin/env bash
# End-to-end: the real meshauth binary (production mode, loopback) behind three
# real gateways, Apollo Gateway, Hive Gateway and GraphQL Mesh, each driven by
# scenario.mjs. The last line is "N passed, N failed"; the exit status is
# non-zero when a check failed or a gateway did not start.
#
#   e2e/run.sh            (needs Go, Node 20+, npm, curl; works with CI=true, no stdin)
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$E2E_DIR/.." && pwd)
START_TIME=$SECONDS

log() { printf '[e2e %3ds] %s\n' "$((SECONDS - START_TIME))" "$*"; }

# shellcheck source=../scripts/harness.sh
source "$ROOT/scripts/harness.sh"
require_tools e2e

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshauth-e2e.XXXXXX")
PIDS=() # every process this script started and has not stopped yet

forget() { # forget PID: drop it from PIDS once stopped
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop "$p"; done
  PIDS=()
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

answers_typename() { # answers_typename URL: the GraphQL endpoint answers { __typename }
  curl -fsS --max-time 5 -H 'content-type: application/json' \
    --data '{"query":"{ __typename }"}' "$1" | grep -q '"__typename":"Query"'
}

# abort MESSAGE: a step before the gateways failed; stop everything and say so.
abort() {
  log "$1"
  cleanup
  trap - EXIT
  echo "0 passed, 1 failed"
  exit 1
}

# 1. Node dependencies, exactly as locked. Skipped when node_modules was
# installed from this very lockfile (CI always starts clean).
LOCK_SUM=$(sha256sum "$E2E_DIR/package-lock.json" | cut -d' ' -f1)
if [[ -f $E2E_DIR/node_modules/.e2e-lock-sha256 && $(cat "$E2E_DIR/node_modules/.e2e-lock-sha256") == "$LOCK_SUM" ]]; then
  log "node_modules is up to date with package-lock.json"
else
  log "npm ci"
  if ! (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$TMP/npm-ci.log" 2>&1; then
    show_log "$TMP/npm-ci.log"
    abort "npm ci failed"
  fi
  echo "$LOCK_SUM" >"$E2E_DIR/node_modules/.e2e-lock-sha256"
fi

# 2. The service binary, a users file and random secrets.
log "go build ./cmd/meshauth"
(cd "$ROOT" && go build -o "$TMP/meshauth" ./cmd/meshauth) || abort "go build failed"
rand() { node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))'; }
E2E_EMAIL=e2e@example.com
E2E_PASSWORD=$(rand)
export E2E_EMAIL E2E_PASSWORD
printf '%s\n' "$E2E_PASSWORD" | "$TMP/meshauth" users add -file "$TMP/users.json" \
  -email "$E2E_EMAIL" -customer-id 4242 >/dev/null || abort "meshauth users add failed"

# 3. The service: production mode, introspection off, a clean environment.
SVC_PORT=$(free_port)
mkdir -p "$TMP/data"
(
  cd "$TMP"
  exec env -i PATH="$PATH" HOME="$TMP" \
    APP_ENV=production PORT="$SVC_PORT" DATA_DIR="$TMP/data" \
    JWT_PRIVATE_KEY="$(rand)" REFRESH_TOKEN_SECRET="$(rand)" \
    STATIC_USERS_FILE="$TMP/users.json" GRAPHQL_INTROSPECTION=false LOG_LEVEL=warn \
    "$TMP/meshauth"
) >"$TMP/meshauth.log" 2>&1 &
SVC_PID=$!
PIDS+=("$SVC_PID")
MESHAUTH_URL="http://127.0.0.1:$SVC_PORT/graphql"
log "meshauth starting on 127.0.0.1:$SVC_PORT (pid $SVC_PID)"
if ! wait_until 30 "$SVC_PID" meshauth curl -fsS --max-time 2 "http://127.0.0.1:$SVC_PORT/healthz"; then
  show_log "$TMP/meshauth.log"
  abort "meshauth did not start"
fi

# Mesh reads the schema from a file (introspection is off): save the subgraph SDL.
MESHAUTH_SDL="$TMP/meshauth.graphql"
curl -fsS --max-time 10 -H 'content-type: application/json' \
  --data '{"query":"{ _service { sdl } }"}' "$MESHAUTH_URL" |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).data._service.sdl));' \
    >"$MESHAUTH_SDL" || abort "fetching the subgraph SDL failed"

TOTAL_PASSED=0
TOTAL_FAILED=0
BROKEN=() # gateways that did not start or whose scenario did not finish

# 4. Each gateway in turn: start, wait for { __typename }, run the scenario, stop.
run_gateway() {
  local name=$1 port pid url ready_limit=30 out
  port=$(free_port)
  case $name in
    apollo | hive)
      (cd "$E2E_DIR" && exec env MESHAUTH_URL="$MESHAUTH_URL" PORT="$port" node "$name.mjs") \
        >"$TMP/$name.log" 2>&1 &
      pid=$!
      if [[ $name == apollo ]]; then url="http://127.0.0.1:$port/"; else url="http://127.0.0.1:$port/graphql"; fi
      ;;
    mesh)
      rm -rf "$E2E_DIR/mesh/.mesh"
      (cd "$E2E_DIR/mesh" && exec env -u PORT MESHAUTH_URL="$MESHAUTH_URL" MESHAUTH_SDL="$MESHAUTH_SDL" \
        node ../node_modules/@graphql-mesh/cli/cjs/bin.js dev --port "$port") \
        </dev/null >"$TMP/$name.log" 2>&1 &
      pid=$!
      url="http://127.0.0.1:$port/graphql"
      ready_limit=60
      ;;
  esac
  PIDS+=("$pid")
  log "$name starting on 127.0.0.1:$port (pid $pid)"
  if ! wait_until "$ready_limit" "$pid" "$name" answers_typename "$url"; then
    show_log "$TMP/$name.log"
    echo "FAIL  [$name] gateway started"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    BROKEN+=("$name")
    stop "$pid" "$name"
    forget "$pid"
    return 0
  fi
  log "$name ready at $url"

  local status=0
  out=$(cd "$E2E_DIR" && node scenario.mjs "$name" "$url" 2>&1) || status=$?
  printf '%s\n' "$out"
  local last
  last=$(printf '%s\n' "$out" | tail -n 1)
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    TOTAL_PASSED=$((TOTAL_PASSED + BASH_REMATCH[1]))
    TOTAL_FAILED=$((TOTAL_FAILED + BASH_REMATCH[2]))
  else
    echo "FAIL  [$name] scenario did not finish (exit $status)"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    BROKEN+=("$name")
  fi
  if ((status != 0)); then show_log "$TMP/$name.log"; fi

  stop "$pid" "$name"
  forget "$pid"
  log "$name stopped"
}

for gw in apollo hive mesh; do
  run_gateway "$gw"
done

stop "$SVC_PID" meshauth
forget "$SVC_PID"
if ((TOTAL_FAILED > 0)); then show_log "$TMP/meshauth.log"; fi
cleanup
trap - EXIT

log "done in $((SECONDS - START_TIME))s${BROKEN[*]+; broken: ${BROKEN[*]}}"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
((TOTAL_FAILED == 0 && ${#BROKEN[@]} == 0))
