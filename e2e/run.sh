#!/usr/bin/env bash
# End-to-end: the real meshauth binary (production mode, loopback) behind three
# real gateways, Apollo Gateway, Hive Gateway and GraphQL Mesh, each driven by
# scenario.mjs; then meshauth beside a Magento-style commerce service
# (commerce/), merged and stitched with graphql-tools (merge.mjs) and served
# together by GraphQL Mesh (mesh-commerce/, driven by commerce-scenario.mjs).
# The last line is "N passed, N failed"; the exit status is non-zero when a
# check failed or a gateway did not start.
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

# 2. The service binary, a users file and random secrets. Users: the
# scenario's, customer 1001 of the commerce fixture, and limit-1 ... limit-26
# for the per-address login limit (one password, its hash copied to save 25
# runs of the password hash).
log "go build ./cmd/meshauth"
(cd "$ROOT" && go build -o "$TMP/meshauth" ./cmd/meshauth) || abort "go build failed"
rand() { node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))'; }
E2E_EMAIL=e2e@example.com
E2E_PASSWORD=$(rand)
E2E_SHOPPER_EMAIL=shopper@example.com
E2E_SHOPPER_PASSWORD=$(rand)
E2E_LIMIT_PASSWORD=$(rand)
E2E_LOGIN_LIMIT_IP=3
export E2E_EMAIL E2E_PASSWORD E2E_SHOPPER_EMAIL E2E_SHOPPER_PASSWORD E2E_LIMIT_PASSWORD E2E_LOGIN_LIMIT_IP
add_user() { # add_user EMAIL CUSTOMER_ID PASSWORD
  printf '%s\n' "$3" | "$TMP/meshauth" users add -file "$TMP/users.json" -email "$1" -customer-id "$2" >/dev/null
}
{
  add_user "$E2E_EMAIL" 4242 "$E2E_PASSWORD" &&
    add_user "$E2E_SHOPPER_EMAIL" 1001 "$E2E_SHOPPER_PASSWORD" &&
    add_user limit-1@example.com 5001 "$E2E_LIMIT_PASSWORD" &&
    node -e '
      const fs = require("fs");
      const file = process.argv[1];
      const f = JSON.parse(fs.readFileSync(file, "utf8"));
      const hash = f.users.find((u) => u.email === "limit-1@example.com").password_hash;
      for (let n = 2; n <= 26; n++) f.users.push({ email: `limit-${n}@example.com`, customer_id: String(5000 + n), password_hash: hash });
      fs.writeFileSync(file, JSON.stringify(f, null, 2));
    ' "$TMP/users.json"
} || abort "writing the users file failed"
JWT_KEY=$(rand)
REFRESH_SECRET=$(rand)

# start_meshauth NAME [VAR=VALUE...]: a meshauth of its own for NAME, in
# production mode with introspection off, its own data directory, the users
# file and the shared secrets, plus the given settings. Sets MESHAUTH_PID,
# MESHAUTH_URL and MESHAUTH_SDL (a file with its { _service { sdl } }).
start_meshauth() {
  local name=$1 port
  shift
  port=$(free_port)
  mkdir -p "$TMP/data-$name"
  (
    cd "$TMP"
    exec env -i PATH="$PATH" HOME="$TMP" \
      APP_ENV=production PORT="$port" DATA_DIR="$TMP/data-$name" \
      JWT_PRIVATE_KEY="$JWT_KEY" REFRESH_TOKEN_SECRET="$REFRESH_SECRET" \
      STATIC_USERS_FILE="$TMP/users.json" GRAPHQL_INTROSPECTION=false LOG_LEVEL=warn \
      "$@" "$TMP/meshauth"
  ) >"$TMP/meshauth-$name.log" 2>&1 &
  MESHAUTH_PID=$!
  PIDS+=("$MESHAUTH_PID")
  MESHAUTH_URL="http://127.0.0.1:$port/graphql"
  MESHAUTH_SDL="$TMP/meshauth-$name.graphql"
  log "meshauth for $name starting on 127.0.0.1:$port (pid $MESHAUTH_PID)${*:+: $*}"
  if ! wait_until 30 "$MESHAUTH_PID" "meshauth for $name" curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz"; then
    show_log "$TMP/meshauth-$name.log"
    return 1
  fi
  # Mesh reads the schema from a file (introspection is off): save the subgraph SDL.
  curl -fsS --max-time 10 -H 'content-type: application/json' \
    --data '{"query":"{ _service { sdl } }"}' "$MESHAUTH_URL" |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).data._service.sdl));' \
      >"$MESHAUTH_SDL" || { log "fetching the subgraph SDL of meshauth for $name failed"; return 1; }
}

# start_gateway NAME: start one gateway in front of MESHAUTH_URL (and
# COMMERCE_URL for mesh-commerce) and wait for { __typename }. Sets GW_PID
# and GW_URL.
start_gateway() {
  local name=$1 port ready_limit=30
  port=$(free_port)
  case $name in
    apollo | hive)
      (cd "$E2E_DIR" && exec env MESHAUTH_URL="$MESHAUTH_URL" PORT="$port" node "$name.mjs") \
        >"$TMP/$name.log" 2>&1 &
      GW_PID=$!
      if [[ $name == apollo ]]; then GW_URL="http://127.0.0.1:$port/"; else GW_URL="http://127.0.0.1:$port/graphql"; fi
      ;;
    mesh | mesh-commerce)
      rm -rf "$E2E_DIR/$name/.mesh"
      (cd "$E2E_DIR/$name" && exec env -u PORT MESHAUTH_URL="$MESHAUTH_URL" MESHAUTH_SDL="$MESHAUTH_SDL" \
        COMMERCE_URL="${COMMERCE_URL-}" node ../node_modules/@graphql-mesh/cli/cjs/bin.js dev --port "$port") \
        </dev/null >"$TMP/$name.log" 2>&1 &
      GW_PID=$!
      GW_URL="http://127.0.0.1:$port/graphql"
      ready_limit=60
      ;;
  esac
  PIDS+=("$GW_PID")
  log "$name starting on 127.0.0.1:$port (pid $GW_PID)"
  if ! wait_until "$ready_limit" "$GW_PID" "$name" answers_typename "$GW_URL"; then
    show_log "$TMP/$name.log"
    return 1
  fi
  log "$name ready at $GW_URL"
}

