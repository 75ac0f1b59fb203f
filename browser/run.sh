#!/usr/bin/env bash
# Browser test: meshauth (development mode, cookie mode, loopback) behind the
# demo storefront (examples/storefront), driven in headless Chromium by
# test.mjs: log in, three tabs refreshing at the same moment, logout; then
# graphiql.mjs: the GraphiQL explorer meshauth serves from the binary runs a
# query and a login with no request off its origin. The last
# line is "N passed, N failed"; the exit status is non-zero when a check
# failed or something did not start.
#
#   browser/run.sh                        (needs Go, Node 20+, npm, curl; works with CI=true, no stdin)
#   UPDATE_SCREENSHOT=1 browser/run.sh    also refreshes the committed browser/storefront.png
#
# Installs Debian's chromium when /usr/bin/chromium is missing (needs root or
# sudo). No browser is downloaded by Playwright: playwright-core only drives it.
set -euo pipefail

BROWSER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BROWSER_DIR/.." && pwd)
START_TIME=$SECONDS
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
TEST_TIMEOUT=${TEST_TIMEOUT:-120} # seconds for test.mjs as a whole

log() { printf '[browser %3ds] %s\n' "$((SECONDS - START_TIME))" "$*"; }

# shellcheck source=../scripts/harness.sh
source "$ROOT/scripts/harness.sh"
require_tools browser

TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshauth-browser.XXXXXX")
PIDS=() # every process this script started and has not stopped yet

cleanup() { # stops the processes in the reverse order of their start
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[i]}"; done
  PIDS=()
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# abort MESSAGE: a step before the test failed; stop everything and say so.
abort() {
  log "$1"
  cleanup
  trap - EXIT
  echo "0 passed, 1 failed"
  exit 1
}

# 1. Debian's Chromium, unless it is there already.
if [[ ! -x $CHROMIUM ]]; then
  [[ $CHROMIUM == /usr/bin/chromium ]] || abort "CHROMIUM=$CHROMIUM is not an executable"
  SUDO=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || abort "chromium is missing and installing it needs root (or sudo)"
    SUDO=(sudo -n)
  fi
  log "installing Debian's chromium (apt-get)"
  APT_START=$SECONDS
  if ! { "${SUDO[@]}" apt-get update -qq &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium fonts-dejavu-core; } </dev/null >"$TMP/apt.log" 2>&1; then
    show_log "$TMP/apt.log"
    abort "installing chromium failed"
  fi
  log "chromium installed in $((SECONDS - APT_START))s"
fi
# The Debian launcher script prints a harmless shell warning on some machines: keep the last line.
log "$("$CHROMIUM" --version 2>/dev/null | tail -n 1)"

# 2. Node dependencies (playwright-core only), exactly as locked. Skipped when
# node_modules was installed from this very lockfile (CI always starts clean).
LOCK_SUM=$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)
if [[ -f $BROWSER_DIR/node_modules/.browser-lock-sha256 && $(cat "$BROWSER_DIR/node_modules/.browser-lock-sha256") == "$LOCK_SUM" ]]; then
  log "node_modules is up to date with package-lock.json"
else
  log "npm ci"
  if ! (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error) </dev/null >"$TMP/npm-ci.log" 2>&1; then
    show_log "$TMP/npm-ci.log"
    abort "npm ci failed"
  fi
  echo "$LOCK_SUM" >"$BROWSER_DIR/node_modules/.browser-lock-sha256"
fi

# 3. The service and the storefront server.
log "go build ./cmd/meshauth ./examples/storefront"
(cd "$ROOT" && go build -o "$TMP/meshauth" ./cmd/meshauth && go build -o "$TMP/storefront" ./examples/storefront) ||
  abort "go build failed"