TOTAL_PASSED=0
TOTAL_FAILED=0
BROKEN=() # what did not start, or whose checks did not finish

# broken NAME WHAT: NAME could not run its checks; count one failure.
broken() {
  echo "FAIL  [$1] $2"
  TOTAL_FAILED=$((TOTAL_FAILED + 1))
  BROKEN+=("$1")
}

# run_checks NAME LOG COMMAND...: run a check script (in e2e/), print its
# lines and add its last line's counts to the totals; LOG is shown when it
# fails.
run_checks() {
  local name=$1 logfile=$2 out status=0 last
  shift 2
  out=$(cd "$E2E_DIR" && "$@" 2>&1) || status=$?
  printf '%s\n' "$out"
  last=$(printf '%s\n' "$out" | tail -n 1)
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    TOTAL_PASSED=$((TOTAL_PASSED + BASH_REMATCH[1]))
    TOTAL_FAILED=$((TOTAL_FAILED + BASH_REMATCH[2]))
  else
    broken "$name" "checks did not finish (exit $status)"
  fi
  if ((status != 0)); then show_log "$logfile"; fi
}

# stop_started PID NAME: stop a process this script started.
stop_started() {
  stop "$1" "$2"
  forget "$1"
}

# 3. Each gateway in turn, with a meshauth of its own: start both, run the
# scenario, stop both. A meshauth per gateway, so that the failed logins one
# gateway's checks leave behind (the per-address limit is small here:
# LOGIN_LIMIT_IP=3/1m, the per-account one off) never meet another
# gateway's checks, which use the same client addresses and accounts; and a
# gateway that dropped X-Forwarded-For would fail only its own checks.
# Apollo's meshauth serves the federation Customer entity, so that one
# federation gateway composes it; the others run with the default (no entity).
ENTITY_SDL="$TMP/meshauth-apollo.graphql"
for gw in apollo hive mesh; do
  entity=false
  [[ $gw == apollo ]] && entity=true
  failed_before=$TOTAL_FAILED
  if start_meshauth "$gw" LOGIN_LIMIT_IP="$E2E_LOGIN_LIMIT_IP/1m" LOGIN_LIMIT_ACCOUNT=off FEDERATION_CUSTOMER_ENTITY=$entity; then
    if start_gateway "$gw"; then
      run_checks "$gw" "$TMP/$gw.log" env E2E_CUSTOMER_ENTITY=$entity node scenario.mjs "$gw" "$GW_URL"
    else
      broken "$gw" "gateway started"
    fi
    stop_started "$GW_PID" "$gw"
    log "$gw stopped"
  else
    broken "$gw" "meshauth started"
  fi
  stop_started "$MESHAUTH_PID" "meshauth for $gw"
  if ((TOTAL_FAILED > failed_before)); then show_log "$TMP/meshauth-$gw.log"; fi
done

# 4. Beside a Magento-style commerce service: a meshauth whose tokens carry
# the customer id as bc_customer_id too, the commerce service verifying them
# with the same key, the graphql-tools checks (merge.mjs), then both stitched
# by GraphQL Mesh (commerce-scenario.mjs). cleanup stops what this started.
commerce() {
  if ! start_meshauth commerce JWT_CUSTOMER_ID_CLAIMS=customer_id,bc_customer_id; then
    broken commerce "meshauth started"
    return 0
  fi
  local port pid
  port=$(free_port)
  (cd "$E2E_DIR" && exec env JWT_PRIVATE_KEY="$JWT_KEY" PORT="$port" node commerce/server.mjs) \
    >"$TMP/commerce.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  COMMERCE_URL="http://127.0.0.1:$port/graphql"
  log "commerce starting on 127.0.0.1:$port (pid $pid)"
  if ! wait_until 30 "$pid" commerce answers_typename "$COMMERCE_URL"; then
    show_log "$TMP/commerce.log"
    broken commerce "commerce service started"
    return 0
  fi
  if [[ -s $ENTITY_SDL ]]; then
    run_checks merge "$TMP/commerce.log" env MESHAUTH_URL="$MESHAUTH_URL" COMMERCE_URL="$COMMERCE_URL" \
      MESHAUTH_ENTITY_SDL="$ENTITY_SDL" node merge.mjs
  else
    broken merge "no SDL of a meshauth with FEDERATION_CUSTOMER_ENTITY=true (apollo's meshauth did not start)"
  fi
  if start_gateway mesh-commerce; then
    run_checks mesh-commerce "$TMP/mesh-commerce.log" node commerce-scenario.mjs mesh-commerce "$GW_URL"
  else
    broken mesh-commerce "gateway started"
  fi
}
failed_before=$TOTAL_FAILED
commerce
if ((TOTAL_FAILED > failed_before)); then show_log "$TMP/meshauth-commerce.log"; fi
cleanup
trap - EXIT

log "done in $((SECONDS - START_TIME))s${BROKEN[*]+; broken: ${BROKEN[*]}}"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
((TOTAL_FAILED == 0 && ${#BROKEN[@]} == 0))