# 4. meshauth: development mode (demo user, generated secrets), cookie mode
# over http (Secure off: the page is http://127.0.0.1), a clean environment.
SVC_PORT=$(free_port)
mkdir -p "$TMP/data"
(
  cd "$TMP"
  exec env -i PATH="$PATH" HOME="$TMP" \
    APP_ENV=development PORT="$SVC_PORT" DATA_DIR="$TMP/data" \
    REFRESH_TOKEN_COOKIE=true REFRESH_TOKEN_COOKIE_SECURE=false \
    REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS=30 LOG_LEVEL=warn \
    "$TMP/meshauth"
) </dev/null >"$TMP/meshauth.log" 2>&1 &
SVC_PID=$!
PIDS+=("$SVC_PID")
log "meshauth starting on 127.0.0.1:$SVC_PORT (pid $SVC_PID)"
if ! wait_until 30 "$SVC_PID" meshauth curl -fsS --max-time 2 "http://127.0.0.1:$SVC_PORT/healthz"; then
  show_log "$TMP/meshauth.log"
  abort "meshauth did not start"
fi

# 5. The storefront: the page and /graphql on one loopback origin.
SF_PORT=$(free_port)
"$TMP/storefront" -addr "127.0.0.1:$SF_PORT" -meshauth "http://127.0.0.1:$SVC_PORT" \
  </dev/null >"$TMP/storefront.log" 2>&1 &
SF_PID=$!
PIDS+=("$SF_PID")
STOREFRONT_URL="http://127.0.0.1:$SF_PORT"
log "storefront starting on 127.0.0.1:$SF_PORT (pid $SF_PID)"
proxied() { # the storefront serves its page and proxies /graphql to meshauth
  curl -fsS --max-time 2 "$STOREFRONT_URL/" | grep -q 'data-testid="login-form"' &&
    curl -fsS --max-time 2 -H 'content-type: application/json' --data '{"query":"{ __typename }"}' \
      "$STOREFRONT_URL/graphql" | grep -q '"__typename":"Query"'
}
if ! wait_until 30 "$SF_PID" storefront proxied; then
  show_log "$TMP/storefront.log"
  abort "the storefront did not start"
fi

# 6. The tests, each bounded in time: the storefront (test.mjs), then the
# GraphiQL explorer meshauth serves at / from the binary (graphiql.mjs). In
# the background, so that a signal to this script stops them at once
# (SIGTERM lets Playwright close Chromium). Chromium's profiles go under
# $TMP, removed whatever happens.
SCREENSHOT="$BROWSER_DIR/out/storefront.png"
status=0
PASSED=0
FAILED=0
# run_test NAME SCRIPT URL: run one test script, add its counts.
run_test() {
  local name=$1 script=$2 url=$3 st=0 last
  log "node $script $url"
  (cd "$BROWSER_DIR" && exec env TMPDIR="$TMP" CHROMIUM="$CHROMIUM" SCREENSHOT="$BROWSER_DIR/out/$name.png" \
    timeout --kill-after=10 "$TEST_TIMEOUT" node "$script" "$url") </dev/null >"$TMP/$name.out" 2>&1 &
  TEST_PID=$!
  PIDS+=("$TEST_PID")
  wait "$TEST_PID" || st=$?
  PIDS=("$SVC_PID" "$SF_PID")
  last=$(tail -n 1 "$TMP/$name.out")
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    sed '$d' "$TMP/$name.out"
    PASSED=$((PASSED + BASH_REMATCH[1]))
    FAILED=$((FAILED + BASH_REMATCH[2]))
  else
    cat "$TMP/$name.out"
    if ((st == 124 || st == 137)); then log "$script did not finish within ${TEST_TIMEOUT}s"; fi
    FAILED=$((FAILED + 1))
    st=1
  fi
  if ((st != 0)); then status=1; fi
}
run_test storefront test.mjs "$STOREFRONT_URL"
run_test graphiql graphiql.mjs "http://127.0.0.1:$SVC_PORT"
LAST="$PASSED passed, $FAILED failed"
if ((status != 0)); then
  show_log "$TMP/meshauth.log"
  show_log "$TMP/storefront.log"
fi

if ((status == 0)) && [[ ${UPDATE_SCREENSHOT:-} == 1 ]]; then
  cp "$SCREENSHOT" "$BROWSER_DIR/storefront.png"
  log "updated browser/storefront.png"
fi

cleanup
trap - EXIT
log "done in $((SECONDS - START_TIME))s"
echo "$LAST"
((status == 0))
